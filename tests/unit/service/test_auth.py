"""Bearer tokens with repository scopes: the authenticator, and the API wired with it."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import httpx
import pytest
import structlog
from structlog.testing import LogCapture

from service.auth import ANONYMOUS, Authenticator, AuthError, TokenEntry, hash_token, parse_entries
from service.main import create_app
from tests.unit.service.fakes import SETTINGS, World, manifest, services_of

TEAM_A = "pg_team_a_secret"
ADMIN = "pg_admin_secret"
ENTRIES = [
    {"name": "team-a-ci", "sha256": hash_token(TEAM_A), "scopes": ["team-a/*"]},
    {"name": "admin", "sha256": hash_token(ADMIN), "scopes": ["*"]},
]


def body(repository: str = "team-a/app") -> dict[str, object]:
    return {"repository": repository, "tag": "v1", "manifest": manifest(1)}


@pytest.fixture
async def secured(world: World) -> AsyncIterator[httpx.AsyncClient]:
    """The API over fakes with two tokens configured inline."""
    settings = SETTINGS.model_copy(update={"auth": "tokens", "auth_tokens": json.dumps(ENTRIES)})
    app = create_app(settings, services=services_of(world))
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://pg") as client,
    ):
        yield client


def test_auth_off_means_anonymous() -> None:
    """With auth off every request is the anonymous caller."""
    assert ANONYMOUS == Authenticator([], enabled=False).identify(None)


def test_token_is_matched_by_its_hash() -> None:
    """A presented token is identified by the sha256 stored for it."""
    auth = Authenticator(parse_entries(ENTRIES, source="test"))
    assert "team-a-ci" == auth.identify(f"Bearer {TEAM_A}").name


@pytest.mark.parametrize("header", [None, "", "Bearer ", "Basic abc", "Bearer wrong"])
def test_missing_or_bad_token_is_401(header: str | None) -> None:
    """No bearer token, another scheme or an unknown token: 401 unauthorized."""
    auth = Authenticator(parse_entries(ENTRIES, source="test"))
    with pytest.raises(AuthError) as caught:
        auth.identify(header)
    assert (401, "unauthorized") == (caught.value.status, caught.value.code)


def test_scope_glob_covers_nested_repositories() -> None:
    """'team-a/*' covers team-a/app and team-a/x/y, not team-b/app."""
    entry = TokenEntry("t", "0" * 64, ("team-a/*",))
    assert (True, True, False) == (
        entry.allows("team-a/app"),
        entry.allows("team-a/x/y"),
        entry.allows("team-b/app"),
    )


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({}, "list"),
        ([{"name": "", "sha256": "0" * 64, "scopes": []}], "name"),
        ([{"name": "x", "sha256": "short", "scopes": []}], "sha256"),
        ([{"name": "x", "sha256": "0" * 64, "scopes": "team-a/*"}], "scopes"),
    ],
)
def test_bad_token_file_is_a_clear_error(data: object, message: str) -> None:
    """A malformed tokens file names what is wrong."""
    with pytest.raises(ValueError, match=message):
        parse_entries(data, source="tokens.json")


def test_tokens_file_is_read(tmp_path) -> None:
    """PUSHGATE_AUTH_TOKENS_FILE is a JSON list of entries."""
    path = tmp_path / "tokens.json"
    path.write_text(json.dumps(ENTRIES))
    settings = SETTINGS.model_copy(update={"auth": "tokens", "auth_tokens_file": str(path)})
    assert ["team-a-ci", "admin"] == Authenticator.from_settings(settings).token_names


async def test_push_without_token_is_401_and_takes_no_lease(
    secured: httpx.AsyncClient, world: World
) -> None:
    """With auth on, a push without a token is 401 with WWW-Authenticate; nothing is locked."""
    answer = await secured.post("/v1/pushes", json=body())
    assert (401, "unauthorized", "Bearer") == (
        answer.status_code,
        answer.json()["error"],
        answer.headers["www-authenticate"],
    )
    assert [] == world.leases.granted


async def test_push_outside_scope_is_403(secured: httpx.AsyncClient, world: World) -> None:
    """A valid token pushing to a repository outside its scopes gets 403 forbidden."""
    answer = await secured.post(
        "/v1/pushes", json=body("team-b/app"), headers={"authorization": f"Bearer {TEAM_A}"}
    )
    assert (403, "forbidden") == (answer.status_code, answer.json()["error"])
    assert [] == world.leases.granted


async def test_push_in_scope_records_the_token_name_as_caller(
    secured: httpx.AsyncClient, world: World
) -> None:
    """The token's name is the caller written to history."""
    answer = await secured.post(
        "/v1/pushes", json=body(), headers={"authorization": f"Bearer {TEAM_A}"}
    )
    assert 200 == answer.status_code
    assert "team-a-ci" == world.history.entries[-1].caller


async def test_reading_a_tag_needs_scope_too(secured: httpx.AsyncClient) -> None:
    """GET of a tag outside the token's scopes is 403."""
    answer = await secured.get(
        "/v1/tags/team-b/app/v1", headers={"authorization": f"Bearer {TEAM_A}"}
    )
    assert 403 == answer.status_code


async def test_health_stays_open(secured: httpx.AsyncClient) -> None:
    """Probes need no token."""
    assert 200 == (await secured.get("/healthz")).status_code


async def test_token_is_never_logged(secured: httpx.AsyncClient) -> None:
    """Neither the token nor its hash appears in any log event."""
    capture = LogCapture()
    old = structlog.get_config()
    structlog.configure(processors=[structlog.contextvars.merge_contextvars, capture])
    try:
        await secured.post("/v1/pushes", json=body(), headers={"authorization": f"Bearer {TEAM_A}"})
        await secured.post("/v1/pushes", json=body(), headers={"authorization": "Bearer nope"})
    finally:
        structlog.configure(**old)
    text = repr(capture.entries)
    assert (False, False) == (TEAM_A in text, hash_token(TEAM_A) in text)
