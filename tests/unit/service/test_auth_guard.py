"""Auth cannot be turned off by accident, and runs before anything else looks at a request."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from structlog.testing import capture_logs

from service.auth import AuthConfigError, hash_token
from service.main import create_app
from service.settings import Settings
from tests.unit.service.fakes import SETTINGS, World, manifest, services_of

TOKEN = "pg_guard_secret"
ENTRY = {"name": "ci", "sha256": hash_token(TOKEN), "scopes": ["*"]}
BEARER = {"authorization": f"Bearer {TOKEN}"}


def tokens_on(**update: object) -> Settings:
    return SETTINGS.model_copy(
        update={"auth": "tokens", "auth_tokens": json.dumps([ENTRY])} | update
    )


@pytest.fixture
async def guarded(world: World) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(tokens_on(), services=services_of(world))
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://pg") as client,
    ):
        yield client


def test_auth_is_on_by_default() -> None:
    """With nothing said, the setting asks for tokens."""
    assert "tokens" == Settings().auth


def test_empty_tokens_file_refuses_to_start(tmp_path: Path) -> None:
    """A tokens file holding an empty list does not open the API: the app is not built."""
    path = tmp_path / "tokens.json"
    path.write_text("[]")
    settings = SETTINGS.model_copy(update={"auth": "tokens", "auth_tokens_file": str(path)})
    with pytest.raises(AuthConfigError, match="no bearer tokens or OIDC issuers are configured"):
        create_app(settings, services=services_of(World()))


def test_empty_inline_tokens_refuse_to_start() -> None:
    """PUSHGATE_AUTH_TOKENS='[]' does not open the API either."""
    with pytest.raises(AuthConfigError, match="PUSHGATE_AUTH=off"):
        create_app(tokens_on(auth_tokens="[]"), services=services_of(World()))


def test_unreadable_tokens_file_is_one_sentence(tmp_path: Path) -> None:
    """A missing tokens file is a configuration error naming it, not a traceback."""
    settings = tokens_on(auth_tokens=None, auth_tokens_file=str(tmp_path / "missing.json"))
    with pytest.raises(AuthConfigError, match="cannot read the tokens file"):
        create_app(settings, services=services_of(World()))


@pytest.fixture
def keep_logging(monkeypatch: pytest.MonkeyPatch) -> None:
    """create_app configures structlog; keep capture_logs() in place instead."""
    monkeypatch.setattr("service.main.configure_logging", lambda _settings: None)


@pytest.mark.usefixtures("keep_logging")
def test_auth_off_is_logged_at_start_up() -> None:
    """PUSHGATE_AUTH=off is said at start-up, as a warning."""
    with capture_logs() as logs:
        create_app(SETTINGS, services=services_of(World()))
    assert ["warning"] == [e["log_level"] for e in logs if e["event"] == "auth_disabled"]


@pytest.mark.usefixtures("keep_logging")
def test_auth_on_is_logged_with_token_names() -> None:
    """With tokens, start-up names the tokens (never their hashes) and the open paths."""
    with capture_logs() as logs:
        create_app(tokens_on(), services=services_of(World()))
    event = next(e for e in logs if e["event"] == "auth_enabled")
    assert (["ci"], ["/healthz", "/readyz"]) == (event["tokens"], event["open_paths"])


async def test_token_is_checked_before_the_body_is_parsed(guarded: httpx.AsyncClient) -> None:
    """No token and a body that is not JSON: 401, not 422."""
    answer = await guarded.post(
        "/v1/pushes", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert (401, "unauthorized") == (answer.status_code, answer.json()["error"])


async def test_token_is_checked_before_the_body_size(guarded: httpx.AsyncClient) -> None:
    """No token and a declared body over the cap: 401, the body is never looked at."""
    answer = await guarded.post(
        "/v1/pushes", content=b"{}", headers={"content-length": str(10**12)}
    )
    assert 401 == answer.status_code


async def test_trailing_slash_is_not_redirected(guarded: httpx.AsyncClient) -> None:
    """POST /v1/pushes/ is 404 not_found, with no Location built from the Host header."""
    answer = await guarded.post(
        "/v1/pushes/",
        json={"repository": "team/app", "tag": "v1", "manifest": manifest(1)},
        headers={**BEARER, "host": "evil.example"},
    )
    assert (404, "not_found", None) == (
        answer.status_code,
        answer.json()["error"],
        answer.headers.get("location"),
    )


@pytest.mark.parametrize("path", ["/openapi.json", "/metrics", "/nowhere"])
async def test_everything_but_the_probes_needs_a_token(
    guarded: httpx.AsyncClient, path: str
) -> None:
    """With auth on, the OpenAPI document, metrics and unknown paths answer 401 without one."""
    assert 401 == (await guarded.get(path)).status_code


@pytest.mark.parametrize("path", ["/healthz", "/readyz"])
async def test_probes_need_no_token(guarded: httpx.AsyncClient, path: str) -> None:
    """Load balancers reach /healthz and /readyz without a token."""
    assert 200 == (await guarded.get(path)).status_code


async def test_openapi_is_served_with_a_token(guarded: httpx.AsyncClient) -> None:
    """A token opens /openapi.json."""
    answer = await guarded.get("/openapi.json", headers=BEARER)
    assert (200, "pushgate") == (answer.status_code, answer.json()["info"]["title"])


@pytest.mark.parametrize("path", ["/docs", "/redoc"])
async def test_no_docs_page_loads_a_cdn(guarded: httpx.AsyncClient, path: str) -> None:
    """/docs and /redoc (pages whose scripts come from a public CDN) are not served."""
    assert 404 == (await guarded.get(path, headers=BEARER)).status_code


async def test_metrics_open_when_the_operator_says_so(world: World) -> None:
    """PUSHGATE_METRICS_OPEN=1 lets scrapers read /metrics without a token."""
    app = create_app(tokens_on(metrics_open=True), services=services_of(world))
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://pg") as client,
    ):
        assert (200, 401) == (
            (await client.get("/metrics")).status_code,
            (await client.get("/v1/tags/team/app/v1")).status_code,
        )


@pytest.mark.parametrize("name", ["", "x" * 65, "ci\x1b[31m", "[/bold]\n"])
def test_token_names_are_short_and_printable(name: str) -> None:
    """A token's name (the caller in history) is 1-64 printable characters."""
    entry = {**ENTRY, "name": name}
    with pytest.raises(AuthConfigError, match="name"):
        create_app(tokens_on(auth_tokens=json.dumps([entry])), services=services_of(World()))


async def test_forbidden_answer_is_bounded(guarded_team: httpx.AsyncClient) -> None:
    """A 60 KB repository name in the path is 422 (its bound), not a 403 echoing it."""
    answer = await guarded_team.get(f"/v1/tags/{'r' * 60_000}/v1", headers=BEARER)
    assert (422, "repository", True) == (
        answer.status_code,
        answer.json()["field"],
        len(answer.content) < 4096,
    )


@pytest.fixture
async def guarded_team(world: World) -> AsyncIterator[httpx.AsyncClient]:
    """Tokens on, the token scoped to team-a/* only."""
    entry = {**ENTRY, "scopes": ["team-a/*"]}
    app = create_app(tokens_on(auth_tokens=json.dumps([entry])), services=services_of(world))
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://pg") as client,
    ):
        yield client
