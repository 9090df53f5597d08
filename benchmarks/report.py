"""Result rows, the markdown tables, the JSON of raw figures and the docs update."""

from __future__ import annotations

import json
import os
import platform
import statistics
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from importlib import metadata
from pathlib import Path

from servers import DELAY_SECONDS

ASYNCFETCH_CLI = "asyncfetch-cli"
TUNED = "aiohttp-tuned"
WRK = "wrk"
DOCS_START = "<!-- bench:start -->"
DOCS_END = "<!-- bench:end -->"


@dataclass
class Row:
    """One contender on one job: the raw figures."""

    workload: str
    job: str
    key: str
    name: str
    status: str  # ok | failures | error | timeout | skipped
    requests: int = 0
    concurrency: int = 0
    ok: int = 0
    failed: int = 0
    wall_s: float | None = None
    rate: float | None = None
    peak_rss_mb: float | None = None
    startup_s: float | None = None
    efficiency: float | None = None
    efficiency_net: float | None = None
    note: str = ""
    detail: str = ""


# ---------------------------------------------------------------- machine


def cpu_model() -> str:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return platform.processor() or "unknown"
    for line in text.splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "not installed"


def machine_info(cpus: str) -> dict[str, str]:
    return {
        "cores": str(os.cpu_count()),
        "cpu": cpu_model(),
        "kernel": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "aiohttp": _version("aiohttp"),
        "asyncfetch": _version("asyncfetch"),
        "pinning": cpus,
        "load": " ".join(f"{x:.1f}" for x in os.getloadavg()),
    }


# ---------------------------------------------------------------- formatting helpers


def _num(value: float | None, digits: int = 0) -> str:
    return "—" if value is None else f"{value:,.{digits}f}"


def _pct(value: float | None) -> str:
    return "—" if value is None else f"{value:.0%}"


def _ratio(value: float | None, base: float | None) -> str:
    if value is None or not base:
        return "—"
    return f"{value / base:.2f}×"


def _failures(row: Row) -> str:
    if row.status == "ok":
        return "0"
    if row.status == "failures":
        return f"**{row.failed:,}** ✗"
    return f"**{row.status}** ✗"


def _ranked(rows: list[Row]) -> list[tuple[str, Row]]:
    good = sorted((r for r in rows if r.status == "ok"), key=lambda r: -(r.rate or 0.0))
    bad = [r for r in rows if r.status not in ("ok", "skipped")]
    return [(str(i), r) for i, r in enumerate(good, 1)] + [("✗", r) for r in bad]


def _rate_of(rows: Iterable[Row], key: str) -> float | None:
    return next((r.rate for r in rows if r.key == key and r.status == "ok"), None)


def _net_rate_of(rows: Iterable[Row], key: str) -> float | None:
    """Requests per second net of the command's start-up (wrk's own rate excludes its)."""
    row = next((r for r in rows if r.key == key and r.status == "ok"), None)
    if row is None or not row.wall_s or row.startup_s is None or row.wall_s <= row.startup_s:
        return None
    return row.ok / (row.wall_s - row.startup_s)


def _notes(row: Row) -> str:
    return row.note.replace("|", "/")


# ---------------------------------------------------------------- tables


def throughput_table(rows: list[Row]) -> list[str]:
    if not rows:
        return []
    first = rows[0]
    wrk, ours = _rate_of(rows, WRK), _rate_of(rows, ASYNCFETCH_CLI)
    out = [
        f"### Throughput: {first.requests:,} requests for a 512-byte file, "
        f"concurrency {first.concurrency}, keep-alive",
        "",
        "| # | contender | req/s | vs wrk | vs asyncfetch CLI | peak RSS MB | failures "
        "| start-up s | note |",
        "|---|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    for rank, r in _ranked(rows):
        out.append(
            f"| {rank} | {r.name} | {_num(r.rate)} | {_ratio(r.rate, wrk)} "
            f"| {_ratio(r.rate, ours)} | {_num(r.peak_rss_mb)} | {_failures(r)} "
            f"| {_num(r.startup_s, 2)} | {_notes(r)} |"
        )
    return [*out, ""]


def latency_table(rows: list[Row]) -> list[str]:
    if not rows:
        return []
    first = rows[0]
    ideal = first.requests * DELAY_SECONDS / first.concurrency
    wrk, ours = _rate_of(rows, WRK), _rate_of(rows, ASYNCFETCH_CLI)
    out = [
        f"### Latency-bound: {first.requests:,} requests to a "
        f"{DELAY_SECONDS * 1000:g} ms endpoint, concurrency {first.concurrency} "
        f"(ideal time {ideal:.2f} s)",
        "",
        "Efficiency = ideal time / measured wall time; *net* subtracts the contender's own "
        "start-up and shutdown (the same command on an empty input).",
        "",
        "| # | contender | time s | req/s | vs wrk | vs asyncfetch CLI | efficiency "
        "| efficiency net | peak RSS MB | failures | note |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for rank, r in _ranked(rows):
        out.append(
            f"| {rank} | {r.name} | {_num(r.wall_s, 2)} | {_num(r.rate)} "
            f"| {_ratio(r.rate, wrk)} | {_ratio(r.rate, ours)} | {_pct(r.efficiency)} "
            f"| {_pct(r.efficiency_net)} | {_num(r.peak_rss_mb)} | {_failures(r)} "
            f"| {_notes(r)} |"
        )
    return [*out, ""]


def memory_table(rows: list[Row]) -> list[str]:
    if not rows:
        return []
    out = [
        "### Memory: peak RSS by input size (512-byte file; asyncfetch at concurrency 64)",
        "",
        "| contender | input lines | time s | req/s | peak RSS MB | failures | note |",
        "|---|---:|---:|---:|---:|---:|---|",
    ]
    for r in rows:
        if r.status == "skipped":
            continue
        out.append(
            f"| {r.name} | {r.requests:,} | {_num(r.wall_s, 1)} | {_num(r.rate)} "
            f"| {_num(r.peak_rss_mb)} | {_failures(r)} | {_notes(r)} |"
        )
    return [*out, ""]


def startup_table(rows: list[Row]) -> list[str]:
    if not rows:
        return []
    out = [
        "### Start-up",
        "",
        "| command | median ms | min ms | peak RSS MB | note |",
        "|---|---:|---:|---:|---|",
    ]
    for r in rows:
        if r.status == "skipped":
            continue
        median = None if r.wall_s is None else r.wall_s * 1000
        fastest = None if r.startup_s is None else r.startup_s * 1000
        out.append(
            f"| `{r.name}` | {_num(median)} | {_num(fastest)} | {_num(r.peak_rss_mb)} "
            f"| {r.note or r.status} |"
        )
    return [*out, ""]


def skipped_list(rows: list[Row]) -> list[str]:
    seen: dict[str, str] = {}
    for r in rows:
        if r.status == "skipped":
            seen.setdefault(r.name, r.detail)
    if not seen:
        return []
    return ["### Skipped", "", *(f"- {name}: {why}" for name, why in seen.items()), ""]


# ---------------------------------------------------------------- targets


def _find(rows: list[Row], workload: str, key: str) -> list[Row]:
    return [r for r in rows if r.workload == workload and r.key == key]


def _verdict(ok: bool | None) -> str:
    return {True: "met", False: "**missed**", None: "not measured"}[ok]


def targets(rows: list[Row]) -> list[tuple[str, str, str]]:
    """(target, measured, verdict) for each of the issue's targets."""
    result = []
    cli = next(iter(_find(rows, "throughput", ASYNCFETCH_CLI)), None)
    tuned = next(iter(_find(rows, "throughput", TUNED)), None)
    share = cli.rate / tuned.rate if cli and tuned and cli.rate and tuned.rate else None
    result.append(
        (
            "CLI ≥ 90% of the tuned bare aiohttp loop (throughput)",
            _pct(share),
            _verdict(None if share is None else share >= 0.9),
        )
    )
    lat = next(iter(_find(rows, "latency", ASYNCFETCH_CLI)), None)
    eff = lat.efficiency if lat and lat.status == "ok" else None
    net = lat.efficiency_net if lat and lat.status == "ok" else None
    result.append(
        (
            "latency efficiency ≥ 90% (CLI)",
            f"{_pct(eff)} (net of start-up {_pct(net)})",
            _verdict(None if eff is None else eff >= 0.9),
        )
    )
    result.append(_memory_target(rows))
    result += _engine_targets(rows)
    help_row = next(iter(_find(rows, "startup", "asyncfetch-help")), None)
    help_ms = help_row.wall_s * 1000 if help_row and help_row.wall_s else None
    result.append(
        (
            "`asyncfetch --help` < 200 ms",
            f"{_num(help_ms)} ms",
            _verdict(None if help_ms is None else help_ms < 200),
        )
    )
    return result


def _efficiency(rows: list[Row], key: str) -> float | None:
    row = next(iter(_find(rows, "latency", key)), None)
    return row.efficiency if row is not None and row.status == "ok" else None


def _engine_targets(rows: list[Row]) -> list[tuple[str, str, str]]:
    """The fast engine's targets: against wrk and curl, and latency against aiohttp."""
    throughput = [r for r in rows if r.workload == "throughput"]
    cli, wrk, curl = (_rate_of(throughput, key) for key in (ASYNCFETCH_CLI, WRK, "curl"))
    of_wrk = cli / wrk if cli and wrk else None
    net = _net_rate_of(throughput, ASYNCFETCH_CLI)
    net_of_wrk = net / wrk if net and wrk else None
    of_curl = cli / curl if cli and curl else None
    fast, slow = (_efficiency(rows, key) for key in (ASYNCFETCH_CLI, "asyncfetch-aiohttp"))
    latency_ok = None if fast is None or slow is None else fast >= slow
    return [
        (
            "CLI (fast engine, JSONL) ≥ 60% of wrk (throughput)",
            f"{_pct(of_wrk)} (net of start-up {_pct(net_of_wrk)})",
            _verdict(None if of_wrk is None else of_wrk >= 0.6),
        ),
        (
            "CLI (fast engine, JSONL) ≥ 1.5 × curl --parallel (throughput)",
            "—" if of_curl is None else f"{of_curl:.2f}×",
            _verdict(None if of_curl is None else of_curl >= 1.5),
        ),
        (
            "latency efficiency: fast engine ≥ aiohttp engine (CLI)",
            f"{_pct(fast)} vs {_pct(slow)}",
            _verdict(latency_ok),
        ),
    ]


def _memory_target(rows: list[Row]) -> tuple[str, str, str]:
    name = "largest input peak RSS ≤ 1.2 × smallest and < 150 MB (CLI)"
    runs = sorted(
        (r for r in _find(rows, "memory", ASYNCFETCH_CLI) if r.peak_rss_mb),
        key=lambda r: r.requests,
    )
    if len(runs) < 2 or runs[-1].peak_rss_mb is None or runs[0].peak_rss_mb is None:
        return (name, "—", _verdict(None))
    small, large = runs[0].peak_rss_mb, runs[-1].peak_rss_mb
    ok = large <= 1.2 * small and large < 150 and runs[-1].status == "ok"
    measured = (
        f"{large:.0f} MB for {runs[-1].requests:,} lines vs {small:.0f} MB for "
        f"{runs[0].requests:,} ({large / small:.2f}×)"
    )
    return (name, measured, _verdict(ok))


def targets_table(rows: list[Row]) -> list[str]:
    out = ["### Targets (asyncfetch)", "", "| target | measured | |", "|---|---|---|"]
    out += [f"| {t} | {m} | {v} |" for t, m, v in targets(rows)]
    return [*out, ""]


# ---------------------------------------------------------------- documents


def markdown(rows: list[Row], machine: dict[str, str], command: str, when: str) -> str:
    by = {w: [r for r in rows if r.workload == w] for w in ("throughput", "latency")}
    lines = [
        f"Run {when} with `{command}`.",
        "",
        f"Machine: {machine['cores']} cores, {machine['cpu']}; {machine['kernel']}; "
        f"Python {machine['python']}, aiohttp {machine['aiohttp']}, "
        f"asyncfetch {machine['asyncfetch']}; {machine['pinning']}; "
        f"load average (1, 5, 15 min) {machine.get('load', '?')}.",
        "",
        *throughput_table(by["throughput"]),
        *latency_table(by["latency"]),
        *memory_table([r for r in rows if r.workload == "memory"]),
        *startup_table([r for r in rows if r.workload == "startup"]),
        *targets_table(rows),
        *skipped_list(rows),
    ]
    return "\n".join(lines).rstrip() + "\n"


def write_results(
    out_dir: Path, stamp: str, rows: list[Row], machine: dict[str, str], command: str, md: str
) -> tuple[Path, Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    payload = {
        "when": stamp,
        "command": command,
        "machine": machine,
        "rows": [asdict(r) for r in rows],
    }
    json_path = out_dir / f"bench-{stamp}.json"
    md_path = out_dir / f"bench-{stamp}.md"
    json_path.write_text(json.dumps(payload, indent=2) + "\n")
    md_path.write_text(md)
    (out_dir / "latest.json").write_text(json_path.read_text())
    (out_dir / "latest.md").write_text(md)
    return json_path, md_path


def update_docs(docs: Path, md: str) -> None:
    """Replace the generated part of docs/benchmarks.md, keeping the prose around it."""
    text = docs.read_text() if docs.exists() else f"# Benchmarks\n\n{DOCS_START}\n{DOCS_END}\n"
    if DOCS_START not in text or DOCS_END not in text:
        text = text.rstrip() + f"\n\n{DOCS_START}\n{DOCS_END}\n"
    head, rest = text.split(DOCS_START, 1)
    _, tail = rest.split(DOCS_END, 1)
    docs.write_text(f"{head}{DOCS_START}\n\n{md}\n{DOCS_END}{tail}")


def median(values: list[float]) -> float:
    return statistics.median(values)
