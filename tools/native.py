"""Compile asyncfetch's per-request modules with mypyc, in place beside their sources.

The modules named in ``[tool.asyncfetch.native] modules`` of pyproject.toml are typed
Python that mypyc turns into C extensions; Python imports an extension in preference to
the ``.py`` beside it, so the package runs compiled wherever the build succeeded and
as plain Python elsewhere, from the same sources. Those named in ``c_modules`` are
written in C (a ``.c`` file each) and are optional: the code that imports one has a
Python path for when it is missing. ``docs/benchmarks.md`` has the measurements that
earn this step its place.

    python tools/native.py build [--required]   # compile (again, if a source changed)
    python tools/native.py clean                # remove the compiled modules
    python tools/native.py status               # list them; exit 1 if any is stale

Without ``--required`` a failed build (no C compiler, say) leaves the package pure
Python and says so; with it, the failure is the exit status.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import sys
import sysconfig
import tempfile
import tomllib
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SRC = ROOT / "src"
SUFFIX = sysconfig.get_config_var("EXT_SUFFIX") or ".so"
# mypyc's runtime shared by the compiled modules; named inside the package, not at top level.
GROUP = "asyncfetch._native"


@dataclass(frozen=True)
class Module:
    source: Path

    @property
    def compiled(self) -> Path:
        return self.source.with_name(self.source.stem + SUFFIX)


def stale(modules: list[Module]) -> list[Path]:
    """Sources newer than the oldest compiled module: Python would run older code.

    Any source counts, not only the compiled ones, since compiled code relies on what
    it saw of the other modules (their classes' attributes, say) when it was built.
    """
    built = [m.compiled.stat().st_mtime for m in modules if m.compiled.exists()]
    if not built:
        return []
    oldest = min(built)
    package = SRC / "asyncfetch"
    sources = [*package.rglob("*.py"), *package.rglob("*.c")]
    return sorted(p for p in sources if p.stat().st_mtime > oldest)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("action", choices=["build", "clean", "status"])
    parser.add_argument("--required", action="store_true", help="a failed build is an error")
    args = parser.parse_args()
    modules = configured_modules()
    if args.action == "clean":
        clean(modules)
        return 0
    if args.action == "status":
        return status(modules)
    return build(modules, required=args.required)


def configured_modules(src: Path = SRC) -> list[Module]:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    native = config["tool"]["asyncfetch"]["native"]
    return [
        *(Module(_path(name, ".py", src)) for name in native["modules"]),
        *(Module(_path(name, ".c", src)) for name in native["c_modules"]),
    ]


def _path(module: str, suffix: str, src: Path = SRC) -> Path:
    return src / (module.replace(".", "/") + suffix)


def runtime_library() -> Path:
    return SRC / (GROUP.replace(".", "/") + "__mypyc" + SUFFIX)


def clean(modules: list[Module]) -> None:
    for path in [*(module.compiled for module in modules), runtime_library()]:
        path.unlink(missing_ok=True)


def status(modules: list[Module]) -> int:
    newer = stale(modules)
    built = [module for module in modules if module.compiled.exists()]
    print(f"{len(built)} of {len(modules)} modules compiled", end="")
    print(
        f"; stale, older than {', '.join(str(p.relative_to(SRC)) for p in newer)}" if newer else ""
    )
    return 1 if newer else 0


def build(modules: list[Module], *, required: bool) -> int:
    if all(module.compiled.exists() for module in modules) and not stale(modules):
        return 0
    clean(modules)
    log = io.StringIO()
    try:
        with contextlib.redirect_stdout(log), contextlib.redirect_stderr(log):
            _compile(modules)
    except (Exception, SystemExit) as error:  # any failure means "stay pure"
        clean(modules)
        print(log.getvalue()[-4000:], file=sys.stderr)
        print(f"native build failed ({error!r}); asyncfetch stays pure Python", file=sys.stderr)
        return 1 if required else 0
    print(f"compiled {len(modules)} modules (mypyc and C)")
    return 0


def _compile(modules: list[Module], src: Path = SRC, cache: Path | None = None) -> None:
    """Build ``modules`` in place under ``src`` (another tree than ours: benchmarks/native_ab.py
    builds copies of the package with some modules left out, to measure what each earns)."""
    # Imported here so that `clean` and `status` need neither mypy nor setuptools.
    from mypyc.build import mypycify
    from setuptools import Extension, setup

    paths = [str(m.source.relative_to(src)) for m in modules if m.source.suffix == ".py"]
    c_extensions = [
        Extension(
            ".".join(m.source.relative_to(src).with_suffix("").parts),
            [str(m.source.relative_to(src))],
        )
        for m in modules
        if m.source.suffix == ".c"
    ]
    previous = Path.cwd()
    os.chdir(src)  # mypyc names each module after its path relative to the working directory
    try:
        with tempfile.TemporaryDirectory() as scratch:
            extensions = mypycify(
                [
                    *paths,
                    *("--config-file", str(ROOT / "pyproject.toml")),
                    *("--cache-dir", str(cache or ROOT / "build" / "mypyc-cache")),
                ],
                opt_level="3",
                group_name=GROUP,
                target_dir=str(Path(scratch) / "c"),
            )
            setup(
                name="asyncfetch-native",
                ext_modules=[*extensions, *c_extensions],
                script_args=[
                    *("build_ext", "--inplace"),
                    *("--build-temp", str(Path(scratch) / "o")),
                    *("--build-lib", str(Path(scratch) / "lib")),
                ],
            )
    finally:
        os.chdir(previous)


if __name__ == "__main__":
    sys.exit(main())
