"""Lazy package faces (PEP 562): a public name imports the module that defines it on first use,
so a face costs nothing to import; the declarations (`train.config`) load without torch and
`hw0 --help` stays fast."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Mapping
from typing import Any


def face(package: str, exports: Mapping[str, str]) -> Callable[[str], Any]:
    """The module `__getattr__` of `package`, whose `exports` map each public name to the
    submodule that defines it. A name loaded once is kept in the package's namespace, so the
    next use is a plain attribute lookup."""

    def __getattr__(name: str) -> Any:
        if name not in exports:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(f"{package}.{exports[name]}"), name)
        setattr(sys.modules[package], name, value)
        return value

    return __getattr__
