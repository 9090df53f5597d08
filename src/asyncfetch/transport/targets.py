"""Request targets as both engines send them: the URL's own bytes, dot segments removed.

curl and browsers send a URL's path and query as written, except that they remove dot
segments (RFC 3986 section 5.2.4) and percent-encode what cannot go on the wire (spaces,
non-ASCII). They never decode: ``%2F`` and ``%3F`` mean something other than ``/`` and
``?`` (section 2.2), so a client that decodes them asks for another resource.
"""

from __future__ import annotations

from typing import Final
from urllib.parse import quote

# Characters a request target may carry as they are (RFC 3986 reserved and unreserved).
SAFE_TARGET_CHARS: Final = "!#$%&'()*+,/:;=?@[]~"


def normalized_target(target: str) -> str:
    """``target`` (path and query, no fragment) ready for the request line."""
    if target[:1] != "/":
        target = "/" + target
    if not target.isascii() or " " in target:
        target = quote(target, safe=SAFE_TARGET_CHARS)
    if "/." in target:
        path, mark, query = target.partition("?")
        target = remove_dot_segments(path) + mark + query
    return target


def remove_dot_segments(path: str) -> str:
    """RFC 3986 section 5.2.4, for an absolute path: ``/a/b/../c/./d`` is ``/a/c/d``."""
    output: list[str] = []
    segments = path.split("/")[1:]
    for index, segment in enumerate(segments):
        last = index == len(segments) - 1
        if segment == "..":
            if output:
                output.pop()
            if last:
                output.append("")  # "/a/.." is "/", a directory
        elif segment == ".":
            if last:
                output.append("")
        else:
            output.append(segment)
    return "/" + "/".join(output)
