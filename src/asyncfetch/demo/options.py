"""The demo's option defaults and checks; light to import, so ``--help`` stays fast."""

from __future__ import annotations

from .._errors import ConfigError
from .messages import LANGUAGES

DEFAULT_BULK = 1000
DEFAULT_BULK_CONCURRENCY = 200
# The largest walkthrough delay is 3 s; the demo's timeouts are set well above 3 s x MAX_SCALE.
MAX_SCALE = 10.0


def check_options(*, lang: str, scale: float, bulk: int, concurrency: int) -> None:
    """Raise ConfigError, saying how to fix it, for an option the demo cannot run with."""
    if lang not in LANGUAGES:
        raise ConfigError(f"unknown demo language {lang!r}; use one of: {', '.join(LANGUAGES)}")
    if not 0 < scale <= MAX_SCALE:
        raise ConfigError(f"scale must be > 0 and <= {MAX_SCALE:g}, e.g. 1.0 or 0.05")
    if bulk < 1:
        raise ConfigError("bulk must be at least 1 request, e.g. 1000")
    if concurrency < 1:
        raise ConfigError("concurrency must be at least 1, e.g. 200")
