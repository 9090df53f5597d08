"""Response bodies saved as files: ``<save_dir>/<host>/<id><ext>``, or, named by URL
(``--save-names url``), ``<save_dir>/<host>/<path of the URL>`` as ``curl -O`` and aria2
keep it.

Names come from untrusted input (URLs and ids), so every component is reduced to a short
ASCII name that cannot escape ``save_dir``. Ids that are already safe are used as they
are; any other id becomes a readable prefix plus a hash of the full id, so two different
ids never share a file (the ``.`` before the hash cannot occur in a safe id). Files are
written to a temporary name and renamed into place, so a reader never sees half a body.

Named by URL, a path is used as it is only when every segment is already a safe name and
the request is a plain GET of that URL (no query, no body, no id of its own); any other
gets ``~`` and a hash of its id before the extension. ``~`` never occurs in a name used
as it is, so two requests never share a file either way.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import mimetypes
import os
import re
import secrets
from pathlib import Path, PurePosixPath
from urllib.parse import urlsplit

from .._errors import ConfigError, OutputError
from .._settings import SAVE_NAMES
from ._files import describe_os_error

# Lower case only: on case-insensitive file systems "A" and "a" would be one file.
_SAFE_ID = re.compile(r"[a-z0-9][a-z0-9_-]{0,79}")
_UNSAFE_ID_CHARS = re.compile(r"[^A-Za-z0-9_-]+")
_UNSAFE_HOST_CHARS = re.compile(r"[^a-z0-9.-]+")
_URL_EXTENSION = re.compile(r"\.[a-z0-9]{1,8}")
# A URL path segment kept as it is: no leading dot (hidden, "." or ".."), no leading dash.
_SAFE_SEGMENT = re.compile(r"[a-z0-9_][a-z0-9._-]{0,79}")
_UNSAFE_SEGMENT_CHARS = re.compile(r"[^a-z0-9._-]+")
_MAX_SEGMENTS = 16
_URL_HASH_CHARS = 12
_MAX_HOST_CHARS = 100
_MAX_PREFIX_CHARS = 40
_HASH_CHARS = 20
# mimetypes answers from the system's tables (``.es`` for JavaScript, ``.xsl`` for XML on
# some systems); the common types get the extension people expect.
_EXTENSIONS = {
    "text/html": ".html",
    "application/xhtml+xml": ".html",
    "text/plain": ".txt",
    "text/css": ".css",
    "text/csv": ".csv",
    "text/javascript": ".js",
    "application/javascript": ".js",
    "application/json": ".json",
    "application/xml": ".xml",
    "text/xml": ".xml",
    "application/pdf": ".pdf",
    "image/png": ".png",
    "image/jpeg": ".jpg",
    "image/gif": ".gif",
    "image/webp": ".webp",
    "image/svg+xml": ".svg",
    "application/octet-stream": ".bin",
}


def safe_host(url: str) -> str:
    """A directory name for the URL's host (and port), safe on any file system."""
    try:
        parts = urlsplit(url)
        host, port = parts.hostname or "", parts.port
    except ValueError:  # an invalid port or bracketed host: still save the body
        host, port = "", None
    with contextlib.suppress(UnicodeError):
        host = host.encode("idna").decode("ascii")  # readable xn-- form of unicode hosts
    # No leading dot or dash: no hidden, "." or ".." directories, nothing that looks
    # like a command-line option.
    name = _UNSAFE_HOST_CHARS.sub("_", host.lower())[:_MAX_HOST_CHARS].lstrip(".-").rstrip(".")
    if port is not None:
        name = f"{name}_{port}"
    return name or "_nohost"


def safe_stem(result_id: str) -> str:
    """A file name stem for ``result_id``: the id itself when safe, else prefix.hash."""
    if _SAFE_ID.fullmatch(result_id):
        return result_id
    prefix = _UNSAFE_ID_CHARS.sub("_", result_id).lstrip("-")[:_MAX_PREFIX_CHARS] or "_"
    digest = hashlib.sha256(result_id.encode("utf-8", "surrogatepass")).hexdigest()
    return f"{prefix}.{digest[:_HASH_CHARS]}"


def guess_extension(url: str, content_type: str | None) -> str:
    """An extension from the content type, else from the URL path, else ``.bin``."""
    if content_type:
        media_type = content_type.split(";", 1)[0].strip().lower()
        known = _EXTENSIONS.get(media_type) or mimetypes.guess_extension(media_type)
        if known and _URL_EXTENSION.fullmatch(known):
            return known
    try:
        suffix = PurePosixPath(urlsplit(url).path).suffix.lower()
    except ValueError:
        suffix = ""
    return suffix if _URL_EXTENSION.fullmatch(suffix) else ".bin"


def url_segments(url: str) -> tuple[list[str], bool]:
    """The URL path's segments made safe, and whether they are the path exactly."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return ["index"], False
    raw = parts.path.split("/")[1:] or [""]
    if raw[-1] == "":
        raw[-1] = "index"  # a directory URL: its page, as wget names it
    exact = not parts.query and len(raw) <= _MAX_SEGMENTS
    segments = []
    for segment in raw[-_MAX_SEGMENTS:]:
        if _SAFE_SEGMENT.fullmatch(segment):
            segments.append(segment)
            continue
        exact = False
        cleaned = _UNSAFE_SEGMENT_CHARS.sub("_", segment.lower())[:_MAX_PREFIX_CHARS]
        segments.append(cleaned.lstrip(".-") or "_")
    return segments, exact


def url_relative_path(url: str, result_id: str, content_type: str | None, plain: bool) -> Path:
    """``<host>/<path>`` for a body named by its URL (see the module docstring)."""
    segments, exact = url_segments(url)
    stem, suffix = segments[-1], PurePosixPath(segments[-1]).suffix
    if _URL_EXTENSION.fullmatch(suffix):
        stem = stem[: -len(suffix)]
    else:
        suffix = guess_extension(url, content_type)
    if not (exact and plain):
        digest = hashlib.sha256(result_id.encode("utf-8", "surrogatepass")).hexdigest()
        stem = f"{stem}~{digest[:_URL_HASH_CHARS]}"
    return Path(safe_host(url), *segments[:-1], stem + suffix)


class BodyStore:
    """Saves response bodies under ``save_dir``, one file per result id.

    ``names`` is ``"id"`` (``<host>/<id><ext>``) or ``"url"`` (the URL's path).
    """

    def __init__(self, save_dir: Path, *, durable: bool = False, names: str = "id") -> None:
        if names not in SAVE_NAMES:
            raise ConfigError(f"save names must be one of {', '.join(SAVE_NAMES)}")
        self._save_dir = Path(save_dir)
        self._durable = durable
        self._names = names

    @property
    def save_dir(self) -> Path:
        return self._save_dir

    def check_writable(self) -> None:
        """Raise OutputError now if bodies cannot be saved: before the first request."""
        where = self._save_dir
        try:
            where.mkdir(parents=True, exist_ok=True)
            probe = where / f".asyncfetch-probe.{secrets.token_hex(8)}"
            with open(probe, "xb"):
                pass
            probe.unlink()
        except OSError as exc:
            raise OutputError(f"cannot save bodies in {where}: {describe_os_error(exc)}") from exc

    def path_for(
        self, result_id: str, url: str, content_type: str | None, *, plain: bool = False
    ) -> Path:
        """Where :meth:`save` puts this body (pure: touches nothing on disk).

        ``plain``: the request is a GET of ``url`` with no body and no id of its own, so
        a URL-named body may take the URL's path exactly.
        """
        if self._names == "url":
            return self._save_dir / url_relative_path(url, result_id, content_type, plain)
        name = safe_stem(result_id) + guess_extension(url, content_type)
        return self._save_dir / safe_host(url) / name

    async def save(
        self,
        result_id: str,
        url: str,
        content_type: str | None,
        body: bytes,
        *,
        plain: bool = False,
    ) -> str:
        """Write ``body`` atomically; return its path for the record's ``path`` field."""
        target = self.path_for(result_id, url, content_type, plain=plain)
        clash = await self._write_or_fail(target, body, clash_ok=self._names == "url")
        if clash:
            # A URL path that is a file here and a directory there (/a and /a/b): this
            # body takes the id-based name instead, which cannot clash.
            name = safe_stem(result_id) + guess_extension(url, content_type)
            target = self._save_dir / safe_host(url) / name
            await self._write_or_fail(target, body, clash_ok=False)
        return str(target)

    async def _write_or_fail(self, target: Path, body: bytes, *, clash_ok: bool) -> bool:
        """Write ``target``; True if a file/directory clash stopped it and ``clash_ok``."""
        try:
            await asyncio.to_thread(self._write, target, body)
        except (NotADirectoryError, IsADirectoryError, FileExistsError) as exc:
            if clash_ok:
                return True
            raise OutputError(f"cannot save body to {target}: {describe_os_error(exc)}") from exc
        except OSError as exc:
            raise OutputError(f"cannot save body to {target}: {describe_os_error(exc)}") from exc
        return False

    def _write(self, target: Path, body: bytes) -> None:
        target.parent.mkdir(parents=True, exist_ok=True)
        temp = target.with_name(f".{target.name}.{secrets.token_hex(8)}.tmp")
        try:
            with open(temp, "xb") as handle:
                handle.write(body)
                if self._durable:
                    handle.flush()
                    os.fsync(handle.fileno())
            os.replace(temp, target)
        except BaseException:
            # Leave no temporary file behind; the original error is what matters.
            with contextlib.suppress(OSError):
                temp.unlink()
            raise
