"""The report in a real browser: Debian's chromium, driven by playwright.

The page must draw every plot with no console error and without asking the network for
anything, in light and dark, on a phone-sized and a wide window. Playwright's own browser
download is never used: the Makefile installs the chromium package.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from playwright.async_api import Browser, async_playwright

from .cli_helpers import run_cli
from .recording_server import RecordingServer

CHROMIUM = Path("/usr/bin/chromium")
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
PLOTS = ("plot-latency", "plot-throughput", "plot-status")


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    assert CHROMIUM.exists(), "chromium is missing: `make test` installs it (apt-get)"
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        try:
            yield launched
        finally:
            await launched.close()


async def report_of_a_run(server: RecordingServer, unused_port: int, tmp_path: Path) -> Path:
    urls = [server.url(f"/ok?n={n}") for n in range(40)]
    urls += [server.url(f"/delay/{50 * n}", host="localhost") for n in range(1, 6)]
    urls += [server.url("/status/503"), server.url("/status/404")]
    urls += [f"http://127.0.0.1:{unused_port}/refused"]
    source, output, page = tmp_path / "u.txt", tmp_path / "o.jsonl", tmp_path / "report.html"
    source.write_text("".join(url + "\n" for url in urls))
    done = await run_cli("fetch", str(source), "-o", str(output), "--retries", "0", "-q")
    assert done.code == 0, done.stderr
    done = await run_cli("report", str(output), "-o", str(page))
    assert done.code == 0, done.stderr
    return page


@pytest.mark.parametrize("scheme", ["light", "dark"])
@pytest.mark.parametrize("width", [390, 1400])
async def test_report_renders_every_plot_without_errors_or_network(
    server: RecordingServer,
    unused_port: int,
    tmp_path: Path,
    browser: Browser,
    scheme: str,
    width: int,
) -> None:
    page_file = await report_of_a_run(server, unused_port, tmp_path)
    page = await browser.new_page(
        viewport={"width": width, "height": 900},
        color_scheme=scheme,  # type: ignore[arg-type]
    )
    problems: list[str] = []
    requested: list[str] = []
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda error: problems.append(str(error)))
    page.on("request", lambda request: requested.append(request.url))
    await page.goto(page_file.as_uri())
    await page.wait_for_load_state("load")
    for plot in PLOTS:
        canvas = page.locator(f"#{plot} canvas")
        assert await canvas.count() == 1, f"{plot} was not drawn"
        box = await canvas.bounding_box()
        assert box is not None and box["width"] > 100 and box["height"] > 100, (plot, box)
    bars = await page.locator("#plot-hosts .bar.ok").first.bounding_box()
    assert bars is not None and bars["width"] > 0 and bars["height"] > 0
    assert problems == []
    assert requested == [page_file.as_uri()]
    # Nothing wider than the window: a phone scrolls tables inside their box, not the page.
    overflow = await page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 0
    background = await page.evaluate("getComputedStyle(document.body).backgroundColor")
    assert background == ("rgb(13, 17, 23)" if scheme == "dark" else "rgb(255, 255, 255)")
    await page.close()


async def test_report_of_an_empty_output_says_so_without_errors(
    tmp_path: Path, browser: Browser
) -> None:
    output, page_file = tmp_path / "empty.jsonl", tmp_path / "empty.html"
    output.write_bytes(b"")
    done = await run_cli("report", str(output), "-o", str(page_file))
    assert done.code == 0, done.stderr
    page = await browser.new_page()
    problems: list[str] = []
    page.on("pageerror", lambda error: problems.append(str(error)))
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    await page.goto(page_file.as_uri())
    for plot in PLOTS:
        assert await page.locator(f"#{plot}").inner_text() == "no timed requests"
    assert problems == []
    await page.close()
