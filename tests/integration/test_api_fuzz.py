"""Generated requests for every /api/v1 operation (schemathesis, from our OpenAPI document)
against a real server: whatever is sent, the answer is never a 5xx."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings

from app.redis_launcher import EmbeddedRedis
from app.rest import api_document
from tests.integration.conftest import make_settings
from tests.integration.test_rest_api import PAYROLL, ApiServer

pytestmark = pytest.mark.integration

schema = schemathesis.openapi.from_dict(api_document())


@pytest.fixture(scope="module")
def fuzz_server(private_redis: EmbeddedRedis, tmp_path_factory: pytest.TempPathFactory
                ) -> Iterator[tuple[ApiServer, str]]:
    home = tmp_path_factory.mktemp("fuzz")
    config = make_settings(f"sqlite+aiosqlite:///{home / 'trinity.db'}", home / "home")
    token = asyncio.run(_prepare(config, private_redis.url))
    with ApiServer(config, private_redis.url) as server:
        yield server, token


async def _prepare(config: Any, redis_url: str) -> str:
    from app.bootstrap import bootstrap, seed_demo_agents

    c = await bootstrap(config, redis_url)
    try:
        await seed_demo_agents(c.db)
        await c.identity.create_user("root", "a-long-password", roles=[("*", "admin")])
        await c.definitions.import_text(PAYROLL, publish=True)
        return str((await c.identity.create_token("root", "fuzz")).token)
    finally:
        await c.close()


@schema.parametrize()
@settings(max_examples=12, deadline=None, suppress_health_check=list(HealthCheck))
def test_no_generated_request_makes_the_server_fail(case: Any,
                                                    fuzz_server: tuple[ApiServer, str]) -> None:
    server, token = fuzz_server
    response = case.call(base_url=server.url, headers={"Authorization": f"Bearer {token}"},
                         timeout=30)
    said = f"{case.method} {case.formatted_path} → {response.status_code}: {response.text[:300]}"
    assert response.status_code < 500, said
    if response.status_code >= 400:
        assert set(response.json().get("error", {})) == {"code", "message", "details"}, said


def test_the_fuzzed_document_covers_every_operation() -> None:
    assert len(list(schema.get_all_operations())) >= 30
