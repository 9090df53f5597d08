"""The compiled build (tools/native.py): what runs is what was built, and it behaves alike.

``make test`` runs the whole suite on the compiled modules (``NATIVE=0`` on the pure
ones). The last test here runs the HTTP fault matrix and the record-path checks again,
in a subprocess, on a copy of the package without its extensions, so that both builds
are held to the same records in every run.
"""

from __future__ import annotations

import ast
import dataclasses
import importlib
import importlib.util
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import asyncfetch

from .native_build import C_MODULES, NATIVE_MODULES, ROOT, SUFFIX

EXPECT_NATIVE = os.environ.get("ASYNCFETCH_EXPECT_NATIVE")


def _source(module: str) -> Path:
    return ROOT / "src" / (module.replace(".", "/") + ".py")


@pytest.mark.parametrize("module", NATIVE_MODULES)
def test_no_compiled_module_chains_with_from(module: str) -> None:
    # mypyc drops the `from` of `raise X from Y`; errors.caused_by keeps the cause.
    tree = ast.parse(_source(module).read_text(encoding="utf-8"))
    chained = [
        node.lineno for node in ast.walk(tree) if isinstance(node, ast.Raise) and node.cause
    ]
    assert chained == [], f"{module}: use raise caused_by(error, cause) on lines {chained}"


def test_the_suite_runs_the_build_make_asked_for() -> None:
    """Under make, the build NATIVE asked for; under a plain pytest (which rebuilds stale
    modules, see conftest.py), a whole build or none: never a partial one."""
    files = {name: str(importlib.import_module(name).__file__) for name in NATIVE_MODULES}
    compiled = sorted(name for name, path in files.items() if path.endswith(SUFFIX))
    native = EXPECT_NATIVE == "1" if EXPECT_NATIVE is not None else bool(compiled)
    assert compiled == sorted(NATIVE_MODULES if native else [])
    assert sorted(name for name in C_MODULES if importlib.util.find_spec(name)) == sorted(
        C_MODULES if native else []
    )
    # The fast transport found the one-pass parse, or knows it has to do without.
    from asyncfetch.transport.fast import connection as fast_conn

    assert (fast_conn._WHOLE_RESPONSE is not None) == native


def test_a_cause_survives_compilation(tmp_path: Path) -> None:
    from asyncfetch._errors import InputError
    from asyncfetch.sources.reader import check_readable  # compiled: it uses caused_by

    with pytest.raises(InputError, match="cannot open input") as info:
        check_readable(tmp_path / "missing.txt")
    assert isinstance(info.value.__cause__, FileNotFoundError)


def _written_out_inits() -> list[type]:
    """Dataclasses of compiled modules that write their own __init__ (``init=False``)."""
    classes = []
    for name in NATIVE_MODULES:
        for value in vars(importlib.import_module(name)).values():
            if (
                isinstance(value, type)
                and value.__module__ == name
                and dataclasses.is_dataclass(value)
                and not value.__dataclass_params__.init  # type: ignore[attr-defined]
            ):
                classes.append(value)
    return classes


WRITTEN_OUT = _written_out_inits()


def test_the_per_request_classes_write_their_init_out() -> None:
    names = {cls.__name__ for cls in WRITTEN_OUT}
    assert {"Request", "Response", "Result", "Timings", "Clock", "WorkItem"} <= names


def _init_of(cls: type) -> ast.FunctionDef:
    # Read from the source: a compiled function's signature is only ``*args, **kwargs``.
    tree = ast.parse(_source(cls.__module__).read_text(encoding="utf-8"))
    node = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == cls.__name__)
    return next(n for n in node.body if isinstance(n, ast.FunctionDef) and n.name == "__init__")


@pytest.mark.parametrize("cls", WRITTEN_OUT, ids=lambda cls: cls.__name__)
def test_a_written_out_init_takes_exactly_the_fields(cls: type) -> None:
    # What the dataclass would have generated: every field, in order, with its default,
    # each stored under its own name.
    fields = dataclasses.fields(cls)
    init = _init_of(cls)
    names = [argument.arg for argument in init.args.args[1:]]
    assert names == [field.name for field in fields]
    defaults = [ast.literal_eval(default) for default in init.args.defaults]
    assert defaults == [f.default for f in fields if f.default is not dataclasses.MISSING]
    assert len(defaults) == sum(f.default is not dataclasses.MISSING for f in fields)
    stored = [
        (target.attr, statement.value.id)
        for statement in init.body
        if isinstance(statement, ast.Assign) and isinstance(statement.value, ast.Name)
        for target in statement.targets
        if isinstance(target, ast.Attribute)
    ]
    assert stored == [(name, name) for name in names]


@pytest.mark.slow
def test_the_pure_python_package_gives_the_same_records(tmp_path: Path) -> None:
    pure = tmp_path / "pure"
    shutil.copytree(
        Path(asyncfetch.__file__).parent,
        pure / "asyncfetch",
        ignore=shutil.ignore_patterns("*.so"),
    )
    env = {**os.environ, "PYTHONPATH": str(pure), "ASYNCFETCH_EXPECT_NATIVE": "0"}
    checks = ["tests/test_faults_matrix.py", "tests/test_record_path.py", "tests/test_native.py"]
    run = subprocess.run(
        [
            *(sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *checks),
            *(
                "--deselect",
                f"tests/test_native.py::{test_the_pure_python_package_gives_the_same_records.__name__}",
            ),
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert run.returncode == 0, run.stdout[-6000:] + run.stderr[-2000:]
