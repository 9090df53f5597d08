"""Mutation testing of the policy modules (``make mutation``): which plausible bugs survive?

mutmut rewrites each function of the modules named in ``[tool.mutmut] only_mutate`` of
pyproject.toml into many small variants (a ``<`` for a ``<=``, a constant changed, a call
dropped) and runs, for each, the tests that reach that function. A variant no test fails
on is a *survivor*: a bug the suite would let through.

It runs on a copy of the tracked files in ``build/mutation`` with the compiled modules
removed: Python prefers an extension module to the ``.py`` beside it, so a mutated
source would otherwise never run. The worktree itself is left as it is.

    python tools/mutation.py run [MUTANT ...]   # (re)run, then write the report
    python tools/mutation.py report [--diffs]   # the report of the last run

The report (``build/mutation/report.txt``) has the score per module and every survivor
(with its diff when asked: slow); ``docs/testing.md`` lists those judged equivalent.
"""

from __future__ import annotations

import argparse
import filecmp
import re
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
WORK = ROOT / "build" / "mutation"
REPORT = WORK / "report.txt"
# What the copy needs: the package, its tests, the tools and the configuration.
COPIED = ("src", "tests", "tools", "pyproject.toml")
# mutmut's statuses that count as caught (a timeout or crash is caught too: the run fails).
CAUGHT = {"killed", "timeout", "segfault", "suspicious"}
_RESULT_LINE = re.compile(r"^\s*(?P<name>[\w.]+__mutmut_\d+): (?P<status>[\w ]+)$")


def sync_copy() -> None:
    """Copy the tracked files into WORK, leaving unchanged ones (and their mtimes) alone.

    mutmut regenerates a module's mutants only when its source is newer than its mutated
    copy, so untouched files must keep their timestamps for an incremental rerun.
    """
    tracked = subprocess.run(
        ["git", "ls-files", "-z", "--", *COPIED],
        cwd=ROOT,
        check=True,
        capture_output=True,
    ).stdout.decode()
    names = set(filter(None, tracked.split("\0")))
    for stale in _copied_files() - names:  # moved or deleted since the last run
        (WORK / stale).unlink()
    for name in names:
        source, target = ROOT / name, WORK / name
        if not source.is_file():  # deleted in the worktree, not yet committed
            continue
        if target.exists() and filecmp.cmp(source, target, shallow=False):
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, target)
    subprocess.run([sys.executable, "tools/native.py", "clean"], cwd=WORK, check=True)


def _copied_files() -> set[str]:
    found = set()
    for top in COPIED:
        path = WORK / top
        files = [path] if path.is_file() else path.rglob("*") if path.is_dir() else []
        for file in files:
            if file.is_file() and "__pycache__" not in file.parts:
                found.add(file.relative_to(WORK).as_posix())
    return found


def mutmut(*args: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "mutmut", *args]
    return subprocess.run(command, cwd=WORK, text=True, capture_output=args[0] != "run")


def statuses() -> dict[str, str]:
    """mutant name → mutmut's status, for every mutant of the last run."""
    output = mutmut("results", "--all", "true").stdout
    found = {}
    for line in output.splitlines():
        match = _RESULT_LINE.match(line)
        if match:
            found[match["name"]] = match["status"].strip()
    return found


def module_of(mutant: str) -> str:
    """``asyncfetch.retry.x_backoff_delay__mutmut_3`` → ``asyncfetch.retry``."""
    parts = mutant.split(".")
    return ".".join(part for part in parts[:-1] if not part.startswith(("x_", "x\u01c1")))


def score_table(found: dict[str, str]) -> list[str]:
    total: Counter[str] = Counter()
    caught: Counter[str] = Counter()
    for name, status in found.items():
        module = module_of(name)
        total[module] += 1
        caught[module] += status in CAUGHT
    lines = [f"{'module':40} {'mutants':>8} {'caught':>8} {'score':>7}"]
    for module in sorted(total):
        lines.append(
            f"{module:40} {total[module]:8} {caught[module]:8}"
            f" {100 * caught[module] / total[module]:6.1f}%"
        )
    all_total, all_caught = sum(total.values()), sum(caught.values())
    if all_total:
        lines.append(
            f"{'all':40} {all_total:8} {all_caught:8} {100 * all_caught / all_total:6.1f}%"
        )
    return lines


def write_report(*, diffs: bool) -> int:
    found = statuses()
    if not found:
        print("no mutation results yet: run `make mutation` first", file=sys.stderr)
        return 1
    survivors = sorted(name for name, status in found.items() if status not in CAUGHT)
    untested = [name for name in survivors if found[name] != "survived"]
    tested = [name for name in survivors if found[name] == "survived"]
    # `mutmut show` takes a second or more per mutant: diffs only when asked for.
    shown = [f"--- {name}\n{mutmut('show', name).stdout.strip()}" for name in tested if diffs]
    sections = [
        "\n".join(score_table(found)),
        f"{len(untested)} mutant(s) no selected test reached, or not run:\n"
        + "\n".join(f"{name} ({found[name]})" for name in untested),
        f"{len(tested)} survivor(s) of the tests that reach them"
        " (`mutmut show NAME` in build/mutation for a diff):\n" + "\n".join(tested),
        *shown,
    ]
    REPORT.write_text("\n\n".join(sections) + "\n", encoding="utf-8")
    print(sections[0])
    print(f"{len(survivors)} survivor(s), listed in {REPORT.relative_to(ROOT)}")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("action", choices=["run", "report"])
    parser.add_argument("mutants", nargs="*", help="only these mutants (names from the report)")
    parser.add_argument("--jobs", type=int, default=2, help="mutants tested at once")
    parser.add_argument("--diffs", action="store_true", help="put each survivor's diff in")
    args = parser.parse_args()
    if args.action == "run":
        sync_copy()
        ran = mutmut("run", "--max-children", str(args.jobs), *args.mutants)
        if ran.returncode != 0:
            return ran.returncode
    return write_report(diffs=args.diffs)


if __name__ == "__main__":
    sys.exit(main())
