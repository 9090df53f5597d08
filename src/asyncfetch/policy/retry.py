"""Pure retry decisions (RFC 9110 §9.2.2): no I/O, no clock but the one passed in.

A request that never reached the server (DNS, refused connection, TLS handshake) may be
retried whatever its method. One that may have reached it (timeout, read error, 5xx, 429)
is retried only for idempotent methods, because repeating a POST can repeat its effect.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final

from .._errors import ErrorKind, TransportError
from .._models import Request, Response
from .._settings import RetryPolicy

# Kinds that no retry can fix: the same bytes give the same failure.
_PERMANENT_KINDS: Final = frozenset(
    {ErrorKind.TOO_LARGE, ErrorKind.REDIRECT, ErrorKind.INVALID_INPUT}
)


@dataclass(frozen=True, slots=True)
class RetryDecision:
    retry: bool
    delay: float = 0.0


GIVE_UP: Final = RetryDecision(retry=False)


def backoff_delay(policy: RetryPolicy, attempt: int, rng: random.Random | None = None) -> float:
    """Full jitter: uniform in [0, min(cap, base * 2**(attempt-1))] (AWS architecture blog).

    Full jitter spreads retries of many clients that failed together, so they do not return
    in lockstep and knock the server over again.
    """
    ceiling = min(policy.backoff_cap, policy.backoff_base * (2 ** max(attempt - 1, 0)))
    return (rng or random).uniform(0.0, ceiling)


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """Seconds to wait from a Retry-After value (delta-seconds or HTTP-date); None if invalid."""
    if value is None:
        return None
    value = value.strip()
    # isdigit() alone accepts "²" and other Unicode digits that float() rejects; a header
    # is server input, so only ASCII delta-seconds count.
    if value.isascii() and value.isdigit():
        return float(value)
    # Imported here: the email package is a sizeable import that an HTTP-date, rare in
    # Retry-After, is the only reason for.
    from email.utils import parsedate_to_datetime

    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


def _may_retry_method(request: Request, policy: RetryPolicy, may_have_been_sent: bool) -> bool:
    return not may_have_been_sent or request.idempotent or policy.retry_non_idempotent


def decide_after_error(
    request: Request,
    attempt: int,
    error: TransportError,
    policy: RetryPolicy,
    rng: random.Random | None = None,
) -> RetryDecision:
    """Whether attempt number ``attempt`` (1-based), which failed with ``error``, is retried."""
    if attempt >= policy.max_attempts or error.kind in _PERMANENT_KINDS or error.permanent:
        return GIVE_UP
    if error.kind is ErrorKind.PROTOCOL and not error.may_have_been_sent:
        # The engine could not even build the request (a URL or header it cannot
        # encode): every attempt would fail the same way before sending a byte.
        return GIVE_UP
    if not _may_retry_method(request, policy, error.may_have_been_sent):
        return GIVE_UP
    return RetryDecision(retry=True, delay=backoff_delay(policy, attempt, rng))


def decide_after_response(
    request: Request,
    attempt: int,
    response: Response,
    policy: RetryPolicy,
    rng: random.Random | None = None,
    now: datetime | None = None,
) -> RetryDecision:
    """Whether a response with a retryable status (429, 5xx by default) is retried."""
    if response.status not in policy.statuses or attempt >= policy.max_attempts:
        return GIVE_UP
    if not _may_retry_method(request, policy, may_have_been_sent=True):
        return GIVE_UP
    delay = backoff_delay(policy, attempt, rng)
    retry_after = parse_retry_after(response.header("Retry-After"), now=now)
    if retry_after is not None:
        if retry_after > policy.retry_after_cap:
            # Waiting longer than the cap would stall the run; report the response instead.
            return GIVE_UP
        delay = max(delay, retry_after)
    return RetryDecision(retry=True, delay=delay)
