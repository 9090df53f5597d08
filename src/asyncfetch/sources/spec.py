"""Request specs (one JSON object or mapping each) turned into validated Requests.

The schema is strict on purpose: an unknown key such as ``"header"`` is an error rather
than silently ignored, because dropping someone's auth header is worse than refusing it.
A key whose value is ``null`` counts as absent.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterable, Mapping
from typing import Any

import orjson

from .._errors import InputError
from .._models import Headers, InvalidInput, Request, request_ids
from .._settings import RequestDefaults
from .validate import (
    excerpt,
    known_valid_url,
    type_name,
    validate_header,
    validate_method,
    validate_url,
)

SPEC_KEYS = ("url", "method", "headers", "json", "body", "body_b64", "id", "meta")
BODY_KEYS = ("json", "body", "body_b64")
RAW_EXCERPT_LENGTH = 200
_ALLOWED = frozenset(SPEC_KEYS)


def build_request(
    spec: Mapping[str, Any], *, line: int | None, defaults: RequestDefaults
) -> Request:
    """Build a Request from one spec; raise :class:`InputError` saying what to fix.

    ``defaults.headers`` go under the spec's own headers (the spec wins, compared
    case-insensitively) and ``defaults.method`` applies when the spec has none.
    """
    if not isinstance(spec, Mapping):
        raise InputError(f"a request spec must be a JSON object, not {type_name(spec)}", line)
    try:
        return _build(spec, line, defaults)
    except InputError as exc:
        exc.line = line
        raise


def _build(spec: Mapping[str, Any], line: int | None, defaults: RequestDefaults) -> Request:
    _reject_unknown_keys(spec)
    if spec.get("url") is None:
        raise InputError('the "url" field is required')
    url = validate_url(_field(spec, "url", str, "a string"))
    method = spec.get("method")
    headers = _merge_headers(defaults.headers, _spec_headers(spec.get("headers")))
    body, content_type = _body(spec)
    if content_type and not _has_header(headers, "content-type"):
        headers += (("Content-Type", content_type),)
    return Request.create(
        url,
        method=defaults.method if method is None else validate_method(method),
        headers=headers,
        body=body,
        id=spec_id(spec),
        line=line,
        meta=spec.get("meta"),
    )


def _reject_unknown_keys(spec: Mapping[Any, Any]) -> None:
    unknown = [key for key in spec if key not in _ALLOWED]
    if unknown:
        names = ", ".join(excerpt(repr(key), 40) for key in unknown[:5])
        raise InputError(f"unknown field(s) {names}; allowed fields are {', '.join(SPEC_KEYS)}")


def _field(spec: Mapping[str, Any], key: str, kind: type, expected: str) -> Any:
    value = spec[key]
    # bool is a subclass of int, but true/false is never a valid id or string field.
    if not isinstance(value, kind) or isinstance(value, bool):
        raise InputError(f'"{key}" must be {expected}, not {type_name(value)}')
    return value


def spec_id(spec: Mapping[str, Any]) -> str | None:
    """The spec's ``id`` as a string (integers are kept as their decimal text)."""
    value = spec.get("id")
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise InputError(f'"id" must be a string or an integer, not {type_name(value)}')
    return str(value)


def _spec_headers(value: Any) -> Headers:
    if value is None:
        return ()
    if isinstance(value, Mapping):
        pairs: Iterable[Any] = value.items()
    elif isinstance(value, list | tuple):
        pairs = value
    else:
        raise InputError(
            f'"headers" must be an object or a list of [name, value] pairs, not {type_name(value)}'
        )
    return tuple(_header_pair(pair) for pair in pairs)


def _header_pair(pair: Any) -> tuple[str, str]:
    if not isinstance(pair, list | tuple) or len(pair) != 2:
        raise InputError(
            f'each item of "headers" must be a [name, value] pair, not {excerpt(repr(pair))}'
        )
    return validate_header(pair[0], pair[1])


def _merge_headers(defaults: Headers, own: Headers) -> Headers:
    own_names = {name.lower() for name, _ in own}
    return tuple(pair for pair in defaults if pair[0].lower() not in own_names) + own


def _has_header(headers: Headers, lower_name: str) -> bool:
    return any(name.lower() == lower_name for name, _ in headers)


def _body(spec: Mapping[str, Any]) -> tuple[bytes | None, str | None]:
    """The body bytes and the Content-Type it implies, from json | body | body_b64."""
    given = [key for key in BODY_KEYS if spec.get(key) is not None]
    if len(given) > 1:
        raise InputError(f"give at most one of json, body, body_b64 (got {', '.join(given)})")
    if not given:
        return None, None
    if given[0] == "json":
        return _json_body(spec["json"]), "application/json"
    if given[0] == "body":
        return _encode_text_body(_field(spec, "body", str, "a string")), None
    return _decode_b64_body(_field(spec, "body_b64", str, "a base64 string")), None


def _json_body(value: Any) -> bytes:
    try:
        return orjson.dumps(value)
    except orjson.JSONEncodeError as exc:
        raise InputError(f'"json" cannot be encoded as JSON: {exc}') from exc


def _encode_text_body(text: str) -> bytes:
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError as exc:  # lone surrogates, only possible from Python callers
        raise InputError('"body" is not valid Unicode text; use body_b64 for bytes') from exc


def _decode_b64_body(text: str) -> bytes:
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise InputError(f'"body_b64" is not valid base64: {exc}') from exc


def invalid_input(
    line: int | None, message: str, raw: str, spec: Mapping[str, Any] | None = None
) -> InvalidInput:
    """The record for one bad line, keeping the spec's id and meta when they are readable."""
    record_id = ""
    if spec is not None:
        try:
            record_id = spec_id(spec) or ""
        except InputError:
            record_id = ""  # the id itself is what is wrong; the record gets a derived id
    return InvalidInput(
        line=line,
        message=message,
        raw=raw[:RAW_EXCERPT_LENGTH],
        id=record_id,
        meta=None if spec is None else spec.get("meta"),
    )


def url_request(
    url: str, line: int | None, raw: str, defaults: RequestDefaults
) -> Request | InvalidInput:
    """A bare URL (a text line, a library string) as a Request with the run's defaults."""
    try:
        validate_url(url)
    except InputError as exc:
        return invalid_input(line, exc.message, raw)
    return Request.create(
        url, method=defaults.method, headers=defaults.headers, body=defaults.data, line=line
    )


class UrlRequests:
    """:func:`url_request` for many URLs with the same defaults (a URL list's lines).

    What depends on the defaults alone is worked out once: the method, the headers and
    ``url_id``, the id of a URL under them. :meth:`known` is the request of a URL already
    validated; a caller may build it inline in a hot loop from these same fields.
    """

    def __init__(self, defaults: RequestDefaults) -> None:
        self.defaults = defaults
        self.method = defaults.method.upper()
        self.headers = tuple(defaults.headers)
        self.body = defaults.data
        self.url_id = request_ids(self.method, self.body)

    def __call__(self, url: str, line: int | None, raw: str) -> Request | InvalidInput:
        """What ``url_request(url, line, raw, defaults)`` returns."""
        if not known_valid_url(url):
            try:
                validate_url(url)
            except InputError as exc:
                return invalid_input(line, exc.message, raw)
        return self.known(url, line)

    def known(self, url: str, line: int | None) -> Request:
        """The request of a valid ``url``: what Request.create would make of it."""
        return Request(url, self.method, self.headers, self.body, self.url_id(url), line)
