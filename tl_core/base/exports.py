"""Public names of a subpackage, imported from their module on first use (PEP 562).

A subpackage's `__init__` names its API in one table, yet `import tl_core.data.decode` still does
not load torch through a sibling module: ui/ imports torch-free parts of subpackages whose other
modules need torch.
"""
from __future__ import annotations

import importlib


def lazy_exports(package: str, table: dict[str, str]):
    """A module-level `__getattr__` for `package` that serves each name from `table[name]`'s module."""

    def __getattr__(name: str):
        if name not in table:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        return getattr(importlib.import_module(f"{package}.{table[name]}"), name)

    return __getattr__
