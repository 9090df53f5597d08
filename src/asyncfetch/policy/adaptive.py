"""Adaptive politeness: each host's concurrency and rate learned from what it answers.

The algorithm is AIMD (additive increase, multiplicative decrease), as in TCP congestion
control and the ``AIMDLimit`` of Netflix's concurrency-limits, applied to two limits:

- **rate** (requests per second): unlimited until the host first throttles (429, or 503).
  Then it is cut to ``RATE_DECREASE`` × the rate the host actually accepted over the last
  second of active time (its *goodput*: what a rate-limited host grants is exactly what it
  accepted while we pushed past it), or × the current limit if that is lower. After the
  first cut the rate doubles every second (slow start: a host with a small burst
  allowance makes the first estimate low); after later cuts it grows linearly in time by
  ``RATE_GROWTH`` of the cut level per second.
- **concurrency**: starts at the user's ``--per-host``; cut by ``CONCURRENCY_DECREASE`` on
  429/503, refused or reset connections, timeouts, and when latency climbs well above the
  host's own baseline (its lowest latency seen, drifting up slowly); grows by one request
  per round of ``limit`` healthy responses, as TCP's window does.

Why AIMD and not a gradient limiter (Netflix's Gradient2, Vegas): those read latency only,
and an API's rate limit shows up as 429s, not as latency; a gradient limiter also needs a
clean "no load" latency, which a client sharing a busy machine does not have. AIMD takes
every signal (a status, an error kind, a latency) as the same binary "too much", and it
is the algorithm known to converge to a fair share when several clients share a host
(Chiu and Jain, 1989), which is what workers sharing a host in Redis mode are.

A decrease happens at most once per round: a signal from a request that started before
the last cut says nothing about the new limit. ``Retry-After`` on 429/503 pauses the host.

Everything here is pure: time is passed in (``now``, seconds of a monotonic clock), so
tests drive it with a fake clock. The waiting and waking live in ``limits.py``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Final

from .._errors import ErrorKind, TransportError
from .._models import Response
from .retry import parse_retry_after

CONCURRENCY_DECREASE: Final = 0.7  # CUBIC's beta: gentler than Reno's 0.5
RATE_DECREASE: Final = 0.9  # applied to measured goodput, already close to the host's limit
RATE_GROWTH: Final = 0.05  # of the cut level, per second: back to the old level in ~2 s
SLOW_START_GROWTH: Final = 2.0  # per second, between the first cut and the second
MIN_RATE: Final = 0.5  # requests per second: a throttled host is still probed
LATENCY_TOLERANCE: Final = 2.0  # "well above the baseline": twice it ...
LATENCY_FLOOR_S: Final = 0.02  # ... and 20 ms more: local scheduling noise is not load
BASELINE_DRIFT: Final = 0.001  # the baseline rises towards slower samples over ~1,000 of them
RECENT_WEIGHT: Final = 0.2  # the recent latency is an average of the last few samples
GOODPUT_WINDOW_S: Final = 1.0
MAX_PAUSE_S: Final = 120.0

# What an outcome says about the host's load.
HEALTHY: Final = 0
THROTTLED: Final = 1  # 429, 503: the host asks us to slow down
OVERLOADED: Final = 2  # refused, reset, timed out: it may be struggling
NEUTRAL: Final = 3  # says nothing about load (DNS, TLS, a stale keep-alive connection)

_THROTTLE_STATUSES: Final = frozenset({429, 503})
_OVERLOAD_KINDS: Final = frozenset({ErrorKind.CONNECT, ErrorKind.READ, ErrorKind.TIMEOUT})


def classify(outcome: object) -> int:
    """HEALTHY, THROTTLED, OVERLOADED or NEUTRAL for one attempt's outcome."""
    if isinstance(outcome, Response):
        return THROTTLED if outcome.status in _THROTTLE_STATUSES else HEALTHY
    if isinstance(outcome, TransportError):
        return OVERLOADED if outcome.kind in _OVERLOAD_KINDS else NEUTRAL
    return NEUTRAL


def retry_after_of(outcome: object) -> float | None:
    """Seconds the host asked us to wait (``Retry-After`` of a 429/503), capped."""
    if not isinstance(outcome, Response) or outcome.status not in _THROTTLE_STATUSES:
        return None
    seconds = parse_retry_after(outcome.header("Retry-After"))
    return None if seconds is None else min(seconds, MAX_PAUSE_S)


@dataclass(frozen=True, slots=True)
class HostReport:
    """One host's figures for the end-of-run summary."""

    host: str
    requests: int
    throttled_429: int
    throttled_503: int
    concurrency: int
    concurrency_range: tuple[int, int]
    rate: float | None  # requests per second; None = not limited
    rate_range: tuple[float, float] | None


class HostLimit:
    """One host's adaptive limits and the counters the summary shows.

    ``cap_concurrency`` and ``cap_rate`` are the user's limits (``--per-host``, and the
    lower of ``--per-host-rate`` and ``--rate``); the learned limits never exceed them.
    With ``adapt`` false the limits stay at the caps; ``Retry-After`` still pauses. With
    ``learn_rate`` false the rate is learned elsewhere (in Redis, shared by workers).
    """

    __slots__ = (
        "_adapt",
        "_cap_concurrency",
        "_cap_rate",
        "_concurrency",
        "_concurrency_cut_at",
        "_cut_at",
        "_cuts",
        "_goodput",
        "_goodput_at",
        "_learn_rate",
        "_max_concurrency",
        "_min_concurrency",
        "_rate_cut",
        "_rate_range",
        "_slope",
        "baseline",
        "in_flight",
        "next_slot",
        "pause_started",
        "paused_until",
        "pauses",
        "recent",
        "requests",
        "status_429",
        "status_503",
    )

    def __init__(
        self, cap_concurrency: int, cap_rate: float | None, adapt: bool, learn_rate: bool = True
    ) -> None:
        self._adapt = adapt
        self._learn_rate = learn_rate
        self._cap_concurrency = cap_concurrency
        self._cap_rate = cap_rate
        self._concurrency = float(cap_concurrency)
        self._min_concurrency = self._max_concurrency = cap_concurrency
        self._concurrency_cut_at = -math.inf
        self._rate_cut: float | None = None  # the rate set by the last cut (None: no cut)
        self._cut_at = -math.inf
        self._cuts = 0
        self._slope = 0.0
        self._rate_range: tuple[float, float] | None = None
        self._goodput = 0.0  # decaying count of accepted requests (per GOODPUT_WINDOW_S)
        self._goodput_at = 0.0
        self.baseline = math.inf  # seconds
        self.recent = 0.0  # seconds
        self.in_flight = 0
        self.next_slot = -math.inf  # GCRA: when the next request may start
        self.pause_started = -math.inf
        self.paused_until = -math.inf
        self.pauses = 0  # bumped by each new pause: reservations made before it are void
        self.requests = 0
        self.status_429 = 0
        self.status_503 = 0

    # -- the limits ----------------------------------------------------------------------

    @property
    def concurrency(self) -> int:
        """Requests that may be in flight now."""
        return max(1, int(self._concurrency))

    def rate(self, now: float) -> float | None:
        """Requests per second allowed now; None when no rate applies."""
        cut = self._rate_cut
        if cut is None:
            return self._cap_rate
        since = max(0.0, now - self._cut_at)
        if self._cuts == 1:
            grown = cut * SLOW_START_GROWTH ** min(since, 30.0)
        else:
            grown = cut + self._slope * since
        cap = self._cap_rate
        return grown if cap is None or grown < cap else cap

    @property
    def idle(self) -> bool:
        return self.in_flight == 0

    @property
    def learned(self) -> bool:
        """Whether forgetting this host would lose something (a cut, a pause)."""
        return self._rate_cut is not None or self._concurrency < self._cap_concurrency

    # -- starting requests ---------------------------------------------------------------

    def can_start(self, now: float) -> bool:
        return (
            self.in_flight < self.concurrency
            and now >= self.paused_until
            and (self.next_slot <= now or self.rate(now) is None)
        )

    def wait_time(self, now: float) -> float:
        """Seconds until a start is possible as far as time goes (pause, rate): 0 if now."""
        if now < self.paused_until:
            return self.paused_until - now
        if self.rate(now) is None:
            return 0.0
        return max(0.0, self.next_slot - now)

    def start(self, now: float) -> None:
        """A request starts now: hold its place, and take its rate slot."""
        self.in_flight += 1
        self.take_slot(now)

    def take_slot(self, now: float) -> float:
        """Reserve the next rate slot; return how long to wait for it (GCRA)."""
        rate = self.rate(now)
        if rate is None:
            return 0.0
        interval = 1.0 / rate
        # A slot missed by less than one interval (a timer that fired late) still counts
        # as on time, so wake-up jitter does not lower the long-run rate.
        arrival = self.next_slot if self.next_slot > now - interval else now
        self.next_slot = arrival + interval
        return max(0.0, arrival - now)

    def finish(self) -> None:
        self.in_flight -= 1

    # -- what the host answered ----------------------------------------------------------

    def observe(
        self, outcome: object, started: float, now: float, latency_is_the_hosts: bool = True
    ) -> None:
        """Learn from one attempt's outcome; it started at ``started`` and ended ``now``.
        ``latency_is_the_hosts`` is false while the client itself is the bottleneck (its
        CPU busy, or its event loop late): latency then says nothing about the host."""
        signal = classify(outcome)
        # Only NEUTRAL needs the type check: every other signal came from a Response or a
        # TransportError (and the check costs a global look-up per request when compiled).
        if signal != NEUTRAL or isinstance(outcome, TransportError):
            self.requests += 1  # an attempt that reached the host, or tried to
        if signal == HEALTHY:
            self._healthy(now - started, started, now, latency_is_the_hosts)
        elif signal == THROTTLED:
            if isinstance(outcome, Response) and outcome.status == 429:
                self.status_429 += 1
            else:
                self.status_503 += 1
            self._throttled(started, now, retry_after_of(outcome))
        elif signal == OVERLOADED and self._adapt and started >= self._concurrency_cut_at:
            self._cut_concurrency(now)

    def _healthy(self, latency: float, started: float, now: float, trusted: bool) -> None:
        self._count_goodput(now)
        if not self._adapt:
            return
        if latency < self.baseline:
            self.baseline = latency
        else:
            self.baseline += (latency - self.baseline) * BASELINE_DRIFT
        self.recent += (latency - self.recent) * RECENT_WEIGHT
        if trusted and self._slow(latency) and self._slow(self.recent):
            if started >= self._concurrency_cut_at:
                self._cut_concurrency(now)
        elif self._concurrency < self._cap_concurrency:
            self._concurrency = min(
                self._cap_concurrency, self._concurrency + 1.0 / self._concurrency
            )
            self._max_concurrency = max(self._max_concurrency, self.concurrency)

    def _slow(self, latency: float) -> bool:
        excess = latency - self.baseline
        return excess > LATENCY_FLOOR_S and latency > LATENCY_TOLERANCE * self.baseline

    def _throttled(self, started: float, now: float, retry_after: float | None) -> None:
        if retry_after is not None and retry_after > 0:
            self._pause(now, now + retry_after)
        if not self._adapt or started < self._cut_at:
            return  # already answered by the last cut
        self._cut_concurrency(now)
        if self._learn_rate:
            self._cut_rate(now)

    def _pause(self, now: float, until: float) -> None:
        if until <= self.paused_until:
            return
        if now >= self.paused_until:
            self.pause_started = now
        self.paused_until = until
        self.pauses += 1
        # The slots reserved before the pause are void: the next one is at its end.
        self.next_slot = until

    def _cut_concurrency(self, now: float) -> None:
        self._concurrency = max(1.0, self._concurrency * CONCURRENCY_DECREASE)
        self._concurrency_cut_at = now
        self._min_concurrency = min(self._min_concurrency, self.concurrency)

    def _cut_rate(self, now: float) -> None:
        accepted = self.goodput(now)
        current = self.rate(now)
        base = accepted if current is None or accepted < current else current
        cut = max(MIN_RATE, base * RATE_DECREASE)
        if self._cap_rate is not None:
            cut = min(cut, self._cap_rate)
        self._rate_cut = cut
        self._cuts += 1
        # Growth starts when requests may flow again, at the end of any pause.
        self._cut_at = max(now, self.paused_until)
        self._slope = cut * RATE_GROWTH
        low, high = self._rate_range or (cut, cut)
        self._rate_range = (min(low, cut), max(high, base))

    # -- goodput: accepted requests per second of active (unpaused) time ------------------

    def _count_goodput(self, now: float) -> None:
        self._goodput = self._decayed_goodput(now) + 1.0
        self._goodput_at = now

    def goodput(self, now: float) -> float:
        return self._decayed_goodput(now) / GOODPUT_WINDOW_S

    def _decayed_goodput(self, now: float) -> float:
        elapsed = now - self._goodput_at
        # Time spent paused is not time the host could have accepted anything in.
        overlap = min(now, self.paused_until) - max(self._goodput_at, self.pause_started)
        if overlap > 0:
            elapsed -= overlap
        if elapsed <= 0:
            return self._goodput
        return self._goodput * math.exp(-elapsed / GOODPUT_WINDOW_S)

    def report(self, host: str, now: float) -> HostReport:
        rate = self.rate(now)
        rate_range = self._rate_range
        if rate_range is not None and rate is not None:
            rate_range = (min(rate_range[0], rate), max(rate_range[1], rate))
        return HostReport(
            host=host,
            requests=self.requests,
            throttled_429=self.status_429,
            throttled_503=self.status_503,
            concurrency=self.concurrency,
            concurrency_range=(self._min_concurrency, self._max_concurrency),
            rate=rate,
            rate_range=rate_range,
        )


# The client is the bottleneck when it used this share of a CPU, or its loop ran late.
BUSY_CPU_SHARE: Final = 0.6
LATE_LOOP_S: Final = 0.01


def client_is_bottleneck(cpu_s: float, wall_s: float, loop_late_s: float) -> bool:
    """Whether the client's own load explains rising latencies over the last interval:
    ``cpu_s`` of process CPU time in ``wall_s``, a timer that fired ``loop_late_s`` late.

    A client that saturates its core (at tens of thousands of requests a second) queues
    responses behind each other, and one whose process waits for a shared machine's CPU
    sees every response late: either way the latency grows with our own load, and cutting
    the host's concurrency would only slow a healthy host down.
    """
    return loop_late_s > LATE_LOOP_S or (wall_s > 0 and cpu_s / wall_s > BUSY_CPU_SHARE)


class HostTable:
    """Every host's :class:`HostLimit`, bounded: idle hosts are forgotten past ``capacity``.

    :meth:`evict` is the one eviction hook. Hosts that learned nothing go first (they
    would start again from the same caps), then the least recently added idle ones;
    hosts with requests in flight are never forgotten.
    """

    def __init__(
        self,
        cap_concurrency: int,
        cap_rate: float | None,
        *,
        adapt: bool = True,
        capacity: int = 10_000,
    ) -> None:
        self.cap_concurrency = cap_concurrency
        self.cap_rate = cap_rate
        self.adapt = adapt
        self.learn_rate = True  # False when the rate is learned in Redis, across workers
        self.capacity = capacity
        self.hosts: dict[str, HostLimit] = {}

    def get(self, host: str) -> HostLimit:
        limit = self.hosts.get(host)
        if limit is None:
            if len(self.hosts) >= self.capacity:
                self.evict(len(self.hosts) - self.capacity + 1)
            limit = self.hosts[host] = HostLimit(
                self.cap_concurrency, self.cap_rate, self.adapt, self.learn_rate
            )
        return limit

    def evict(self, count: int) -> int:
        """Forget at least ``count`` idle hosts if there are that many; return how many."""
        idle = [(host, limit) for host, limit in self.hosts.items() if limit.idle]
        # Unlearned hosts first, each group oldest first (dicts keep insertion order).
        idle.sort(key=lambda pair: pair[1].learned)
        # Half the table at once keeps eviction amortised O(1) per new host.
        victims = idle[: max(count, self.capacity // 2)]
        for host, _limit in victims:
            del self.hosts[host]
        return len(victims)

    def throttled_now(self, now: float) -> int:
        """Hosts whose requests are held back right now (paused, or rate below the cap)."""
        return sum(1 for limit in self.hosts.values() if _held_back(limit, now))

    def reports(self, now: float, *, top: int = 10) -> list[HostReport]:
        """The hosts most worth showing: throttled ones first, then the busiest."""

        def weight(pair: tuple[str, HostLimit]) -> tuple[int, int]:
            limit = pair[1]
            return (limit.status_429 + limit.status_503, limit.requests)

        ranked = sorted(self.hosts.items(), key=weight, reverse=True)[:top]
        return [limit.report(host, now) for host, limit in ranked]


def _held_back(limit: HostLimit, now: float) -> bool:
    if now < limit.paused_until:
        return True
    return limit.learned
