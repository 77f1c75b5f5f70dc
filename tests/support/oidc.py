"""A real OpenID provider for tests: oidc-provider-mock (Flask + authlib) served by werkzeug on
127.0.0.1 in a background thread of the test process.

By default clients must be registered (so a wrong client secret is refused); a nonce is
always required.
The provider's sign-in form asks only for `sub`; the other claims of a user (email, name,
groups) are stored beforehand with `set_user`.
"""

from __future__ import annotations

import threading
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import httpx

__all__ = ["MockProvider", "RegisteredClient", "running_provider"]


@dataclass(frozen=True)
class RegisteredClient:
    client_id: str
    client_secret: str


class MockProvider:
    def __init__(self, server: Any) -> None:
        self._server = server
        # The provider names itself after the host it is called on; one spelling everywhere.
        self.issuer = f"http://127.0.0.1:{server.server_port}"

    def register_client(self, redirect_uri: str) -> RegisteredClient:
        """A confidential client (client_secret_basic) allowed to return to `redirect_uri`."""
        answer = httpx.post(f"{self.issuer}/oauth2/clients",
                            json={"redirect_uris": [redirect_uri]}, timeout=10)
        answer.raise_for_status()
        body = answer.json()
        return RegisteredClient(body["client_id"], body["client_secret"])

    def set_user(self, sub: str, **claims: Any) -> None:
        """Claims the provider puts in the ID token of `sub` (`groups` among them)."""
        httpx.put(f"{self.issuer}/users/{sub}", json=claims, timeout=10).raise_for_status()

    def env(self, client: RegisteredClient, role_map: str = "",
            groups_claim: str = "groups") -> dict[str, str]:
        """TRINITY_OIDC_* variables for a server that signs in through this provider."""
        return {"TRINITY_OIDC_ISSUER": self.issuer,
                "TRINITY_OIDC_CLIENT_ID": client.client_id,
                "TRINITY_OIDC_CLIENT_SECRET": client.client_secret,
                "TRINITY_OIDC_ROLE_MAP": role_map,
                "TRINITY_OIDC_GROUPS_CLAIM": groups_claim}


@contextmanager
def running_provider(require_client_registration: bool = True) -> Iterator[MockProvider]:
    """The provider on a free port. Without `require_client_registration` any client id,
    secret and redirect address is accepted (for a server whose port is not known yet)."""
    import authlib.deprecate  # noqa: F401  (its import sets "always" for its own warnings)
    import werkzeug.serving

    with warnings.catch_warnings():  # 0.3.4 imports the deprecated authlib.jose
        warnings.simplefilter("ignore", DeprecationWarning)
        from oidc_provider_mock import app

        flask_app = app(require_client_registration=require_client_registration,
                        require_nonce=True)
    server = werkzeug.serving.make_server("127.0.0.1", 0, flask_app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1},
                              name="oidc-provider-mock", daemon=True)
    thread.start()
    try:
        yield MockProvider(server)
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
