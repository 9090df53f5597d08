"""FetchJob: the parsed options of one ``asyncfetch fetch`` run."""

from __future__ import annotations

from typing import Any

from .._options import RunOptions, defaults_of
from .._settings import RequestDefaults, Settings, settings_from


class FetchJob(RunOptions):
    """The inputs of one run and a value for every option of ``RunOptions``, read as
    typed attributes (``job.concurrency``); the options are declared in _options.py."""

    # A slotted class rather than a dataclass: generating one for 40 fields cost about
    # 1 ms of every start.
    __slots__ = ("inputs",)

    def __init__(self, inputs: tuple[str, ...], values: dict[str, Any]) -> None:
        super().__init__(values)
        self.inputs = inputs

    @classmethod
    def from_options(cls, options: dict[str, Any]) -> FetchJob:
        """From the command's options; an option not given takes the table's default."""
        values = {**_DEFAULTS, **options}
        inputs = tuple(values.pop("inputs", ()))
        unknown = values.keys() - _DEFAULTS.keys()
        if unknown:
            raise TypeError(f"not options of fetch: {', '.join(sorted(unknown))}")
        values["dns_servers"] = tuple(values["dns_servers"])
        # Both only make sense for a resumable run, so they imply --resume.
        values["resume"] = bool(
            values["resume"] or values["resume_force"] or values["retry_failed"]
        )
        return cls(inputs, values)

    def with_inputs(self, inputs: tuple[str, ...]) -> FetchJob:
        return FetchJob(inputs, self.values)

    def settings(self) -> Settings:
        """Validated settings; raises ConfigError with a message for the user."""
        return settings_from(self.values)

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


_DEFAULTS = defaults_of(RunOptions)
