"""What each native piece earns end to end: the CLI with and without it, alternating.

Each variant is a copy of the package in a scratch directory, run through ``PYTHONPATH``:
the full build (``all``: every module of ``[tool.asyncfetch.native]`` compiled), the full
build without one C module (its Python path runs instead), the build with one group of
mypyc modules left as plain Python (compiled again without them), and plain Python.
Every round runs every variant once, in a rotated order, on the harness's two workloads
against a local nginx (server on one core, client on the other):

- throughput: N requests for the 512-byte file at concurrency 64 (``run.py``'s workload);
  the client's CPU time (user + kernel, ``os.wait4``) per request, which limits a
  CPU-bound client and moves far less with the machine's other load than wall time,
  and its requests per second;
- latency-bound: requests to the 100 ms endpoint at concurrency 1,000: wall seconds.

``--callgrind`` also counts the client's instructions per request under valgrind, once
per variant: the difference between a run of ``2 × K`` and one of ``K`` requests, over
``K``, so start-up cancels out. Deterministic, but the event loop sees other batching
under valgrind's slowdown.

    .venv/bin/python benchmarks/native_ab.py --rounds 5
    .venv/bin/python benchmarks/native_ab.py --only all,no-record_json --rounds 7 --callgrind
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from measure import CpuPlan, plan_cpus, raise_fd_limit
from servers import NginxServer
from workloads import write_urls

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "src" / "asyncfetch"


def _load_native_tool():  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location("native_tool", ROOT / "tools" / "native.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


NATIVE = _load_native_tool()

# mypyc groups: the per-request modules by layer (prefixes of module names).
MYPYC_GROUPS: dict[str, tuple[str, ...]] = {
    "transport": ("asyncfetch.transport.",),
    "pipeline": ("asyncfetch.pipeline.",),
    "policy": ("asyncfetch.policy.",),
    "sinks": ("asyncfetch.sinks.",),
    "input": ("asyncfetch.sources.", "asyncfetch.queues.", "asyncfetch.resume."),
    "models": ("asyncfetch._models", "asyncfetch._hashing"),
    "report": ("asyncfetch.report.",),
}


@dataclass
class Variant:
    key: str
    what: str
    drop_c: tuple[str, ...] = ()  # C modules left out (their Python path runs)
    drop_mypyc: tuple[str, ...] = ()  # prefixes of mypyc modules left as Python
    pure: bool = False
    tree: Path | None = None
    cpu_us: list[float] = field(default_factory=list)
    rate: list[float] = field(default_factory=list)
    latency_s: list[float] = field(default_factory=list)
    instructions: float | None = None


def variants(c_modules: list[str]) -> list[Variant]:
    found = [Variant("all", "everything compiled (the build `make` makes)")]
    for module in c_modules:
        short = module.rsplit(".", 1)[1]
        found.append(Variant(f"no-{short}", f"without {short}.c", drop_c=(module,)))
    for group, prefixes in MYPYC_GROUPS.items():
        found.append(Variant(f"py-{group}", f"{group} modules not compiled", drop_mypyc=prefixes))
    found.append(Variant("pure", "plain Python", pure=True))
    return found


def build_tree(variant: Variant, scratch: Path) -> Path:
    """A copy of the package built as ``variant`` says; returns the PYTHONPATH entry."""
    tree = scratch / variant.key
    shutil.copytree(PACKAGE, tree / "asyncfetch", ignore=shutil.ignore_patterns("*.so"))
    if variant.pure:
        return tree
    modules = NATIVE.configured_modules(tree)
    keep = [
        m
        for m in modules
        if _module_name(m.source, tree) not in variant.drop_c
        and not (
            m.source.suffix == ".py"
            and _module_name(m.source, tree).startswith(variant.drop_mypyc or ("\0",))
        )
    ]
    if not variant.drop_mypyc:  # the full build's extensions, minus the dropped C ones
        for module in keep:
            shutil.copy2(_built(module.compiled, tree), module.compiled)
        runtime = NATIVE.runtime_library()
        shutil.copy2(runtime, tree / runtime.relative_to(PACKAGE.parent))
        return tree
    started = time.monotonic()
    log = scratch / f"{variant.key}.build.log"
    with log.open("w") as out:
        code = subprocess.call(
            [
                *(sys.executable, __file__, "--build-one", str(tree)),
                *("--keep", ",".join(_module_name(m.source, tree) for m in keep)),
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    if code != 0:
        sys.exit(f"build of {variant.key} failed; see {log}")
    say(f"  built {variant.key} ({len(keep)} modules) in {time.monotonic() - started:.0f} s")
    return tree


def _module_name(source: Path, tree: Path) -> str:
    return ".".join(source.relative_to(tree).with_suffix("").parts)


def _built(compiled_in_tree: Path, tree: Path) -> Path:
    return PACKAGE.parent / compiled_in_tree.relative_to(tree)


def build_one(tree: Path, keep: list[str]) -> None:
    """Child process of build_tree: mypyc and the C modules for ``keep`` under ``tree``."""
    modules = [m for m in NATIVE.configured_modules(tree) if _module_name(m.source, tree) in keep]
    NATIVE._compile(modules, src=tree, cache=tree / ".mypyc-cache")


def check_tree(variant: Variant) -> str:
    """Which of the configured modules run compiled in the variant, as a child reports it."""
    probe = (
        "import importlib.util as u, json, sys; names = json.loads(sys.argv[1]);"
        "print(sum(str(getattr(u.find_spec(n), 'origin', '')).endswith('.so') for n in names),"
        " u.find_spec('asyncfetch').origin)"
    )
    names = [
        _module_name(m.source, PACKAGE.parent) for m in NATIVE.configured_modules(PACKAGE.parent)
    ]
    env = {**os.environ, "PYTHONPATH": str(variant.tree)}
    out = subprocess.run(
        [sys.executable, "-c", probe, json.dumps(names)],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    if not out[1].startswith(str(variant.tree)):
        sys.exit(f"{variant.key}: PYTHONPATH did not win, asyncfetch came from {out[1]}")
    return f"{out[0]} of {len(names)} compiled"


def say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# ``--host-table``: the run also keeps per-host figures (report/hosts.py), as every run
# that shows a summary does; run.py's workload is quiet and keeps none.
HOST_TABLE: list[str] = []


def cli(urls: Path, out: Path, concurrency: int) -> list[str]:
    return [
        *(sys.executable, "-m", "asyncfetch", "fetch", str(urls), "-o", str(out)),
        *("-c", str(concurrency), "--per-host", str(concurrency)),
        *("--no-progress", "-q", "--body", "none", *HOST_TABLE),
    ]


def run_once(argv: list[str], variant: Variant, out: Path, expected: int) -> tuple[float, float]:
    """Wall seconds and CPU seconds (user + kernel) of one run, checked for its records."""
    out.unlink(missing_ok=True)
    env = {**os.environ, "PYTHONPATH": str(variant.tree)}
    started = time.perf_counter()
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, env=env)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - started
    if os.waitstatus_to_exitcode(status) != 0:
        sys.exit(f"{variant.key}: exit status {os.waitstatus_to_exitcode(status)}")
    ok = out.read_bytes().count(b'"ok":true')
    if ok != expected:
        sys.exit(f"{variant.key}: {ok} ok records of {expected}")
    return wall, usage.ru_utime + usage.ru_stime


def callgrind(variant: Variant, cpus: CpuPlan, base_url: str, k: int, scratch: Path) -> float:
    """Instructions per request: (I(2K) - I(K)) / K, so start-up and shutdown cancel."""
    counts = []
    for n in (k, 2 * k):
        urls = write_urls(scratch / f"cg-{n}.txt", base_url, n)
        out = scratch / f"cg-{variant.key}.jsonl"
        outfile = scratch / f"cg-{variant.key}-{n}.out"
        argv = cpus.wrap_client(
            [
                *("valgrind", "--tool=callgrind", f"--callgrind-out-file={outfile}"),
                *cli(urls, out, 64),
            ]
        )
        env = {**os.environ, "PYTHONPATH": str(variant.tree)}
        done = subprocess.run(argv, env=env, capture_output=True, text=True, check=False)
        match = re.search(r"Collected : (\d+)", done.stderr)
        if done.returncode != 0 or match is None:
            sys.exit(f"callgrind {variant.key}: {done.stderr[-2000:]}")
        counts.append(int(match.group(1)))
        outfile.unlink(missing_ok=True)
    return (counts[1] - counts[0]) / k


def spread(values: list[float], digits: int = 1) -> str:
    return f"{min(values):,.{digits}f}–{max(values):,.{digits}f}" if values else "—"


def report(found: list[Variant], args: argparse.Namespace, loads: list[str]) -> str:
    base = next(v for v in found if v.key == "all")
    base_cpu = statistics.median(base.cpu_us)
    lines = [
        f"{args.requests:,} requests for /small at -c 64 (CPU per request, req/s) and "
        f"{args.latency_requests:,} to /delay at -c 1000 (wall s); {args.rounds} rounds, "
        f"alternating; load average {', '.join(loads)}",
        "",
        "| variant | CPU µs/request median (min–max) | vs all | req/s median (min–max) "
        "| latency-bound s median (min–max) | instructions/request |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for v in found:
        cpu = statistics.median(v.cpu_us)
        ins = f"{v.instructions:,.0f}" if v.instructions is not None else "—"
        lat = (
            f"{statistics.median(v.latency_s):.2f} ({spread(v.latency_s, 2)})"
            if v.latency_s
            else "—"
        )
        lines.append(
            f"| {v.key}: {v.what} | {cpu:.1f} ({spread(v.cpu_us)}) | {cpu / base_cpu:.3f} "
            f"| {statistics.median(v.rate):,.0f} ({spread(v.rate, 0)}) | {lat} | {ins} |"
        )
    return "\n".join(lines)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("-n", "--requests", type=int, default=50_000)
    parser.add_argument("--latency-requests", type=int, default=10_000)
    parser.add_argument("--only", default="", help="comma-separated variant keys")
    parser.add_argument("--callgrind", type=int, default=0, metavar="K", help="also count")
    parser.add_argument("--host-table", action="store_true", help="also per-host figures")
    parser.add_argument("--keep-trees", type=Path, help="build the trees here and keep them")
    parser.add_argument("--build-one", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--keep", default="", help=argparse.SUPPRESS)
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    if args.build_one:
        build_one(args.build_one, args.keep.split(","))
        return
    raise_fd_limit()
    cpus = plan_cpus()
    if args.host_table:
        HOST_TABLE.extend(["--summary-json", str(Path(tempfile.mkdtemp()) / "summary.json")])
    config = NATIVE.configured_modules()
    c_modules = [_module_name(m.source, PACKAGE.parent) for m in config if m.source.suffix == ".c"]
    found = variants(c_modules)
    if args.only:
        wanted = set(args.only.split(",")) | {"all"}
        found = [v for v in found if v.key in wanted]
    scratch = args.keep_trees or Path(tempfile.mkdtemp(prefix="native-ab-"))
    scratch.mkdir(parents=True, exist_ok=True)
    loads = [" ".join(f"{x:.1f}" for x in os.getloadavg())]
    try:
        for variant in found:
            variant.tree = scratch / variant.key
            if not (variant.tree / "asyncfetch").exists():  # else kept from an earlier run
                _need_fresh_build()
                build_tree(variant, scratch)
            say(f"  {variant.key}: {check_tree(variant)}")
        measure(found, args, cpus, scratch)
        loads.append(" ".join(f"{x:.1f}" for x in os.getloadavg()))
    finally:
        if args.keep_trees is None:
            shutil.rmtree(scratch, ignore_errors=True)
    print(report(found, args, loads))


def _need_fresh_build() -> None:
    modules = NATIVE.configured_modules()
    if NATIVE.status(modules) != 0 or not NATIVE.runtime_library().exists():
        sys.exit("build the package first: make native")


def measure(found: list[Variant], args: argparse.Namespace, cpus: CpuPlan, scratch: Path) -> None:
    with NginxServer(cpus) as server:
        urls = write_urls(scratch / "small.txt", server.url("/small"), args.requests)
        delay = write_urls(scratch / "delay.txt", server.url("/delay"), args.latency_requests)
        out = scratch / "out.jsonl"
        for round_no in range(args.rounds):
            shift = round_no % len(found)
            for variant in found[shift:] + found[:shift]:
                wall, cpu = run_once(
                    cpus.wrap_client(cli(urls, out, 64)), variant, out, args.requests
                )
                variant.cpu_us.append(cpu / args.requests * 1e6)
                variant.rate.append(args.requests / wall)
                if server.has_delay and args.latency_requests:
                    argv = cpus.wrap_client(cli(delay, out, 1000))
                    wall, _ = run_once(argv, variant, out, args.latency_requests)
                    variant.latency_s.append(wall)
            say(f"  round {round_no + 1}: load {os.getloadavg()[0]:.1f}")
        if args.callgrind:
            for variant in found:
                base = server.url("/small")
                variant.instructions = callgrind(variant, cpus, base, args.callgrind, scratch)
                say(f"  callgrind {variant.key}: {variant.instructions:,.0f}")


if __name__ == "__main__":
    main()
