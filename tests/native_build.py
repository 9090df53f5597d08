"""What tools/native.py compiles, as the tests of the compiled build need to know it."""

from __future__ import annotations

import sysconfig
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SUFFIX: str = sysconfig.get_config_var("EXT_SUFFIX")
_CONFIG = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["asyncfetch"]["native"]
# Typed Python compiled by mypyc, and modules written in C.
NATIVE_MODULES: list[str] = _CONFIG["modules"]
C_MODULES: list[str] = _CONFIG["c_modules"]
