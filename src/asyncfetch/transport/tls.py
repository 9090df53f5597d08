"""TLS for both engines: the client SSLContext made from a run's options, and its check.

One function builds the context (CA file, verification, client certificate and key,
ALPN), so the two engines trust, present and offer the same things. The same function,
called once at start-up by :func:`check_tls_files`, turns a wrong file into one message
naming the file and OpenSSL's reason, instead of a failure on every https request.
"""

from __future__ import annotations

import ssl
from collections.abc import Sequence
from pathlib import Path
from typing import Final

from .._errors import ConfigError
from .._settings import TransportOptions

# What the engines offer by ALPN: HTTP/1.1, or h2 first (the fast engine with --http2).
ALPN_HTTP1: Final = ("http/1.1",)
ALPN_H2: Final = ("h2", "http/1.1")


def client_context(options: TransportOptions, alpn: Sequence[str] = ALPN_HTTP1) -> ssl.SSLContext:
    """The client context of a run: verification on unless ``insecure``, ``cacert``
    trusted besides the system's CAs, ``cert``/``key`` presented when a server asks.

    Raises ConfigError for a file that cannot be loaded (see :func:`check_tls_files`).
    """
    context = ssl.create_default_context()
    if options.cacert is not None:
        _load_ca(context, options.cacert)
    if options.cert is not None:
        _load_client_cert(context, options.cert, options.key)
    if options.insecure:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    context.set_alpn_protocols(list(alpn))
    return context


def check_tls_files(options: TransportOptions) -> None:
    """Raise ConfigError now when a CA, certificate or key file of ``options`` is wrong."""
    if options.cacert is not None or options.cert is not None:
        client_context(options)


def _load_ca(context: ssl.SSLContext, path: Path) -> None:
    _require_file(path, "cacert")
    try:
        context.load_verify_locations(cafile=str(path))
    except ssl.SSLError as error:
        raise ConfigError(
            f"cacert {path} is not a PEM file of CA certificates ({_reason(error)})"
        ) from error
    except (OSError, ValueError) as error:
        raise ConfigError(f"cannot read cacert {path}: {error}") from error


def _load_client_cert(context: ssl.SSLContext, cert: Path, key: Path | None) -> None:
    _require_file(cert, "cert")
    if key is not None:
        _require_file(key, "key")
    files = f"client cert {cert}" + (f" with key {key}" if key is not None else "")
    hint = "a PEM certificate and its private key" + (
        "" if key is not None else " (the key with --key unless it is in the same file)"
    )
    try:
        context.load_cert_chain(certfile=str(cert), keyfile=None if key is None else str(key))
    except ssl.SSLError as error:
        raise ConfigError(f"cannot use {files}: {_reason(error)}; give {hint}") from error
    except (OSError, ValueError) as error:
        raise ConfigError(f"cannot read {files}: {error}") from error


def _require_file(path: Path, what: str) -> None:
    if not path.is_file():
        raise ConfigError(f"{what} file not found: {path}")


def _reason(error: ssl.SSLError) -> str:
    # OpenSSL's reason ("KEY_VALUES_MISMATCH", "NO_START_LINE") reads better in words;
    # "PEM_LIB" only says that PEM decoding failed somewhere.
    reason = str(error.reason or error.strerror or error)
    if reason == "PEM_LIB" or "PEM lib" in reason:
        return "no PEM certificate or private key where one was expected"
    return reason.lower().replace("_", " ")
