"""The web process: NiceGUI pages plus the HTTP endpoints, with services bootstrapped on
start-up (nothing is connected at import)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from app.settings import Settings

STATIC = Path(__file__).resolve().parent.parent / "static"

__all__ = ["serve"]


class _Late:
    """Stands in for the container until start-up has built it."""

    def __init__(self) -> None:
        self.target: Any = None

    def __getattr__(self, name: str) -> Any:
        if self.target is None:
            raise RuntimeError("the server is still starting")
        return getattr(self.target, name)


def serve(settings: Settings, redis_url: str, host: str, port: int,
          on_stop: Any = None) -> None:
    """Serve pages and API until Ctrl-C; `on_stop` runs when the server shuts down."""
    from nicegui import app

    from app.api import build_router
    from app.bootstrap import bootstrap
    from app.oidc import build_oidc_router
    from app.web_auth import build_auth_router
    from pages import register_pages
    from pages.shell import set_container

    secret = settings.resolved_secret()  # refuses a weak secret in production, early
    container = _Late()
    app.include_router(build_router(container))
    app.include_router(build_auth_router(container))
    app.include_router(build_oidc_router(container, settings))
    app.add_static_files("/static", str(STATIC))

    async def startup() -> None:
        container.target = await bootstrap(settings, redis_url, run_migrations=False)
        set_container(container.target)
        first = await container.target.identity.ensure_first_admin()
        if first is not None:
            print(f"\n  First start: sign in at {settings.base_url}/login as '{first[0]}' "
                  f"with the password {first[1]}\n  (shown once; change it under Account)\n",
                  flush=True)

    async def shutdown() -> None:
        if container.target is not None:
            await container.target.close()
        if on_stop is not None:
            on_stop()

    app.on_startup(startup)
    app.on_shutdown(shutdown)
    register_pages()
    from nicegui import ui

    ui.run(host=host, port=port, reload=False, show=False, title="Trinity Processes",
           storage_secret=secret, favicon=str(STATIC / "favicon.svg"))
