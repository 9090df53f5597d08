"""iter_requests: the library's way in, from URLs, spec mappings or Requests in memory."""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterable, Iterable, Mapping
from typing import Any

from .._errors import InputError
from .._models import InvalidInput, Request
from .._settings import RequestDefaults
from .spec import build_request, invalid_input, url_request
from .validate import type_name

Item = str | Request | Mapping[str, Any]
NO_DEFAULTS = RequestDefaults()


async def iter_requests(
    items: Iterable[Item] | AsyncIterable[Item], *, defaults: RequestDefaults = NO_DEFAULTS
) -> AsyncGenerator[Request | InvalidInput, None]:
    """Turn each item into exactly one Request or InvalidInput, in order, lazily.

    A string is a URL (surrounding whitespace ignored), a Mapping is a request spec as in
    JSONL input, a Request passes through unchanged. ``line`` is the item's 1-based
    position. Items are pulled only as fast as the caller consumes the results, so an
    endless generator is fine. A single string (not a list of them) raises TypeError.
    """
    if isinstance(items, str | bytes):
        raise TypeError("iter_requests takes an iterable of URLs or specs, not one string")
    if isinstance(items, AsyncIterable):
        number = 0
        async for item in items:
            number += 1
            yield to_request(item, number, defaults)
    else:
        for number, item in enumerate(items, 1):
            yield to_request(item, number, defaults)


def to_request(
    item: object, number: int | None, defaults: RequestDefaults
) -> Request | InvalidInput:
    """One item (URL string, spec mapping or Request) as a Request or InvalidInput.

    ``number`` is the item's line; None for a single request outside any input.
    """
    if isinstance(item, Request):
        return item
    if isinstance(item, str):
        return url_request(item.strip(), number, item, defaults)
    if isinstance(item, Mapping):
        try:
            return build_request(item, line=number, defaults=defaults)
        except InputError as exc:
            return invalid_input(number, exc.message, _raw(item), item)
    which = "the item" if number is None else f"item {number}"
    message = f"{which} is {type_name(item)}; expected a URL string, a mapping or a Request"
    return invalid_input(number, message, _raw(item))


def _raw(item: object) -> str:
    try:
        return repr(item)[:1024]
    except Exception as exc:  # a caller's object with a broken __repr__ must not stop the run
        return f"<unprintable {type(item).__name__}: {type(exc).__name__}>"
