from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from service.main import create_app
from tests.unit.service.fakes import SETTINGS, World, services_of


@pytest.fixture
def world() -> World:
    return World()


@pytest.fixture
async def api(world: World) -> AsyncIterator[httpx.AsyncClient]:
    """An httpx client on the app wired to the fakes (lifespan run by hand)."""
    app = create_app(SETTINGS, services=services_of(world))
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://pushgate") as c,
    ):
        yield c
