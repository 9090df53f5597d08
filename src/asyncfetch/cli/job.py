"""FetchJob: the parsed options of one ``asyncfetch fetch`` run."""

from __future__ import annotations

from pathlib import Path
from typing import Any, NamedTuple

from .._settings import (
    DEFAULT_RETRY_STATUSES,
    DEFAULT_USER_AGENT,
    BodyPolicy,
    Limits,
    RequestDefaults,
    RetryPolicy,
    Settings,
    Timeouts,
    TransportOptions,
    is_ip_address,
    parse_status_list,
)


def parse_header(text: str) -> tuple[str, str]:
    """``'Name: value'`` → ``("Name", "value")``, as curl's -H takes it."""
    name, sep, value = text.partition(":")
    if not sep or not name.strip():
        raise ValueError(f"header must look like 'Name: value', got {text!r}")
    return name.strip(), value.strip()


def parse_resolve(text: str) -> tuple[str, int, str]:
    """``HOST:PORT:ADDRESS`` (curl's --resolve; IPv6 as ``[::1]``) → (host, port, address)."""
    host, sep, rest = text.partition(":")
    port_text, sep2, address = rest.partition(":")
    if not sep or not sep2 or not host or not port_text.isdigit() or not address:
        raise ValueError(
            f"expected HOST:PORT:ADDRESS (e.g. example.com:443:127.0.0.1), not {text!r}"
        )
    address = address.removeprefix("[").removesuffix("]")
    if not is_ip_address(address):
        raise ValueError(f"{address!r} in {text!r} is not an IP address")
    return host, int(port_text), address


class FetchJob(NamedTuple):
    # A NamedTuple rather than a frozen dataclass: for 31 fields the dataclass spent about
    # 1 ms of every start generating and compiling its methods; a tuple is as immutable.
    inputs: tuple[str, ...]
    input_format: str | None
    output: str | None
    output_format: str | None
    concurrency: int
    per_host: int
    rate: float | None
    method: str | None
    headers: tuple[tuple[str, str], ...]
    data: bytes | None
    timeout: float
    connect_timeout: float
    read_timeout: float
    retries: int
    retry_non_idempotent: bool
    max_redirects: int
    body_mode: str
    save_dir: Path | None
    max_body: int
    include_headers: bool
    insecure: bool
    cacert: Path | None
    proxy: str | None
    engine: str
    progress: bool | None
    quiet: bool
    summary_json: Path | None
    fail_on_error: bool
    resume: bool = False
    resume_force: bool = False
    retry_failed: bool = False
    report: Path | None = None
    metrics_port: int | None = None
    metrics_host: str = "127.0.0.1"
    resolve: tuple[tuple[str, int, str], ...] = ()
    dns_servers: tuple[str, ...] = ()
    user_agent: str | None = None
    retry_on: str | None = None
    only: str = "all"
    save_names: str = "id"
    per_host_rate: float | None = None
    adapt: bool = True

    @classmethod
    def from_options(cls, options: dict[str, Any]) -> FetchJob:
        job = cls(
            **{
                **options,
                "inputs": tuple(options["inputs"]),
                "dns_servers": tuple(options.get("dns_servers", ())),
            }
        )
        # Both only make sense for a resumable run, so they imply --resume.
        return job._replace(resume=job.resume or job.resume_force or job.retry_failed)

    def with_inputs(self, inputs: tuple[str, ...]) -> FetchJob:
        return self._replace(inputs=inputs)

    def settings(self) -> Settings:
        """Validated settings; raises ConfigError with a message for the user."""
        return Settings(
            limits=Limits(
                concurrency=self.concurrency,
                per_host=self.per_host,
                rate=self.rate,
                per_host_rate=self.per_host_rate,
                # A job enqueued before the option existed stored no value: adapt.
                adapt=self.adapt is not False,
            ),
            timeouts=Timeouts(
                total=self.timeout, connect=self.connect_timeout, read=self.read_timeout
            ),
            retry=RetryPolicy(
                retries=self.retries,
                retry_non_idempotent=self.retry_non_idempotent,
                statuses=(
                    DEFAULT_RETRY_STATUSES
                    if self.retry_on is None
                    else parse_status_list(self.retry_on)
                ),
            ),
            body=BodyPolicy(
                mode=self.body_mode,
                max_body=self.max_body,
                save_dir=self.save_dir,
                include_headers=self.include_headers,
                save_names=self.save_names,
            ),
            transport=TransportOptions(
                max_redirects=self.max_redirects,
                insecure=self.insecure,
                cacert=self.cacert,
                proxy=self.proxy,
                resolve=self.resolve,
                dns_servers=self.dns_servers,
                user_agent=self.user_agent or DEFAULT_USER_AGENT,
            ),
        )

    def request_defaults(self) -> RequestDefaults:
        method = self.method or ("POST" if self.data is not None else "GET")
        return RequestDefaults(method=method.upper(), headers=self.headers, data=self.data)

    def resume_options(self, output_format: str) -> dict[str, Any]:
        """The options that shape requests and records: a resume must not change them.

        Keys are option names (for messages); ``header``, ``data`` and ``proxy`` are
        hashed before they are stored (see asyncfetch.resume.reopen.fingerprint).
        """
        defaults = self.request_defaults()
        return {
            "method": defaults.method,
            "header": defaults.headers,
            "data": defaults.data,
            "proxy": self.proxy,
            "input_format": self.input_format,
            "output_format": output_format,
            "body": self.body_mode,
            "include_headers": self.include_headers,
            "max_body": self.max_body,
            "max_redirects": self.max_redirects,
            "save_dir": None if self.save_dir is None else str(self.save_dir.resolve()),
            # Stored only when not the default: journals of earlier versions still match.
            "user_agent": self.user_agent,
            "only": None if self.only == "all" else self.only,
            "save_names": None if self.save_names == "id" else self.save_names,
        }

    @property
    def watches_hosts(self) -> bool:
        """Whether anything of the run shows per-host figures (summary, report, metrics)."""
        shown = not self.quiet or self.summary_json is not None
        return shown or self.report is not None or self.metrics_port is not None

    @property
    def progress_mode(self) -> str:
        if self.quiet or self.progress is False:
            return "off"
        return "bar" if self.progress else "auto"
