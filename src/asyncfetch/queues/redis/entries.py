"""A Redis worker's per-request conversions: stream entries into work, results into the
arguments of a commit.

They run once for every request, so this module is compiled with mypyc (pyproject's
native list); interpreted, they had been a tenth of a worker's CPU. It does no I/O and
does not import redis.
"""

from __future__ import annotations

from collections.abc import Sequence

from ..._models import InvalidInput, Request
from ...sinks._records import encode_lines_into
from ..base import Completed, WorkItem
from .codec import decode_request
from .lease import Leases

# An entry as XREADGROUP returns it: its id, and its fields (None once deleted by hand).
Entry = tuple[bytes, dict[bytes, bytes] | None]


def decode_entry(fields: dict[bytes, bytes]) -> Request | InvalidInput:
    """The request an entry carries; a malformed one is still owed a record, so it becomes
    an invalid-input item rather than an error that would crash every worker in turn."""
    payload = fields.get(b"r", b"")
    try:
        return decode_request(payload)
    except (ValueError, KeyError, TypeError) as error:
        message = f"malformed queued request ({type(error).__name__})"
        raw = payload[:200].decode("utf-8", "replace")
        return InvalidInput(line=None, message=message, raw=raw)


def fresh_work(entries: list[Entry], leases: Leases, enqueued_at: float) -> list[WorkItem]:
    """New entries (delivered for the first time) as work, each held under our lease from
    now on. An entry deleted from the stream by hand has nothing left to run: released."""
    work: list[WorkItem] = []
    for entry_id, fields in entries:
        token = entry_id.decode()
        if not fields:
            leases.release({token})
            continue
        leases.hold(token)
        work.append(WorkItem(decode_entry(fields), enqueued_at, token))
    return work


def commit_arguments(chunk: Sequence[Completed]) -> tuple[str, str, bytes, set[str]]:
    """A chunk's entry ids, the lengths of their records, and those records back to back
    (the commit script's last three arguments), and the set of the entry ids. Records are
    encoded as the JSONL sink writes them, one line each (safe for odd values)."""
    tokens: list[str] = []
    sizes: list[str] = []
    packed = bytearray()
    for item, result in chunk:
        token = item.token
        if token is None:
            raise ValueError("a Redis job item must carry its stream entry id")
        tokens.append(token)
        start = len(packed)
        encode_lines_into(packed, (result,))
        sizes.append(str(len(packed) - start))
    return " ".join(tokens), " ".join(sizes), bytes(packed), set(tokens)
