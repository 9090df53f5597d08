"""Regenerate the report screenshots in docs/ (light and dark) from a synthetic run.

    .venv/bin/python tools/report_screenshots.py

Writes 30,000 records with benchmarks/report_build.py's generator, builds their report
with the CLI, and photographs the top of the page in Debian's chromium (playwright).
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

from playwright.sync_api import sync_playwright

ROOT = Path(__file__).resolve().parent.parent
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--no-first-run"]


def main() -> None:
    with tempfile.TemporaryDirectory() as scratch:
        records, page = Path(scratch) / "crawl.jsonl", Path(scratch) / "crawl.html"
        generator = ROOT / "benchmarks" / "report_build.py"
        run = [sys.executable, str(generator), "--records", "30000", "--write-only", str(records)]
        subprocess.run(run, check=True)
        report = [sys.executable, "-m", "asyncfetch", "report", records.name, "-o", page.name]
        subprocess.run(report, check=True, cwd=scratch)
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path="/usr/bin/chromium", args=ARGS)
            for scheme in ("light", "dark"):
                tab = browser.new_page(
                    viewport={"width": 1100, "height": 1180}, color_scheme=scheme
                )
                tab.goto(page.as_uri())
                tab.screenshot(path=str(ROOT / "docs" / f"report-{scheme}.png"))
                tab.close()
            browser.close()


if __name__ == "__main__":
    main()
