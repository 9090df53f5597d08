"""Request ids are SHA-256 digests of the request, the same from one version to the next.

A resumed run finds the requests it finished by their ids in the journal: an id computed
differently would repeat every request of a run written before.
"""

from __future__ import annotations

from asyncfetch._models import Request, request_id, request_ids


def test_request_ids_are_the_ones_runs_already_journaled() -> None:
    # Ids that earlier versions wrote: a resumed run must find them again.
    assert request_id("get", "http://example.com/a", None) == "e3d255ffb52b23cf2d4502a9"
    assert request_ids("GET", None)("http://example.com/a") == "e3d255ffb52b23cf2d4502a9"
    posted = Request.create("http://x/é", method="POST", body=b"body")
    assert posted.id == "e8313ed093aff9d72b092f7b"
    assert request_ids("POST", b"body")("http://x/é") == posted.id
