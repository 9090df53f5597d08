"""The optional C modules (``c_modules`` in pyproject.toml, built by tools/native.py).

Each speeds up one step that the code calling it can also do without: a pure-Python
install (or a platform without a C compiler) runs the same code with None here.
"""

from __future__ import annotations

import importlib
from typing import Any


def optional_c_function(module: str, name: str) -> Any | None:
    """``module.name`` where the C module was built and offers it here, else None."""
    try:
        return getattr(importlib.import_module(module), name, None)
    except ImportError:
        return None
