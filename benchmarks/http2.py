"""HTTP/2 against HTTP/1.1 on one HTTPS host, in the same run.

Starts nginx (the interop suite's configuration: TLS with a private CA, ``http2``, an
access log naming each request's connection) and runs the CLI on N requests to one
host with ``--per-host 100``, alternating ``--http2`` and ``--http1.1``, each repeated.
For each run it prints requests per second and the connections nginx saw (distinct
``$connection`` serials in its access log for that run).

    .venv/bin/python benchmarks/http2.py                 # 20,000 requests, 3 repeats
    .venv/bin/python benchmarks/http2.py -n 5000 --repeat 5
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

import trustme
from measure import run_counted

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.interop import servers  # noqa: E402  (the suite's nginx, as the tests run it)

PROTOCOLS = {"HTTP/2": "--http2", "HTTP/1.1": "--http1.1"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", "--requests", type=int, default=20_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    ca = trustme.CA()
    with tempfile.TemporaryDirectory() as tmp, servers.nginx(Path(tmp), ca) as nginx:
        work = Path(tmp)
        bundle = work / "ca.pem"
        ca.cert_pem.write_to_path(str(bundle))
        urls = work / "urls.txt"
        assert nginx.h2_url is not None
        urls.write_text("".join(f"{nginx.h2_url}/conn?n={n}\n" for n in range(args.requests)))
        log = nginx.directory / "h2-access.log"
        figures: dict[str, list[tuple[float, int]]] = {name: [] for name in PROTOCOLS}
        for repeat in range(args.repeat):
            for name, flag in PROTOCOLS.items():
                rps, connections = _one_run(work, urls, bundle, flag, log, args.requests)
                figures[name].append((rps, connections))
                print(f"repeat {repeat + 1} {name:9} {rps:9.0f} req/s  {connections} connections")
        _summary(figures)


def _one_run(
    work: Path, urls: Path, bundle: Path, flag: str, log: Path, expected: int
) -> tuple[float, int]:
    start = log.stat().st_size if log.exists() else 0
    out = work / "out.jsonl"
    argv = [sys.executable, "-m", "asyncfetch", "fetch", str(urls), "-o", str(out), "-q"]
    argv += ["--per-host", "100", "-c", "100", "--cacert", str(bundle), flag]
    usage = run_counted(argv, out, expected, env=None)
    with log.open("rb") as lines:
        lines.seek(start)
        seen = [line.split(b" ", 3) for line in lines.read().splitlines()]
    protocols = {fields[2] for fields in seen}
    assert len(seen) == expected, f"nginx logged {len(seen)} of {expected} requests"
    assert protocols == {b"HTTP/2.0" if flag == "--http2" else b"HTTP/1.1"}, protocols
    return expected / usage.wall_s, len({fields[0] for fields in seen})


def _summary(figures: dict[str, list[tuple[float, int]]]) -> None:
    print()
    print("| protocol | req/s (median) | req/s (min–max) | connections opened |")
    print("|---|---|---|---|")
    for name, runs in figures.items():
        rates = [rps for rps, _ in runs]
        connections = sorted({count for _, count in runs})
        print(
            f"| {name} | {statistics.median(rates):,.0f} | {min(rates):,.0f}–{max(rates):,.0f}"
            f" | {', '.join(map(str, connections))} |"
        )
    h2, h1 = (statistics.median(rps for rps, _ in figures[n]) for n in PROTOCOLS)
    print(f"\nHTTP/2 / HTTP/1.1 (medians): {h2 / h1:.2f}")


if __name__ == "__main__":
    main()
