"""NiceGUI pages. Every module here that defines `register()` has its pages registered by
`register_pages()` (called once by the web server, and by the UI test main file)."""

from __future__ import annotations

import importlib
import pkgutil

__all__ = ["register_pages"]


def register_pages() -> None:
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        module = importlib.import_module(f"{__name__}.{info.name}")
        register = getattr(module, "register", None)
        if callable(register):
            register()
