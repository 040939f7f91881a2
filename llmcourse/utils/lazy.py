"""Lazy package attributes (PEP 562): import a name's module the first time someone asks for it.

``llmcourse.utils``, ``llmcourse.models`` and ``llmcourse.serve`` use it so that the light parts
(paths, counting, the CLI's options) import without torch, FastAPI or the models, while
``from llmcourse.models import DecoderLM`` still works as usual.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable
from typing import Any


def lazy_exports(
    package: str, homes: dict[str, str]
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """``(__getattr__, __dir__)`` for ``package``'s ``__init__``: ``homes`` maps each exported
    name to the module that defines it, a submodule name (``"decoder"``) or a full module path
    (``"llmcourse.nn.kv_cache"``). A name is imported once, then kept in the package."""

    def __getattr__(name: str) -> Any:
        home = homes.get(name)
        if home is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        module = importlib.import_module(home if "." in home else f"{package}.{home}")
        value = getattr(module, name)
        setattr(sys.modules[package], name, value)  # later look-ups skip __getattr__
        return value

    def __dir__() -> list[str]:
        return sorted({*vars(sys.modules[package]), *homes})

    return __getattr__, __dir__
