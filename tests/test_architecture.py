"""The import rules of docs/architecture.md, kept by reading every module's imports.

The layers, lowest first, are listed once in ``LAYERS``; a module may import its own
layer and the ones below it. A rule broken on purpose is listed in ``KNOWN_EXCEPTIONS``
with its reason, and the test fails when a listed exception no longer happens, so the
list can only shrink.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parent.parent / "src"
PACKAGE = SRC / "asyncfetch"

# (layer name, modules in it); lowest first.
LAYERS: list[tuple[str, str]] = [
    ("foundation", r"_errors|_models|_options|_settings|_hashing|_optional_c|_lazy"),
    ("policy", r"policy(\..+)?"),
    ("stages", r"(transport|sources|sinks|queues|resume)(\..+)?"),
    ("pipeline", r"pipeline(\..+)?"),
    ("api", r"_api|concurrency|report(\..+)?|runtime(\..+)?"),
    ("commands", r"cli(\..+)?|demo(\..+)?|__main__"),
]
ROOT_PACKAGE_LAYER = "commands"  # asyncfetch/__init__.py re-exports from every layer

# (importer, imported) pairs that break a rule today, and why.
KNOWN_EXCEPTIONS: dict[tuple[str, str], str] = {}


@dataclass(frozen=True)
class Import:
    importer: str  # module name without the leading "asyncfetch."
    imported: str  # module (or package) name, likewise; "" for the root package
    external: str  # top-level name of a third-party/stdlib import, else ""


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULES = {_module_name(p): p for p in PACKAGE.rglob("*.py")}


def _resolve(importer: str, path: Path, node: ast.ImportFrom) -> list[str]:
    """Our modules named by a ``from`` import, relative or absolute."""
    package = importer.split(".") if path.name == "__init__.py" else importer.split(".")[:-1]
    package = [p for p in package if p]
    if node.level:
        base = package[: len(package) - (node.level - 1)]
        module = ".".join([*base, *([node.module] if node.module else [])])
    elif node.module and (node.module + ".").startswith("asyncfetch."):
        module = node.module.removeprefix("asyncfetch").lstrip(".")
    else:
        return []
    names = [f"{module}.{a.name}".lstrip(".") for a in node.names]
    return [n if n in MODULES else module for n in names]


def imports() -> list[Import]:
    found: list[Import] = []
    for importer, path in sorted(MODULES.items()):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.name == "asyncfetch" or alias.name.startswith("asyncfetch."):
                        found.append(Import(importer, alias.name[len("asyncfetch.") :], ""))
                    else:
                        found.append(Import(importer, "", alias.name.split(".")[0]))
            elif isinstance(node, ast.ImportFrom):
                ours = _resolve(importer, path, node)
                if ours:
                    found.extend(Import(importer, m, "") for m in ours)
                elif node.module and not node.level:
                    found.append(Import(importer, "", node.module.split(".")[0]))
    return found


def layer_of(module: str) -> int:
    if module == "":
        return [name for name, _ in LAYERS].index(ROOT_PACKAGE_LAYER)
    for index, (_, pattern) in enumerate(LAYERS):
        if re.fullmatch(pattern, module):
            return index
    raise AssertionError(f"module asyncfetch.{module} is in no layer: add it to LAYERS")


ALL_IMPORTS = imports()
OURS = [i for i in ALL_IMPORTS if not i.external]


def test_every_module_is_in_a_layer() -> None:
    for module in MODULES:
        layer_of(module)


def test_no_module_imports_a_higher_layer() -> None:
    upward = {
        (i.importer, i.imported)
        for i in OURS
        if layer_of(i.imported) > layer_of(i.importer)
        and (i.importer, i.imported) not in KNOWN_EXCEPTIONS
    }
    assert upward == set()


def test_the_foundation_imports_only_the_foundation() -> None:
    foundation = [i for i in OURS if layer_of(i.importer) == 0]
    assert {i.imported for i in foundation if layer_of(i.imported) != 0} == set()


def test_the_run_loop_imports_no_transport_or_queue_implementation() -> None:
    protocols = {"transport.base", "transport.redirects", "queues.base"}
    implementations = {
        (i.importer, i.imported)
        for i in OURS
        if i.importer.startswith("pipeline")
        and re.match(r"(transport|queues)\.", i.imported)
        and i.imported not in protocols
    }
    assert implementations == {k for k in KNOWN_EXCEPTIONS if k[0].startswith("pipeline")}


@pytest.mark.parametrize(
    ("library", "allowed"),
    [
        ("aiohttp", r"transport\.aiohttp.*|demo\.server"),
        ("redis", r"queues\.redis\..+"),
    ],
)
def test_only_its_own_modules_import_a_heavy_library(library: str, allowed: str) -> None:
    importers = {i.importer for i in ALL_IMPORTS if i.external == library}
    assert importers, f"nothing imports {library}: the rule tests nothing"
    assert {m for m in importers if not re.fullmatch(allowed, m)} == set()


# Printing to the terminal or ending the process belongs to cli/ (and the demo's
# walkthrough, which is the demo command's output). Anything else reports through return
# values, exceptions, logging or an injected console.
_TERMINAL_CALLS = {"print", "exit", "quit", "sys.exit", "os._exit", "click.echo", "click.secho"}
_MAY_PRINT = r"cli(\..+)?|demo\.walkthrough|__main__"


def _call_name(node: ast.Call) -> str:
    func = node.func
    if isinstance(func, ast.Name):
        return func.id
    if isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name):
        return f"{func.value.id}.{func.attr}"
    return ""


def test_only_commands_print_or_exit() -> None:
    offenders = [
        f"{module}:{node.lineno}: {_call_name(node)}()"
        for module, path in MODULES.items()
        if not re.fullmatch(_MAY_PRINT, module)
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.Call) and _call_name(node) in _TERMINAL_CALLS
    ]
    assert offenders == []


def test_the_known_exceptions_still_happen() -> None:
    happening = {(i.importer, i.imported) for i in OURS}
    assert set(KNOWN_EXCEPTIONS) <= happening, "an exception was fixed: remove it from the list"


def test_the_map_names_every_module() -> None:
    architecture = (SRC.parent / "docs" / "architecture.md").read_text()
    missing = [
        m
        for m, path in MODULES.items()
        if m and path.name != "__init__.py" and f"{path.relative_to(PACKAGE)}" not in architecture
    ]
    assert missing == []
