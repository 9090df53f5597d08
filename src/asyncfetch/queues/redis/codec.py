"""JSON encodings of what distributed mode keeps in Redis: requests, records, dead letters.

Everything stored is JSON (orjson), never pickle: a worker must not execute what it reads
from a shared server, and other tools should be able to read a job. This module does no
I/O and does not import redis.
"""

from __future__ import annotations

import base64
from typing import Any

import orjson

from ..._models import InvalidInput, Request, Result, Timings
from ...policy.records import failure_result, invalid_input_result, utc_now_iso
from ...policy.redact import redact_url


def encode_request(item: Request | InvalidInput) -> bytes:
    """A request (or a bad input line, which still owes its record) as one JSON payload."""
    if isinstance(item, InvalidInput):
        return orjson.dumps(
            {
                "invalid": item.message,
                "line": item.line,
                "raw": item.raw,
                "id": item.record_id,
                "meta": item.meta,
            }
        )
    spec: dict[str, Any] = {
        "id": item.id,
        "url": item.url,
        "method": item.method,
        "headers": item.headers,
        "line": item.line,
        "meta": item.meta,
    }
    if item.body is not None:
        spec["body_b64"] = base64.b64encode(item.body).decode("ascii")
    return orjson.dumps(spec)


def decode_request(payload: bytes) -> Request | InvalidInput:
    """The inverse of :func:`encode_request`; raises ValueError for a malformed payload."""
    spec = orjson.loads(payload)
    if not isinstance(spec, dict):
        raise ValueError("a queued request must be a JSON object")
    if "invalid" in spec:
        return InvalidInput(
            line=spec.get("line"),
            message=str(spec["invalid"]),
            raw=str(spec.get("raw", "")),
            id=str(spec.get("id", "")),
            meta=spec.get("meta"),
        )
    body = spec.get("body_b64")
    return Request(
        url=str(spec["url"]),
        method=str(spec.get("method", "GET")),
        headers=tuple((str(name), str(value)) for name, value in spec.get("headers", ())),
        body=None if body is None else base64.b64decode(body),
        id=str(spec["id"]),
        line=spec.get("line"),
        meta=spec.get("meta"),
    )


def decode_result(payload: bytes) -> Result:
    """A Result rebuilt from its schema-v1 record."""
    return Result.from_record(orjson.loads(payload))


def dead_letter_record(
    item: Request | InvalidInput, entry_id: str, deliveries: int, reason: str
) -> bytes:
    """The record kept in the dead-letter stream: which request, how often, and why."""
    url = item.raw if isinstance(item, InvalidInput) else item.url
    record_id = item.record_id if isinstance(item, InvalidInput) else item.id
    return orjson.dumps(
        {
            "id": record_id,
            "entry": entry_id,
            "url": redact_url(url),
            "deliveries": deliveries,
            "reason": reason,
        }
    )


def dead_letter_result(request_payload: bytes, dead_payload: bytes) -> Result:
    """The result record ``collect`` writes for a dead-lettered request (kind internal)."""
    dead = orjson.loads(dead_payload)
    item = decode_request(request_payload)
    if isinstance(item, InvalidInput):
        return invalid_input_result(item)
    message = f"dead-lettered after {dead['deliveries']} deliveries: {dead['reason']}"
    return failure_result(
        item, "internal", message, attempts=0, timings=Timings(), started_at=utc_now_iso()
    )
