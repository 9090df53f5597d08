"""The report page: one self-contained HTML file (inline styles, scripts and data).

Tables and headline figures are written here as HTML, so the page reads even without
scripts; ``assets/report.js`` draws the plots with uPlot from the JSON in the page.
Everything that comes from records is escaped (``_text``); the JSON is made safe for a
``<script>`` element by escaping ``<``.
"""

from __future__ import annotations

import html
import math
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from importlib import metadata, resources
from typing import Any

import orjson

from .aggregate import ReportData
from .hosts import HostSummary
from .records import Observation

# Latency buckets are 5% wide; the plot groups four (21% wide bars) to stay readable.
_BUCKET_GROWTH = 1.05
_BUCKETS_PER_BAR = 4
_SHOWN_ROWS = 50
_URL_CHARS = 160


def _asset(name: str) -> str:
    return (
        resources.files("asyncfetch.report").joinpath("assets", name).read_text(encoding="utf-8")
    )


def _generator() -> str:
    # From the installed metadata: the root package (which holds __version__) is a layer
    # above this one.
    try:
        return f"asyncfetch {metadata.version('asyncfetch')}"
    except metadata.PackageNotFoundError:
        return "asyncfetch"  # a source tree that was never installed


def _text(value: object) -> str:
    return html.escape(str(value), quote=True)


def _short(url: str) -> str:
    return url if len(url) <= _URL_CHARS else url[: _URL_CHARS - 1] + "…"


def _count(value: int) -> str:
    return f"{value:,}"


def _ms(value: float) -> str:
    return f"{value:,.1f}"


def _bytes(value: int) -> str:
    size = float(value)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if size < 1024 or unit == "TiB":
            return f"{size:,.0f} {unit}" if unit == "B" else f"{size:,.1f} {unit}"
        size /= 1024
    raise AssertionError("unreachable")


def _duration(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h {minutes:02d}m" if hours else f"{minutes}m {secs:02d}s"


def _table(
    headers: Sequence[str], rows: Iterable[Sequence[str]], css: str = "", table_id: str = ""
) -> str:
    """A table of already escaped cells; numeric columns are marked by a leading '#'."""
    numeric = [header.startswith("#") for header in headers]
    head = "".join(
        f"<th{' class=num' if num else ''}>{_text(h.lstrip('#'))}</th>"
        for h, num in zip(headers, numeric, strict=True)
    )
    body = "".join(
        "<tr>"
        + "".join(
            f"<td{' class=num' if num else ''}>{cell}</td>"
            for cell, num in zip(row, numeric, strict=True)
        )
        + "</tr>"
        for row in rows
    )
    return (
        f'<div class="scroll"><table id="{table_id}" class="{css}"><thead><tr>{head}</tr></thead>'
        f"<tbody>{body}</tbody></table></div>"
    )


def _card(label: str, value: str, css: str = "") -> str:
    return (
        f'<div class="card {css}"><div class="label">{_text(label)}</div>'
        f'<div class="value">{_text(value)}</div></div>'
    )


def _headline(data: ReportData) -> str:
    cards = [
        _card("requests", _count(data.requests)),
        _card("ok", _count(data.ok), "good"),
        _card("failed", _count(data.failed_count), "bad" if data.failed_count else ""),
        _card("requests/s", f"{data.requests_per_second:,.1f}"),
        _card("wall time", _duration(data.wall_s)),
        _card("bytes", _bytes(data.bytes)),
        _card("retries", _count(data.retries)),
        _card("p99 latency", f"{_ms(data.latency_ms['p99'])} ms"),
    ]
    classes = _chips(data.by_status_class, "status class")
    kinds = _chips(data.by_error_kind, "error kind") if data.by_error_kind else ""
    return f'<section class="cards">{"".join(cards)}</section>{classes}{kinds}'


def _chips(counts: dict[str, int], label: str) -> str:
    chips = "".join(
        f'<span class="chip c-{_text(key)}"><b>{_text(key)}</b> {_count(n)}</span>'
        for key, n in counts.items()
    )
    return (
        f'<p class="chips"><span class="chips-label">{_text(label)}:</span> {chips or "none"}</p>'
    )


def _latency(data: ReportData) -> str:
    rows = [[_text(name), _ms(value)] for name, value in data.latency_ms.items()]
    table = _table(["percentile", "#ms"], rows, "narrow", "percentiles")
    return (
        '<section><h2>Latency</h2><div class="split">'
        '<div class="plot" id="plot-latency" role="img" aria-label="latency histogram"></div>'
        f"{table}</div></section>"
    )


def _timelines() -> str:
    return (
        "<section><h2>Throughput and failures over time</h2>"
        '<div class="plot" id="plot-throughput" role="img"'
        ' aria-label="requests and failures per second over time"></div></section>'
        "<section><h2>Status classes over time</h2>"
        '<div class="plot" id="plot-status" role="img"'
        ' aria-label="responses per second by status class over time"></div></section>'
    )


def _host_bars(hosts: list[HostSummary]) -> str:
    widest = max((host.requests for host in hosts), default=0) or 1
    rows = []
    for host in hosts:
        ok = 100.0 * host.ok / widest
        failed = 100.0 * (host.requests - host.ok) / widest
        rows.append(
            f'<div class="bar-row"><span class="bar-label" title="{_text(host.host)}">'
            f"{_text(host.host)}</span>"
            f'<span class="bar-track"><span class="bar ok" style="width:{ok:.2f}%"></span>'
            f'<span class="bar failed" style="width:{failed:.2f}%"></span></span>'
            f'<span class="bar-value">{_count(host.requests)}</span></div>'
        )
    return f'<div class="plot bars" id="plot-hosts">{"".join(rows)}</div>'


def _host_rows(hosts: list[HostSummary]) -> list[list[str]]:
    return [
        [
            _text(host.host),
            _count(host.requests),
            f"{host.ok_percent:.1f}",
            _ms(host.p50_ms),
            _ms(host.p99_ms),
            _count(host.too_many_requests),
            _count(host.unavailable),
            _count(host.retries),
        ]
        for host in hosts
    ]


_HOST_HEADERS = ["host", "#requests", "#ok %", "#p50 ms", "#p99 ms", "#429", "#503", "#retries"]


def _hosts(data: ReportData) -> str:
    note = ""
    if data.hosts_forgotten:
        note = (
            f'<p class="note">More hosts than the report tracks: {_count(data.hosts_forgotten)}'
            " times a quiet host was set aside, so figures of hosts outside the busiest and"
            " slowest are lower bounds.</p>"
        )
    return (
        "<section><h2>Hosts</h2><h3>Busiest hosts (requests; green ok, red failed)</h3>"
        f"{_host_bars(data.busiest_hosts)}"
        f"{_table(_HOST_HEADERS, _host_rows(data.busiest_hosts), table_id='hosts-busiest')}"
        "<h3>Slowest hosts (mean latency)</h3>"
        f"{_table(_HOST_HEADERS, _host_rows(data.slowest_hosts), table_id='hosts-slowest')}"
        f"{note}</section>"
    )


def _request_rows(observations: list[Observation]) -> list[list[str]]:
    return [
        [
            f'<span class="url">{_text(_short(seen.url))}</span>',
            _text(seen.method),
            _text("" if seen.status is None else seen.status),
            _text(seen.error_kind or ""),
            _text(seen.error_message or ""),
            _count(seen.attempts),
            _ms(seen.total_ms),
            _text(seen.started_at),
        ]
        for seen in observations[:_SHOWN_ROWS]
    ]


_REQUEST_HEADERS = ["url", "method", "#status", "error", "message", "#attempts", "#ms", "started"]


def _requests(data: ReportData) -> str:
    groups = [[_text(g.what), _text(g.message), _count(g.count)] for g in data.error_groups]
    failed = "<p>No request failed.</p>"
    if data.failed:
        failed = (
            "<h3>Most frequent failures</h3>"
            f"{_table(['kind or status', 'message', '#requests'], groups, table_id='errors')}"
            f"<h3>Failed requests (the first {min(len(data.failed), _SHOWN_ROWS)})</h3>"
            f"{_table(_REQUEST_HEADERS, _request_rows(data.failed), table_id='failed')}"
        )
    return (
        "<section><h2>Slowest requests</h2>"
        f"{_table(_REQUEST_HEADERS, _request_rows(data.slowest), table_id='slowest')}</section>"
        f"<section><h2>Failed requests</h2>{failed}</section>"
    )


def _latency_bars(buckets: list[tuple[float, int]]) -> dict[str, list[float]]:
    """Histogram bars: each bar's upper edge (ms) and request count, log-spaced."""
    bars: dict[int, int] = {}
    for edge, count in buckets:
        index = 0 if edge <= 1.0 else round(math.log(edge) / math.log(_BUCKET_GROWTH))
        bar = -(-index // _BUCKETS_PER_BAR)
        bars[bar] = bars.get(bar, 0) + count
    edges = [_BUCKET_GROWTH ** (bar * _BUCKETS_PER_BAR) for bar in sorted(bars)]
    return {"edges": edges, "counts": [float(bars[bar]) for bar in sorted(bars)]}


def page_data(data: ReportData) -> dict[str, Any]:
    """What report.js draws."""
    series = data.timeline
    return {
        "latency": {**_latency_bars(data.latency_buckets), "percentiles": data.latency_ms},
        "timeline": {
            "start": series.start_s,
            "width": series.width_s,
            "end": data.ended_s,
            "counts": series.counts,
        },
    }


def _script_json(value: Any) -> str:
    # "<" escaped: no "</script>" or "<!--" can end the element early.
    return orjson.dumps(value).decode("utf-8").replace("<", "\\u003c")


def render(data: ReportData, *, source: str, generated: datetime | None = None) -> str:
    """The whole page as text."""
    when = (generated or datetime.now(UTC)).strftime("%Y-%m-%d %H:%M UTC")
    notes = "".join(f'<p class="note">{_text(note)}</p>' for note in data.notes)
    body = (
        f'<header><h1>asyncfetch report</h1><p class="source">{_text(source)}'
        f" · generated {when} by {_text(_generator())}</p></header>{notes}"
        f"<main>{_headline(data)}{_latency(data)}{_timelines()}{_hosts(data)}"
        f"{_requests(data)}</main>"
    )
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        '<meta name="color-scheme" content="light dark">'
        f"<title>asyncfetch report: {_text(source)}</title>"
        f"<style>{_asset('uPlot.min.css')}\n{_asset('report.css')}</style></head>"
        f"<body>{body}"
        f'<script type="application/json" id="report-data">{_script_json(page_data(data))}'
        f"</script><script>{_asset('uPlot.iife.min.js')}</script>"
        f"<script>{_asset('report.js')}</script></body></html>\n"
    )
