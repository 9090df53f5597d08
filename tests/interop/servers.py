"""Third-party servers for the interoperability suite, each on a free port on 127.0.0.1.

nginx, lighttpd and tinyproxy come from the Debian packages the Makefile installs;
uvicorn (h11 and httptools), hypercorn and gunicorn from the test extras. A server that
cannot be found or does not start fails the test (CI never skips it).
"""

from __future__ import annotations

import random
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import trustme

from .echo_apps import BIG_HEADER_COUNT, BIG_HEADER_SIZE

ROOT = Path(__file__).resolve().parents[2]
STATIC_TEXT = "interop static file\n" * 2000  # ~40 KB: several reads, gzip worth doing
# 3 MiB that gzip cannot shrink: far past HTTP/2's initial 64 KiB flow-control window.
BIG_FILE = random.Random(22).randbytes(3 * 1024 * 1024)


@dataclass(frozen=True)
class Running:
    name: str
    url: str  # http://127.0.0.1:PORT, no trailing slash
    directory: Path
    tls_url: str | None = None  # https://localhost:PORT where the server has TLS
    mtls_url: str | None = None  # https://localhost:PORT asking for a client certificate
    h2_url: str | None = None  # https://localhost:PORT: http2, no keep-alive limit


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def program(name: str) -> str:
    for directory in ("", "/usr/sbin/", "/usr/bin/"):
        found = shutil.which(directory + name) if directory else shutil.which(name)
        if found:
            return found
    raise RuntimeError(f"{name} not found: `make test` installs it (Debian package {name})")


def _wait_for_port(port: int, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode}: {log.read_text()}")
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise RuntimeError(f"server did not listen on port {port} within 20 s: {log.read_text()}")


@contextmanager
def _process(
    command: list[str], ports: list[int], directory: Path, cwd: Path | None = None
) -> Iterator[None]:
    log = directory / "server.log"
    with log.open("wb") as output:
        process = subprocess.Popen(command, stdout=output, stderr=output, cwd=cwd or directory)
    try:
        for port in ports:
            _wait_for_port(port, process, log)
        yield
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _static_files(directory: Path) -> Path:
    static = directory / "static"
    static.mkdir()
    (static / "file.txt").write_text(STATIC_TEXT)
    (static / "empty.txt").write_bytes(b"")
    (static / "big.bin").write_bytes(BIG_FILE)
    return static


# -- nginx --------------------------------------------------------------------------------

_NGINX = """
daemon off;
master_process off;
worker_processes 1;
user root;
pid {dir}/nginx.pid;
error_log {dir}/error.log warn;
events {{ worker_connections 256; }}
http {{
    access_log off;
    log_format h2 '$connection $connection_requests $server_protocol $request';
    client_body_temp_path {dir}/body;
    proxy_temp_path {dir}/proxy;
    fastcgi_temp_path {dir}/fastcgi;
    uwsgi_temp_path {dir}/uwsgi;
    scgi_temp_path {dir}/scgi;
    default_type text/plain;
    keepalive_requests 3;
    gzip on;
    gzip_types text/plain;
    gzip_min_length 0;
    large_client_header_buffers 4 64k;
    server {{
        listen 127.0.0.1:{port};
        listen 127.0.0.1:{tls_port} ssl http2;
        server_name localhost;
        ssl_certificate {dir}/cert.pem;
        ssl_certificate_key {dir}/key.pem;
        location /echo {{ return 200 "$request\\n"; }}
        location /conn {{ return 200 "$connection $connection_requests"; }}
        location = /multi {{
            add_header X-Multi one;
            add_header X-Multi two;
            add_header Set-Cookie "a=1; Path=/";
            add_header Set-Cookie "b=2; Path=/";
            return 200 "multi";
        }}
        location = /big-headers {{
{big_headers}
            return 200 "big";
        }}
        location /static/ {{ alias {dir}/static/; }}
        location = /redirect-pct {{ return 302 /echo/next?pct=%2F%3F; }}
        # Which protocol and connection (a serial number) carried the request.
        location = /conn {{ return 200 "$server_protocol $connection $connection_requests\n"; }}
    }}
    # HTTP/2 without the keep-alive limit above; the access log names each connection.
    server {{
        listen 127.0.0.1:{h2_port} ssl http2;
        server_name localhost;
        ssl_certificate {dir}/cert.pem;
        ssl_certificate_key {dir}/key.pem;
        keepalive_requests 1000000;
        access_log {dir}/h2-access.log h2;
        location = /conn {{ return 200 "$server_protocol $connection $connection_requests\n"; }}
        location /static/ {{ alias {dir}/static/; }}
    }}
    # Mutual TLS: a client certificate issued by the same private CA is required.
    server {{
        listen 127.0.0.1:{mtls_port} ssl;
        server_name localhost;
        ssl_certificate {dir}/cert.pem;
        ssl_certificate_key {dir}/key.pem;
        ssl_client_certificate {dir}/ca.pem;
        ssl_verify_client on;
        location / {{ return 200 "$ssl_client_verify $ssl_client_s_dn\n"; }}
    }}
}}
"""


@contextmanager
def nginx(directory: Path, ca: trustme.CA) -> Iterator[Running]:
    _static_files(directory)
    certificate = ca.issue_cert("localhost", "127.0.0.1")
    certificate.private_key_pem.write_to_path(str(directory / "key.pem"))
    certificate.cert_chain_pems[0].write_to_path(str(directory / "cert.pem"))
    for extra in certificate.cert_chain_pems[1:]:
        with (directory / "cert.pem").open("ab") as chain:
            chain.write(extra.bytes())
    ca.cert_pem.write_to_path(str(directory / "ca.pem"))
    port, tls_port, mtls_port, h2_port = free_port(), free_port(), free_port(), free_port()
    big = "\n".join(
        f"            add_header X-Big-{n} {'v' * BIG_HEADER_SIZE};"
        for n in range(BIG_HEADER_COUNT)
    )
    config = directory / "nginx.conf"
    ports = {"port": port, "tls_port": tls_port, "mtls_port": mtls_port, "h2_port": h2_port}
    config.write_text(_NGINX.format(dir=directory, big_headers=big, **ports))
    command = [program("nginx"), "-c", str(config), "-p", str(directory)]
    with _process(command, list(ports.values()), directory):
        yield Running(
            "nginx",
            f"http://127.0.0.1:{port}",
            directory,
            f"https://localhost:{tls_port}",
            f"https://localhost:{mtls_port}",
            f"https://localhost:{h2_port}",
        )


# -- lighttpd -----------------------------------------------------------------------------

_LIGHTTPD = """
server.document-root = "{dir}/static"
server.bind = "127.0.0.1"
server.port = {port}
server.max-keep-alive-requests = 2
server.errorlog = "{dir}/error.log"
mimetype.assign = (".txt" => "text/plain")
"""


@contextmanager
def lighttpd(directory: Path) -> Iterator[Running]:
    _static_files(directory)
    port = free_port()
    config = directory / "lighttpd.conf"
    config.write_text(_LIGHTTPD.format(dir=directory, port=port))
    with _process([program("lighttpd"), "-D", "-f", str(config)], [port], directory):
        yield Running("lighttpd", f"http://127.0.0.1:{port}", directory)


# -- busybox httpd -----------------------------------------------------------------------


@contextmanager
def busybox_httpd(directory: Path) -> Iterator[Running]:
    """busybox's httpd, which (wrongly) sends the file after a HEAD response's head."""
    static = _static_files(directory)
    port = free_port()
    command = [program("busybox"), "httpd", "-f", "-p", f"127.0.0.1:{port}", "-h", str(static)]
    with _process(command, [port], directory):
        yield Running("busybox-httpd", f"http://127.0.0.1:{port}", directory)


# -- Python servers running tests/interop/echo_apps.py ----------------------------------

PYTHON_SERVERS = ("uvicorn-h11", "uvicorn-httptools", "hypercorn", "gunicorn")


def _python_command(name: str, port: int) -> list[str]:
    bind = ["--host", "127.0.0.1", "--port", str(port)]
    asgi = "tests.interop.echo_apps:asgi_app"
    if name.startswith("uvicorn"):
        flavour = name.split("-")[1]
        return ["-m", "uvicorn", asgi, *bind, "--http", flavour, "--no-access-log"]
    if name == "hypercorn":
        return ["-m", "hypercorn", asgi, "--bind", f"127.0.0.1:{port}"]
    return [
        *("-m", "gunicorn", "tests.interop.echo_apps:wsgi_app", "-b", f"127.0.0.1:{port}"),
        *("-k", "gthread", "--threads", "8", "--keep-alive", "5"),
    ]


@contextmanager
def hypercorn_tls(directory: Path, ca: trustme.CA) -> Iterator[Running]:
    """hypercorn over TLS: it offers h2 by ALPN (HTTP/2 with the echo application)."""
    certificate = ca.issue_cert("localhost", "127.0.0.1")
    certificate.private_key_pem.write_to_path(str(directory / "key.pem"))
    certificate.cert_chain_pems[0].write_to_path(str(directory / "cert.pem"))
    port = free_port()
    command = [
        *(sys.executable, "-m", "hypercorn", "tests.interop.echo_apps:asgi_app"),
        *("--bind", f"127.0.0.1:{port}"),
        *("--certfile", str(directory / "cert.pem"), "--keyfile", str(directory / "key.pem")),
    ]
    with _process(command, [port], directory, cwd=ROOT):
        yield Running("hypercorn-tls", f"https://localhost:{port}", directory)


@contextmanager
def python_server(name: str, directory: Path) -> Iterator[Running]:
    port = free_port()
    command = [sys.executable, *_python_command(name, port)]
    with _process(command, [port], directory, cwd=ROOT):
        yield Running(name, f"http://127.0.0.1:{port}", directory)


# -- tinyproxy ----------------------------------------------------------------------------

_TINYPROXY = """
User root
Group root
Port {port}
Listen 127.0.0.1
Timeout 30
MaxClients 64
Allow 127.0.0.1
LogFile "{dir}/tinyproxy.log"
LogLevel Info
PidFile "{dir}/tinyproxy.pid"
"""


@contextmanager
def tinyproxy(
    directory: Path, connect_port: int | None = None, credentials: str | None = None
) -> Iterator[Running]:
    """tinyproxy; CONNECT to ``connect_port`` only (any port when None); ``user:pass``
    demands those credentials (tinyproxy's BasicAuth)."""
    port = free_port()
    config = directory / "tinyproxy.conf"
    text = _TINYPROXY.format(port=port, dir=directory)
    if connect_port is not None:
        text += f"ConnectPort {connect_port}\n"
    if credentials is not None:
        text += "BasicAuth {} {}\n".format(*credentials.split(":", 1))
    config.write_text(text)
    with _process([program("tinyproxy"), "-d", "-c", str(config)], [port], directory):
        yield Running("tinyproxy", f"http://127.0.0.1:{port}", directory)


def proxy_log(proxy: Running) -> str:
    """What tinyproxy logged: one "Request ... : GET http://..." line per request."""
    return (proxy.directory / "tinyproxy.log").read_text(errors="replace")


# -- microsocks: a SOCKS5 server --------------------------------------------------------


@contextmanager
def microsocks(
    directory: Path, credentials: str | None = None, hosts: dict[str, str] | None = None
) -> Iterator[Running]:
    """microsocks on 127.0.0.1; ``user:pass`` demands them (RFC 1929). ``hosts`` are
    names only the proxy resolves: it runs in a mount namespace of its own whose
    /etc/hosts has them, so a name the client cannot resolve proves remote DNS."""
    port = free_port()
    command = [program("microsocks"), "-i", "127.0.0.1", "-p", str(port)]
    if credentials is not None:
        user, password = credentials.split(":", 1)
        command += ["-u", user, "-P", password]
    if hosts:
        table = directory / "hosts"
        lines = [f"{address} {name}" for name, address in hosts.items()]
        table.write_text("127.0.0.1 localhost\n" + "\n".join(lines) + "\n")
        script = f"mount --bind {table} /etc/hosts && exec {' '.join(command)}"
        command = [program("unshare"), "-m", "sh", "-c", script]
    with _process(command, [port], directory):
        yield Running("microsocks", f"socks5://127.0.0.1:{port}", directory)
