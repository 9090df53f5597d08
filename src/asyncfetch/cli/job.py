"""FetchJob: the parsed options of one ``asyncfetch fetch`` run."""

from __future__ import annotations

from pathlib import Path
from typing import Any, NamedTuple

from .._settings import (
    BodyPolicy,
    Limits,
    RequestDefaults,
    RetryPolicy,
    Settings,
    Timeouts,
    TransportOptions,
)


def parse_header(text: str) -> tuple[str, str]:
    """``'Name: value'`` → ``("Name", "value")``, as curl's -H takes it."""
    name, sep, value = text.partition(":")
    if not sep or not name.strip():
        raise ValueError(f"header must look like 'Name: value', got {text!r}")
    return name.strip(), value.strip()


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
    per_host_rate: float | None = None
    adapt: bool = True

    @classmethod
    def from_options(cls, options: dict[str, Any]) -> FetchJob:
        job = cls(**{**options, "inputs": tuple(options["inputs"])})
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
                retries=self.retries, retry_non_idempotent=self.retry_non_idempotent
            ),
            body=BodyPolicy(
                mode=self.body_mode,
                max_body=self.max_body,
                save_dir=self.save_dir,
                include_headers=self.include_headers,
            ),
            transport=TransportOptions(
                max_redirects=self.max_redirects,
                insecure=self.insecure,
                cacert=self.cacert,
                proxy=self.proxy,
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
        }

    @property
    def progress_mode(self) -> str:
        if self.quiet or self.progress is False:
            return "off"
        return "bar" if self.progress else "auto"
