"""The local nginx the benchmarks run against: a 512-byte file and a 100 ms endpoint."""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

from measure import CpuPlan

SMALL_BODY_SIZE = 512
DELAY_SECONDS = 0.1
DELAY_BODY = b"ok\n"
ECHO_MODULE_CANDIDATES = (
    Path("/usr/lib/nginx/modules/ngx_http_echo_module.so"),
    Path("/usr/share/nginx/modules/ngx_http_echo_module.so"),
    Path("/usr/lib64/nginx/modules/ngx_http_echo_module.so"),
)

NGINX_CONF = """\
{load_module}
worker_processes 1;
worker_rlimit_nofile 200000;
daemon off;
pid {root}/nginx.pid;
error_log {root}/error.log warn;
events {{
    worker_connections 100000;
    multi_accept on;
}}
http {{
    access_log off;
    client_body_temp_path {root}/tmp/body;
    proxy_temp_path {root}/tmp/proxy;
    fastcgi_temp_path {root}/tmp/fastcgi;
    uwsgi_temp_path {root}/tmp/uwsgi;
    scgi_temp_path {root}/tmp/scgi;
    keepalive_requests 1000000;
    keepalive_timeout 120s;
    sendfile on;
    tcp_nodelay on;
    open_file_cache max=16;
    default_type application/octet-stream;
    server {{
        listen 127.0.0.1:{port} backlog=65535;
        root {root}/www;
        location = /small {{ }}
{delay_location}
    }}
}}
"""

DELAY_LOCATION = """\
        location = /delay {{
            echo_sleep {seconds};
            echo ok;
        }}"""


def find_echo_module() -> Path | None:
    return next((p for p in ECHO_MODULE_CANDIDATES if p.exists()), None)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class NginxServer:
    """nginx in the foreground as our child, configured in a private temp dir."""

    cpus: CpuPlan
    port: int = field(default_factory=free_port)
    echo_module: Path | None = field(default_factory=find_echo_module)
    root: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="bench-nginx-")))
    process: subprocess.Popen[bytes] | None = None

    @property
    def has_delay(self) -> bool:
        return self.echo_module is not None

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def _write_config(self) -> Path:
        (self.root / "www").mkdir(parents=True, exist_ok=True)
        (self.root / "tmp").mkdir(exist_ok=True)
        (self.root / "www" / "small").write_bytes(b"x" * (SMALL_BODY_SIZE - 1) + b"\n")
        for path in (self.root, self.root / "www", self.root / "www" / "small"):
            path.chmod(0o755)  # nginx workers may run as nobody/www-data
        module = f"load_module {self.echo_module};" if self.echo_module else ""
        delay = DELAY_LOCATION.format(seconds=DELAY_SECONDS) if self.echo_module else ""
        conf = self.root / "nginx.conf"
        conf.write_text(
            NGINX_CONF.format(
                load_module=module, root=self.root, port=self.port, delay_location=delay
            )
        )
        return conf

    def start(self) -> None:
        conf = self._write_config()
        argv = ["nginx", "-p", str(self.root), "-c", str(conf)]
        log = (self.root / "stderr.log").open("wb")
        self.process = subprocess.Popen(self.cpus.wrap_server(argv), stderr=log, stdout=log)
        self._wait_ready()

    def _wait_ready(self, timeout_s: float = 10.0) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise RuntimeError(f"nginx exited early:\n{self._logs()}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"nginx did not start listening within {timeout_s} s:\n{self._logs()}")

    def _logs(self) -> str:
        parts = [self.root / "stderr.log", self.root / "error.log"]
        return "\n".join(p.read_text(errors="replace") for p in parts if p.exists())

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()  # SIGTERM: nginx fast shutdown
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> NginxServer:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
