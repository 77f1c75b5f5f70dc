"""The NiceGUI main file of the UI tests (`User` fixture): every page module and the
sign-in endpoints, with the container the test bootstrapped (`pages.shell.set_container`)."""

from __future__ import annotations

from typing import Any

from nicegui import app, ui

from app.web_auth import build_auth_router
from pages import register_pages
from pages.shell import container


class _Current:
    """The auth router asks for the container per request; tests set it before opening."""

    def __getattr__(self, name: str) -> Any:
        return getattr(container(), name)


app.include_router(build_auth_router(_Current()))
register_pages()
ui.run(storage_secret="ui tests only, not a real secret")
