"""A wheel built from the project carries the compiled modules (hatch_build.py).

The wheel is built as pip builds one (``pip wheel``), from a copy of the checkout that
keeps the compiled modules ``make native`` left there, so nothing is compiled twice; it
is then unpacked and the CLI run from it, as an installed package, against a real server.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from .cli_helpers import read_jsonl
from .native_build import C_MODULES, NATIVE_MODULES, ROOT, SUFFIX
from .recording_server import RecordingServer


def _checkout_copy(where: Path) -> Path:
    tracked = subprocess.run(
        ["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.split()
    compiled = [str(p.relative_to(ROOT)) for p in (ROOT / "src").rglob("*" + SUFFIX)]
    for name in [*tracked, *compiled]:
        target = where / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, target)  # keeps mtimes: a current build stays current
    return where


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    work = tmp_path_factory.mktemp("wheel")
    source = _checkout_copy(work / "checkout")
    built = subprocess.run(
        [
            *(sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation"),
            *("--quiet", "-w", str(work / "dist"), str(source)),
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert built.returncode == 0, built.stdout[-3000:] + built.stderr[-3000:]
    (wheel,) = (work / "dist").glob("asyncfetch-*.whl")
    return wheel


def test_the_wheel_carries_every_compiled_module_and_a_platform_tag(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    wanted = {name.replace(".", "/") + SUFFIX for name in [*NATIVE_MODULES, *C_MODULES]}
    wanted.add("asyncfetch/_native__mypyc" + SUFFIX)
    assert wanted - names == set()
    assert "asyncfetch/pipeline/dispatch.py" in names  # the sources stay beside them
    # What the HTML report inlines: a report from an installed wheel must not break.
    assets = {"uPlot.iife.min.js", "uPlot.min.css", "uPlot.LICENSE", "report.js", "report.css"}
    assert {f"asyncfetch/report/assets/{name}" for name in assets} - names == set()
    assert not wheel.name.endswith("-none-any.whl")


async def test_the_installed_wheel_runs_compiled(
    wheel: Path, server: RecordingServer, tmp_path: Path
) -> None:
    installed = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(installed)
    urls = tmp_path / "urls.txt"
    urls.write_text("".join(f"{server.url(f'/ok?n={n}')}\n" for n in range(20)))
    out = tmp_path / "out.jsonl"
    script = (
        "import sys, asyncfetch.pipeline.dispatch as dispatch; print(dispatch.__file__); "
        "from asyncfetch.cli import main; sys.argv[0] = 'asyncfetch'; main()"
    )
    process = await asyncio.create_subprocess_exec(
        *(sys.executable, "-c", script, "fetch", str(urls), "-o", str(out), "-q"),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": str(installed)},
        cwd=tmp_path,
    )
    stdout, stderr = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == 0, stderr.decode()
    dispatch = installed / "asyncfetch" / "pipeline" / ("dispatch" + SUFFIX)
    assert stdout.decode().strip() == str(dispatch)
    records = read_jsonl(out)
    assert len(records) == 20 and all(record["ok"] for record in records)
