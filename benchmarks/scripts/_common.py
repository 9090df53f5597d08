"""Shared plumbing for the Python contender scripts.

Every script is called as ``script.py URLS_FILE CONCURRENCY`` and prints, as its last
stdout line, one JSON object: ``{"ok": N, "failed": M, "elapsed_s": T}``.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class Tally:
    """Counts outcomes; ``ok`` means a response with status < 400."""

    ok: int = 0
    failed: int = 0
    started: float = field(default_factory=time.perf_counter)

    def record(self, status: int | None) -> None:
        if status is not None and status < 400:
            self.ok += 1
        else:
            self.failed += 1

    def report(self) -> None:
        elapsed = time.perf_counter() - self.started
        print(json.dumps({"ok": self.ok, "failed": self.failed, "elapsed_s": round(elapsed, 4)}))


def parse_args() -> tuple[Path, int]:
    if len(sys.argv) != 3:
        sys.exit(f"usage: {sys.argv[0]} URLS_FILE CONCURRENCY")
    return Path(sys.argv[1]), int(sys.argv[2])


def iter_urls(path: Path) -> Iterator[str]:
    with path.open() as lines:
        for line in lines:
            url = line.strip()
            if url:
                yield url


def read_urls(path: Path) -> list[str]:
    return list(iter_urls(path))
