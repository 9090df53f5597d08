"""How many connections a run may hold open: derived from ``-c`` and the file limit.

Each connection is a file descriptor. A crawl over many hosts that kept one idle
keep-alive connection per host ran out of descriptors ("Too many open files") and failed
requests; a global cap on open connections (in use and idle) keeps it within the limit.
"""

from __future__ import annotations

import resource
from typing import Final

# Descriptors left to everything but connections: output files, the journal, the event
# loop's own, the DNS resolver's sockets, stdin/stdout/stderr (about 15 in a CLI run). An
# eighth of the limit, within these bounds: a low limit (256) keeps most for connections.
RESERVED_DESCRIPTORS: Final = 64
_FEWEST_RESERVED: Final = 24
# Idle connections kept beyond those in use, per unit of concurrency: a connection is
# worth keeping for a host that comes back, but a crawl's hosts mostly do not.
IDLE_PER_REQUEST: Final = 1
# Some systems report an unlimited or huge hard limit; nothing needs more than this.
_HIGHEST_SOFT_LIMIT: Final = 1 << 20


def raise_descriptor_limit() -> int:
    """Raise this process's soft limit on open files to its hard limit; the new soft limit.

    The soft limit is often 1024 while the hard one is far higher: asking costs nothing.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = _HIGHEST_SOFT_LIMIT if hard == resource.RLIM_INFINITY else hard
    wanted = min(wanted, _HIGHEST_SOFT_LIMIT)
    if soft != resource.RLIM_INFINITY and soft < wanted:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
        except (ValueError, OSError):
            return soft  # not allowed here (a sandbox, say): live with the soft limit
        return wanted
    return min(soft, _HIGHEST_SOFT_LIMIT) if soft != resource.RLIM_INFINITY else wanted


def connection_cap(concurrency: int, descriptor_limit: int | None = None) -> int:
    """The most connections (in use, idle or opening) a run of ``concurrency`` may hold.

    At most ``concurrency`` are in use at once; as many again may wait idle for their host
    to come back, within what the file limit leaves after a reserve for other files.
    """
    if descriptor_limit is None:
        descriptor_limit = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
        if descriptor_limit == resource.RLIM_INFINITY:
            descriptor_limit = _HIGHEST_SOFT_LIMIT
    wanted = concurrency * (1 + IDLE_PER_REQUEST)
    reserved = max(_FEWEST_RESERVED, min(RESERVED_DESCRIPTORS, descriptor_limit // 8))
    return max(1, min(wanted, descriptor_limit - reserved))


def lookups_for(max_connections: int) -> int:
    """How many DNS lookups may run at once: one per request in flight, which is the cap
    less the idle connections it allows (a burst of thousands of queries at once would
    overflow a resolver's receive queue, and lost queries wait seconds to be resent)."""
    return max(1, max_connections // (1 + IDLE_PER_REQUEST))
