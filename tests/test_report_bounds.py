"""Memory of the report's figures does not grow with the run: hosts, time, failures."""

from __future__ import annotations

from asyncfetch.report.aggregate import RunAggregate
from asyncfetch.report.hosts import HostTable, host_of
from asyncfetch.report.records import Observation
from asyncfetch.report.timeline import Timeline, epoch_seconds


def test_host_of_keeps_the_port_and_drops_user_info_and_case() -> None:
    assert host_of("https://User:secret@Example.ORG:8443/a?b#c") == "example.org:8443"
    assert host_of("http://example.org?x=1") == "example.org"
    assert host_of("http://[::1]:8080/") == "[::1]:8080"


def test_a_hundred_thousand_hosts_keep_the_table_bounded_and_the_busy_and_slow_hosts_exact() -> (
    None
):
    table = HostTable(capacity=100)
    for number in range(100_000):
        table.add(f"http://host{number}.test/", 200, True, 1, 10.0)
        if number % 10 == 0:
            table.add("http://busy.test/x", 429, False, 2, 5.0)
        if number % 1000 == 0:
            table.add("http://slow.test/y", 503, False, 1, 9000.0)
    assert len(table) <= 200
    assert table.forgotten > 99_000
    busy = table.busiest(1)[0]
    assert (busy.host, busy.requests, busy.too_many_requests, busy.retries) == (
        "busy.test",
        10_000,
        10_000,
        10_000,
    )
    slow = table.slowest(1)[0]
    assert (slow.host, slow.requests, slow.unavailable) == ("slow.test", 100, 100)
    assert [host.host for host in table.most_throttled(2)] == ["busy.test", "slow.test"]


def test_a_week_of_records_fits_in_the_timeline_and_keeps_every_count() -> None:
    timeline = Timeline(max_buckets=600)
    start = epoch_seconds("2026-11-30T00:00:00.000Z")
    assert start is not None
    for second in range(0, 7 * 86_400, 7):
        timeline.add(start + second, 200 if second % 2 else None, bool(second % 2))
    series = timeline.series()
    assert len(series.counts["2xx"]) <= 600
    assert series.width_s >= 7 * 86_400 / 600
    assert sum(series.counts["2xx"]) + sum(series.counts["error"]) == len(range(0, 604_800, 7))
    assert sum(series.counts["failed"]) == sum(series.counts["error"])
    assert series.start_s <= start < series.start_s + series.width_s


def test_times_in_other_iso_forms_read_alike_and_bad_ones_are_skipped() -> None:
    assert epoch_seconds("2026-11-30T00:00:01.500Z") == epoch_seconds(
        "2026-11-30T00:00:01.5+00:00"
    )
    assert epoch_seconds("yesterday") is None
    aggregate = RunAggregate()
    aggregate.add(Observation("a", "GET", "http://h/", 200, True, None, None, 1, 5.0, 10, "bad"))
    data = aggregate.data()
    assert (data.requests, data.wall_s, sum(data.timeline.counts["2xx"])) == (1, 0.0, 0)


def test_failures_keep_the_first_hundred_and_group_the_messages() -> None:
    aggregate = RunAggregate()
    for number in range(10_000):
        message = f"connection refused by host{number % 3}.test"
        aggregate.add(
            Observation(
                str(number),
                "GET",
                f"http://host{number % 3}.test/{number}",
                None,
                False,
                "connect",
                message,
                1,
                float(number % 50),
                0,
                "2026-11-30T00:00:00.000Z",
            )
        )
    data = aggregate.data()
    assert len(data.failed) == 100
    assert [failure.id for failure in data.failed[:3]] == ["0", "1", "2"]
    assert [(g.what, g.count) for g in data.error_groups] == [
        ("connect", 3334),
        ("connect", 3333),
        ("connect", 3333),
    ]
    assert len(data.slowest) == 50
    assert all(seen.total_ms == 49.0 for seen in data.slowest)


def test_hosts_whose_names_start_alike_are_counted_apart() -> None:
    table = HostTable()
    urls = ["http://a.test:1/x", "http://a.test:10/y", "http://a.test/z", "http://a.test.org/w"]
    for url in urls * 3 + ["http://a.test:1/x?again", "http://A.TEST:1/upper"]:
        table.add(url, 200, True, 1, 1.0)
    counts = {host.host: host.requests for host in table.busiest(10)}
    assert counts == {"a.test:1": 5, "a.test:10": 3, "a.test": 3, "a.test.org": 3}
