"""Every run option declared once: name, type, default, help, checks, and where it applies.

The tables are classes whose attributes are :class:`Option` s, in ``--help`` order:
``RunOptions`` (``asyncfetch fetch``; the parts ``enqueue`` and ``worker`` take too),
``JobOptions`` (``--redis`` and ``--job``), ``EnqueueOptions`` and ``WorkerOptions``.
From them come the click options (``cli/options.py``), the defaults of the settings
dataclasses and the settings built from option values (``_settings.py``), the library's
keyword options (``_api.py``: names, types, defaults, help(Fetcher), the misspelled-name
hint), the options an ``enqueue`` stores for its workers, and ``FetchJob``
(``cli/job.py``, which reads its values through the same attributes, typed).

To add an option, add one ``Option`` to the right table; say where it goes with
``setting`` (a Settings field), ``keyword`` (a library keyword), ``stored`` (kept with a
Redis job for workers) and ``commands`` (which CLI commands besides ``fetch`` take it).
Plain Python (no dataclass machinery), as compiled modules import these defaults.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Generic, NamedTuple, TypeVar, cast, overload

from ._errors import ConfigError

T = TypeVar("T")

DEFAULT_USER_AGENT = "asyncfetch/0.1"
DEFAULT_RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
# Distributed mode: how long a silent (dead) worker keeps its requests. Live workers renew
# theirs every quarter of it, so it need not cover a slow request: short means fast failover.
DEFAULT_LEASE_S = 12.0
# A library keyword whose default is the option's own.
_SAME: Any = object()


class PathCheck(NamedTuple):
    """What a path option accepts (click.Path's checks)."""

    file_okay: bool = True
    dir_okay: bool = True
    exists: bool = False
    allow_dash: bool = False


FILE = PathCheck(dir_okay=False)
DIRECTORY = PathCheck(file_okay=False)
EXISTING_FILE = PathCheck(dir_okay=False, exists=True)
FILE_OR_DASH = PathCheck(dir_okay=False, allow_dash=True)


class Option(Generic[T]):
    """One option. ``flags`` are its CLI spellings (``"--x/--no-x"`` for an on/off pair; a
    lone ``--x`` of a bool option is a flag); ``kind`` its value's type on the command
    line (int, float, str, bool, Path, bytes); ``minimum``/``maximum``/``min_open``,
    ``choices``, ``path`` and ``parse`` (str → value, raising ValueError) its checks."""

    name: str

    def __init__(
        self,
        default: T,
        help: str,
        *,
        flags: tuple[str, ...] = (),
        kind: type = str,
        minimum: float | None = None,
        maximum: float | None = None,
        min_open: bool = False,
        choices: tuple[str, ...] = (),
        path: PathCheck | None = None,
        parse: Callable[[str], Any] | None = None,
        multiple: bool = False,
        metavar: str | None = None,
        envvar: str | None = None,
        required: bool = False,
        setting: str | None = None,
        keyword: str | None = None,
        keyword_type: str = "",
        keyword_default: Any = _SAME,
        stored: bool = False,
        commands: tuple[str, ...] = (),
        flag_values: tuple[tuple[str, T, str], ...] = (),
    ) -> None:
        self.default = default
        self.help = help
        self.flags = flags
        self.kind = kind
        self.minimum, self.maximum, self.min_open = minimum, maximum, min_open
        self.choices = choices
        self.path = path
        self.parse = parse
        self.multiple = multiple
        self.metavar = metavar
        self.envvar = envvar
        self.required = required
        self.setting = setting  # "section.field" of Settings
        self.keyword = keyword  # the library's keyword for it
        self.keyword_type = keyword_type
        self.keyword_default = default if keyword_default is _SAME else keyword_default
        # Stored with a Redis job, so every worker runs with it (enqueue takes it).
        self.stored = stored
        self.commands = ("enqueue", *commands) if stored else commands
        # Several flags that each set one value (curl's --http1.1 and --http2): (flag,
        # value, help) each; the CLI has no flag of the option's own name then.
        self.flag_values = flag_values

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name
        if self.flag_values:
            self.flags = tuple(flag for flag, _value, _help in self.flag_values)
        elif not self.flags:
            self.flags = (f"--{name.replace('_', '-')}",)

    @overload
    def __get__(self, instance: None, owner: type) -> Option[T]: ...
    @overload
    def __get__(self, instance: OptionValues, owner: type) -> T: ...
    def __get__(self, instance: OptionValues | None, owner: type) -> Option[T] | T:
        if instance is None:
            return self
        return cast(T, instance.values[self.name])

    @property
    def keyword_annotation(self) -> str:
        """The library keyword's type as help(Fetcher) shows it."""
        if self.keyword_type:
            return self.keyword_type
        name = self.kind.__name__
        return f"{name} | None" if self.keyword_default is None else name

    def __repr__(self) -> str:
        return f"Option({self.name!r}, default={self.default!r})"


class OptionValues:
    """A value for each option of a table; read as attributes (``job.concurrency``)."""

    __slots__ = ("values",)

    def __init__(self, values: dict[str, Any]) -> None:
        self.values = values


def options_of(table: type) -> list[Option[Any]]:
    """The options a table declares, in declaration (``--help``) order."""
    found: list[Option[Any]] = []
    for klass in reversed(table.__mro__):
        found += [value for value in vars(klass).values() if isinstance(value, Option)]
    return found


def defaults_of(table: type) -> dict[str, Any]:
    return {option.name: option.default for option in options_of(table)}


# -- parsers: str → value, ValueError with a message that says how to fix it -------------


def is_ip_address(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


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


def parse_data(text: str) -> bytes:
    """A request body: the text itself, or ``@FILE``'s bytes (as curl's -d)."""
    if not text.startswith("@"):
        return text.encode()
    try:
        return Path(text[1:]).read_bytes()
    except OSError as error:
        raise ValueError(f"cannot read {text[1:]}: {error.strerror}") from error


def parse_status_list(text: str) -> frozenset[int]:
    """``"429,500-599"`` → the set of those statuses (as ``--retry-on`` takes them)."""
    statuses: set[int] = set()
    for part in (piece.strip() for piece in text.split(",")):
        low, dash, high = part.partition("-")
        try:
            first, last = int(low), int(high if dash else low)
        except ValueError:
            raise ConfigError(
                f"retry-on: {part!r} is not a status or a range; e.g. 429,500-599"
            ) from None
        if not 100 <= first <= last <= 999:
            raise ConfigError(f"retry-on: {part!r} must be statuses between 100 and 999, low-high")
        statuses.update(range(first, last + 1))
    return frozenset(statuses)


def _statuses_text(statuses: frozenset[int]) -> str:
    return ",".join(str(status) for status in sorted(statuses))


# -- the tables --------------------------------------------------------------------------

_POSITIVE: dict[str, Any] = {"minimum": 0, "min_open": True}


class RunOptions(OptionValues):
    """``asyncfetch fetch``'s options (and those of ``enqueue`` and ``worker``)."""

    __slots__ = ()

    input_format = Option[str | None](
        None,
        "Force the input format (default: detect).",
        choices=("text", "jsonl", "csv"),
        commands=("enqueue",),
    )
    output = Option[str | None](
        None,
        "Output file: .jsonl/.ndjson/.json/.txt, .csv, .sqlite/.sqlite3/.db, or no extension"
        " for JSONL (default: JSONL on stdout); another extension needs --output-format.",
        flags=("-o", "--output"),
        path=FILE_OR_DASH,
    )
    output_format = Option[str | None](
        None, "Force the output format.", choices=("jsonl", "csv", "sqlite")
    )
    concurrency = Option(
        100,
        "Requests in flight at once.",
        flags=("-c", "--concurrency"),
        kind=int,
        minimum=1,
        setting="limits.concurrency",
        keyword="concurrency",
        stored=True,
    )
    per_host = Option(
        8,
        "Requests in flight per host.",
        kind=int,
        minimum=1,
        setting="limits.per_host",
        keyword="per_host",
        stored=True,
    )
    rate = Option[float | None](
        None,
        "Global requests per second.",
        kind=float,
        **_POSITIVE,
        setting="limits.rate",
        keyword="rate",
        stored=True,
    )
    per_host_rate = Option[float | None](
        None,
        "Requests per second per host (with enqueue: shared by all workers).",
        kind=float,
        **_POSITIVE,
        setting="limits.per_host_rate",
        keyword="per_host_rate",
        stored=True,
    )
    adapt = Option(
        True,
        "Learn each host's limit from its 429/503s, errors and latency, under -c,"
        " --per-host, --rate and --per-host-rate; --no-adapt keeps them fixed.",
        flags=("--adapt/--no-adapt",),
        kind=bool,
        setting="limits.adapt",
        keyword="adapt",
        stored=True,
    )
    user_agent = Option[str | None](
        None,
        f"User-Agent header of every request (default {DEFAULT_USER_AGENT}).",
        flags=("-A", "--user-agent"),
        setting="transport.user_agent",
        keyword="user_agent",
        keyword_type="str",
        keyword_default=DEFAULT_USER_AGENT,
    )
    method = Option[str | None](
        None,
        "Method for URL lines (default GET, or POST with -d).",
        flags=("-X", "--method"),
        commands=("enqueue",),
    )
    headers = Option[tuple[tuple[str, str], ...]](
        (),
        "'Name: value', repeatable; added to every request.",
        flags=("-H", "--header"),
        parse=parse_header,
        multiple=True,
        keyword="headers",
        keyword_type="Mapping[str, str] | None",
        keyword_default=None,
        commands=("enqueue",),
    )
    data = Option[bytes | None](
        None,
        "Body for URL lines; @FILE reads a file.",
        flags=("-d", "--data"),
        parse=parse_data,
        commands=("enqueue",),
    )
    timeout = Option[float | None](
        30.0,
        "Seconds per attempt, in total.",
        kind=float,
        **_POSITIVE,
        setting="timeouts.total",
        keyword="timeouts",
        keyword_type="Timeouts | float | None",
        keyword_default=None,
        stored=True,
    )
    connect_timeout = Option[float | None](
        10.0,
        "Seconds to connect.",
        kind=float,
        **_POSITIVE,
        setting="timeouts.connect",
        stored=True,
    )
    read_timeout = Option[float | None](
        30.0,
        "Seconds to wait for each read.",
        kind=float,
        **_POSITIVE,
        setting="timeouts.read",
        stored=True,
    )
    retries = Option(
        3,
        "Retries after the first attempt.",
        kind=int,
        minimum=0,
        setting="retry.retries",
        keyword="retries",
        keyword_type="int | RetryPolicy",
        stored=True,
    )
    retry_on = Option[str | None](
        None,
        "Statuses that are retried, e.g. 429,500-599"
        f" (default: {_statuses_text(DEFAULT_RETRY_STATUSES)}).",
        metavar="STATUSES",
        setting="retry.statuses",
        keyword="retry_on",
        keyword_type="str | Iterable[int] | None",
    )
    retry_non_idempotent = Option(
        False,
        "Also retry POST/PATCH that may have reached the server.",
        kind=bool,
        setting="retry.retry_non_idempotent",
        stored=True,
    )
    max_redirects = Option(
        10,
        "0 = do not follow redirects.",
        kind=int,
        minimum=0,
        setting="transport.max_redirects",
        keyword="max_redirects",
        stored=True,
    )
    body_mode = Option(
        "auto",
        "How bodies appear in records.",
        flags=("--body",),
        choices=("auto", "text", "base64", "none"),
        setting="body.mode",
        keyword="body",
        keyword_type="str | BodyPolicy",
        stored=True,
    )
    save_dir = Option[Path | None](
        None,
        "Save bodies as files here; records hold the path.",
        kind=Path,
        path=DIRECTORY,
        setting="body.save_dir",
    )
    save_names = Option(
        "id",
        "Name saved bodies by request id (HOST/ID.EXT) or by the URL's path"
        " (HOST/PATH/NAME, as curl -O and aria2).",
        choices=("id", "url"),
        setting="body.save_names",
    )
    max_body = Option(
        10 * 1024 * 1024,
        "Bytes (decoded) per body; more gives too_large.",
        kind=int,
        minimum=0,
        setting="body.max_body",
        stored=True,
    )
    include_headers = Option(
        False,
        "Add response headers to records.",
        kind=bool,
        setting="body.include_headers",
        stored=True,
    )
    insecure = Option(
        False,
        "Do not verify TLS certificates.",
        kind=bool,
        setting="transport.insecure",
        keyword="insecure",
        stored=True,
    )
    cacert = Option[Path | None](
        None,
        "Trust this CA bundle (PEM).",
        kind=Path,
        path=EXISTING_FILE,
        setting="transport.cacert",
        keyword="cacert",
        keyword_type="str | Path | None",
        stored=True,
    )
    cert = Option[Path | None](
        None,
        "Client certificate for mutual TLS (PEM; may hold the key too).",
        kind=Path,
        path=EXISTING_FILE,
        setting="transport.cert",
        keyword="cert",
        keyword_type="str | Path | None",
        stored=True,
    )
    key = Option[Path | None](
        None,
        "Private key of --cert (PEM), when not in the --cert file.",
        kind=Path,
        path=EXISTING_FILE,
        setting="transport.key",
        keyword="key",
        keyword_type="str | Path | None",
        stored=True,
    )
    http_version = Option(
        "1.1",
        "HTTP version to speak.",
        choices=("1.1", "2"),
        flag_values=(
            ("--http1.1", "1.1", "Speak HTTP/1.1 only (the default)."),
            ("--http2", "2", "Offer HTTP/2 over TLS (ALPN h2, then http/1.1); fast engine."),
        ),
        setting="transport.http_version",
        keyword="http_version",
        stored=True,
    )
    proxy = Option[str | None](
        None,
        "Proxy for every request: http://, socks5:// (names resolved here) or socks5h://"
        ' (resolved by the proxy), with user:password@ if it needs them; "" for none.'
        " Default: https_proxy, http_proxy, all_proxy from the environment, as curl.",
        metavar="URL",
        setting="transport.proxy",
        keyword="proxy",
        stored=True,
    )
    noproxy = Option[str | None](
        None,
        "Hosts that never use a proxy: comma-separated names (subdomains too), IPs,"
        " CIDR ranges, or * for all. Default: no_proxy from the environment.",
        metavar="LIST",
        setting="transport.noproxy",
        keyword="noproxy",
        stored=True,
    )
    resolve = Option[tuple[tuple[str, int, str], ...]](
        (),
        "Connect to ADDR for HOST:PORT without asking DNS (as curl); repeatable.",
        parse=parse_resolve,
        multiple=True,
        metavar="HOST:PORT:ADDR",
        setting="transport.resolve",
    )
    dns_servers = Option[tuple[str, ...]](
        (),
        "Ask this DNS server (default: the system's); repeatable.",
        flags=("--dns-server",),
        multiple=True,
        metavar="ADDR[:PORT]",
        setting="transport.dns_servers",
    )
    engine = Option(
        "auto",
        "HTTP engine.",
        choices=("auto", "aiohttp", "fast"),
        keyword="engine",
        stored=True,
    )
    progress = Option[bool | None](
        None,
        "Progress display (default: a bar when stderr is a terminal).",
        flags=("--progress/--no-progress",),
        kind=bool,
        commands=("worker",),
    )
    quiet = Option(
        False,
        "No progress and no summary.",
        flags=("-q", "--quiet"),
        kind=bool,
        commands=("worker",),
    )
    summary_json = Option[Path | None](
        None, "Write the summary as JSON here.", kind=Path, path=FILE
    )
    fail_on_error = Option(False, "Exit 1 when any request failed.", kind=bool)
    only = Option(
        "all",
        "Which records to write; the summary (and journal) count every request.",
        choices=("all", "ok", "failed"),
    )
    resume = Option(
        False,
        "Keep a journal next to -o FILE; run the same command again to fetch only what"
        " has no record yet.",
        kind=bool,
    )
    resume_force = Option(
        False,
        "Resume even if the input or options changed, or rebuild a missing or stale"
        " journal from the output (implies --resume).",
        kind=bool,
    )
    retry_failed = Option(
        False,
        "On resume, fetch again the requests whose record is a failure (implies --resume).",
        kind=bool,
    )
    report = Option[Path | None](
        None,
        "Write an HTML report of the run here when it ends (also on Ctrl-C).",
        kind=Path,
        path=FILE,
    )
    metrics_port = Option[int | None](
        None,
        "Serve Prometheus metrics on this port while running (0: any free port).",
        kind=int,
        minimum=0,
        maximum=65535,
        commands=("worker",),
    )
    metrics_host = Option(
        "127.0.0.1", "Address the metrics server listens on.", commands=("worker",)
    )


class JobOptions:
    """The Redis job a distributed command works on."""

    redis_url = Option[str | None](
        None,
        "redis:// or rediss:// URL; $ASYNCFETCH_REDIS keeps a password out of `ps`.",
        flags=("--redis",),
        metavar="URL",
        envvar="ASYNCFETCH_REDIS",
        required=True,
    )
    job = Option[str | None](None, "The job's name, e.g. crawl-1.", required=True)


class EnqueueOptions:
    """``asyncfetch enqueue``'s own options (besides the job and the stored ones)."""

    append = Option(False, "Add to an existing job instead of refusing.", kind=bool)
    resume = Option(
        False,
        "Finish an interrupted enqueue of the same INPUT: requests already in the job are"
        " skipped, none is added twice (creates the job if it does not exist yet).",
        kind=bool,
    )
    quiet = Option(False, "Print nothing on success.", flags=("-q", "--quiet"), kind=bool)


class WorkerOptions:
    """``asyncfetch worker``'s own options (besides the job and a few of fetch's)."""

    concurrency = Option[int | None](
        None,
        "Requests in flight in this worker (default: the job's -c).",
        flags=("-c", "--concurrency"),
        kind=int,
        minimum=1,
    )
    name = Option[str | None](
        None,
        "Consumer name (default HOST-PID). A worker restarted under the same name first"
        " finishes the requests it held.",
    )
    lease = Option(
        DEFAULT_LEASE_S,
        "Seconds a silent (dead) worker keeps its requests before others reclaim them."
        " Live workers renew theirs every quarter lease, so a slow request is never taken over.",
        kind=float,
        **_POSITIVE,
    )
    max_deliveries = Option(
        5,
        "Deliveries without a result after which a request is dead-lettered.",
        kind=int,
        minimum=1,
    )
    follow = Option(False, "Keep waiting for work after the job completes.", kind=bool)


def run_options_for(command: str) -> list[Option[Any]]:
    """The run options ``command`` takes besides its own (all of them for ``fetch``)."""
    return [o for o in options_of(RunOptions) if command == "fetch" or command in o.commands]


def stored_options() -> list[Option[Any]]:
    """The options an ``enqueue`` stores with its job, for its workers."""
    return [option for option in options_of(RunOptions) if option.stored]


def keyword_options() -> Iterator[Option[Any]]:
    """The run options the library takes as keywords."""
    return (option for option in options_of(RunOptions) if option.keyword is not None)
