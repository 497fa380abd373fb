"""Lazy exports: a package names its public objects without importing the modules that define them,
so `import seglib` (and `python -m seglib --help`) stays free of TensorFlow until an object is used."""

from __future__ import annotations

import importlib
import sys


def lazy_exports(package: str, exports: dict[str, tuple[str, ...]]):
    """`__getattr__` and `__dir__` for `package`, whose `exports` maps a submodule (relative to the
    package, e.g. "data.io") to the public names it defines; a name is imported on first use."""
    module_of = {name: module for module, names in exports.items() for name in names}

    def __getattr__(name: str):
        if name not in module_of:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(f"{package}.{module_of[name]}"), name)
        setattr(sys.modules[package], name, value)  # later look-ups skip this function
        return value

    def __dir__() -> list[str]:
        return sorted(set(vars(sys.modules[package])) | set(module_of))

    return __getattr__, __dir__
