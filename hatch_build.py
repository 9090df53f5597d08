"""Wheel builds ship asyncfetch's compiled modules (tools/native.py), like ``make`` does.

Hatchling runs this hook for every wheel it builds (``pip install .``, ``pip wheel .``,
``python -m build``). It compiles the modules listed in ``[tool.asyncfetch.native]`` with
mypyc in place (nothing, if the build there is current) and adds them to the wheel,
which then carries the interpreter and platform tag. Where the build fails (no C
compiler, say) the wheel is pure Python, as the package is then, and pip shows why.
An editable install (``pip install -e .``, what ``make`` uses) runs the sources in place,
where ``make native`` builds them, so it is left alone.
"""

from __future__ import annotations

import subprocess
import sys
import sysconfig
from pathlib import Path
from typing import Any

from hatchling.builders.hooks.plugin.interface import BuildHookInterface

SUFFIX = sysconfig.get_config_var("EXT_SUFFIX") or ".so"


class NativeBuildHook(BuildHookInterface):  # type: ignore[type-arg]
    PLUGIN_NAME = "custom"

    def dependencies(self) -> list[str]:
        # mypyc type-checks what it compiles, so it needs the runtime dependencies too.
        return ["mypy>=1.10", "setuptools>=65", *self.metadata.core.dependencies]

    def initialize(self, version: str, build_data: dict[str, Any]) -> None:
        if self.target_name != "wheel" or version == "editable":
            return
        root = Path(self.root)
        subprocess.run([sys.executable, str(root / "tools" / "native.py"), "build"], check=True)
        package = root / "src" / "asyncfetch"
        compiled = sorted(package.rglob("*" + SUFFIX))
        if not compiled:
            return  # tools/native.py said why; the wheel stays pure Python
        build_data["pure_python"] = False
        build_data["infer_tag"] = True
        for path in compiled:
            build_data["force_include"][str(path)] = str(path.relative_to(root / "src"))
