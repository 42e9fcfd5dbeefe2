"""OIDC ID tokens as credentials, through the service on moto, with a local issuer serving
its discovery document and JWKS over HTTP on 127.0.0.1."""

from __future__ import annotations

import functools
import json
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import aioboto3
import httpx
import pytest
from joserfc.jwk import ECKey, RSAKey

from service.auth import hash_token
from service.main import create_app
from service.oidc import OidcVerifier
from service.settings import Settings
from tests.oidc_issuer import AUDIENCE, Issuer, running_issuer

pytestmark = pytest.mark.integration

STATIC = "pg_static_secret"


def manifest(n: int) -> str:
    return json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {
                "mediaType": "application/vnd.oci.image.config.v1+json",
                "digest": "sha256:" + f"{n:064x}",
                "size": 2,
            },
            "layers": [],
        }
    )


@pytest.fixture
def issuer() -> Iterator[Issuer]:
    with running_issuer() as running:
        yield running


@pytest.fixture
def refresh_seconds() -> float:
    return 60.0


class Monotonic:
    """The verifier's monotonic clock, moved by the test instead of by waiting, so a slow
    machine cannot make the refresh interval pass between two requests."""

    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def monotonic(monkeypatch: pytest.MonkeyPatch) -> Monotonic:
    clock = Monotonic()
    monkeypatch.setattr(
        "service.main.OidcVerifier", functools.partial(OidcVerifier, monotonic=clock)
    )
    return clock


@pytest.fixture
async def api(
    settings: Settings,
    aws_session: aioboto3.Session,
    issuer: Issuer,
    repo: str,
    refresh_seconds: float,
    monotonic: Monotonic,
) -> AsyncIterator[httpx.AsyncClient]:
    """The service on moto, trusting the local issuer for `repo` from org/app's main branch,
    beside one static token; the JWKS is fetched at most once per `refresh_seconds`."""
    config = {
        "issuers": [
            {
                "issuer": issuer.url,
                "audience": AUDIENCE,
                "rules": [
                    {
                        "claims": {"repository": "org/app", "ref": "refs/heads/main"},
                        "scopes": [repo],
                    }
                ],
            }
        ]
    }
    static = [{"name": "static-ci", "sha256": hash_token(STATIC), "scopes": ["*"]}]
    app = create_app(
        settings.model_copy(
            update={
                "auth": "tokens",
                "oidc_config": json.dumps(config),
                "auth_tokens": json.dumps(static),
                "oidc_refresh_seconds": refresh_seconds,
            }
        ),
        session=aws_session,
    )
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://pg") as client,
    ):
        yield client


async def push(api: httpx.AsyncClient, repo: str, token: str, n: int = 1) -> httpx.Response:
    return await api.post(
        "/v1/pushes",
        json={"repository": repo, "tag": "v1", "manifest": manifest(n), "sequence": n},
        headers={"authorization": f"Bearer {token}"},
    )


async def test_valid_token_pushes_and_its_subject_is_the_caller(
    api: httpx.AsyncClient, issuer: Issuer, repo: str
) -> None:
    """A token from the trusted issuer whose claims match a rule pushes; history names
    the token's subject."""
    answer = await push(api, repo, issuer.token())
    assert (200, "pushed") == (answer.status_code, answer.json()["outcome"])
    history = (await api.get(f"/v1/tags/{repo}/v1/history", headers=_auth(issuer))).json()
    assert "repo:org/app:ref:refs/heads/main" == history["items"][0]["caller"]


def _auth(issuer: Issuer) -> dict[str, str]:
    return {"authorization": f"Bearer {issuer.token()}"}


@pytest.mark.parametrize(
    "claims",
    [
        {"aud": "someone-else"},
        {"aud": None},
        {"exp": 1_000_000_000},
        {"nbf": 4_000_000_000},
        {"sub": None},
        {"sub": "evil\x1b[31m"},
    ],
    ids=["wrong-aud", "no-aud", "expired", "not-yet-valid", "no-sub", "control-chars-in-sub"],
)
async def test_invalid_claims_are_401(
    api: httpx.AsyncClient, issuer: Issuer, repo: str, claims: dict[str, Any]
) -> None:
    """A signed token with a wrong audience, past expiry, future nbf or a bad subject: 401."""
    answer = await push(api, repo, issuer.token(**claims))
    assert (401, "unauthorized") == (answer.status_code, answer.json()["error"])


@pytest.mark.parametrize(
    "claims", [{"ref": "refs/heads/feature"}, {"repository": "org/other"}, {"ref": None}]
)
async def test_claims_outside_every_rule_are_403(
    api: httpx.AsyncClient, issuer: Issuer, repo: str, claims: dict[str, Any]
) -> None:
    """A valid token whose claims match no rule authenticates but may push nowhere: 403."""
    answer = await push(api, repo, issuer.token(**claims))
    assert (403, "forbidden") == (answer.status_code, answer.json()["error"])


async def test_token_of_an_unknown_issuer_is_401(api: httpx.AsyncClient, repo: str) -> None:
    """An issuer that is not configured is not trusted, whatever its keys."""
    with running_issuer() as stranger:
        answer = await push(api, repo, stranger.token())
        assert [] == stranger.requests
    assert (401, "unauthorized") == (answer.status_code, answer.json()["error"])


async def test_token_claiming_a_trusted_issuer_but_signed_elsewhere_is_401(
    api: httpx.AsyncClient, issuer: Issuer, repo: str
) -> None:
    """A key the issuer never published (same kid) does not verify."""
    forged = RSAKey.generate_key(2048, parameters={"kid": issuer.key.kid or "k1"})
    answer = await push(api, repo, issuer.token(forged))
    assert (401, "unauthorized") == (answer.status_code, answer.json()["error"])


async def test_alg_none_is_401(api: httpx.AsyncClient, issuer: Issuer, repo: str) -> None:
    """An unsigned token (``alg: none``) is refused."""
    answer = await push(api, repo, issuer.unsigned_token())
    assert (401, "unauthorized") == (answer.status_code, answer.json()["error"])


async def test_hs256_signed_with_the_public_key_is_401(
    api: httpx.AsyncClient, issuer: Issuer, repo: str
) -> None:
    """The key-confusion forgery (HMAC keyed with the published RSA key) is refused."""
    answer = await push(api, repo, issuer.hmac_with_public_key())
    assert (401, "unauthorized") == (answer.status_code, answer.json()["error"])


async def test_rotated_key_is_served_after_one_retry_after(
    api: httpx.AsyncClient, issuer: Issuer, repo: str, monotonic: Monotonic
) -> None:
    """A token signed with a key the issuer rotated to just after pushgate fetched its JWKS
    is told to retry (503 with Retry-After within the refresh interval, 60 s here); the
    retry fetches the new JWKS and pushes."""
    assert 200 == (await push(api, repo, issuer.token(), 1)).status_code
    issuer.keys = [ECKey.generate_key("P-256", parameters={"kid": "k2"})]
    token = issuer.token(alg="ES256")
    monotonic.now += 10
    first = await push(api, repo, token, 2)
    assert 503 == first.status_code
    retry_after = float(first.headers["retry-after"])
    assert 50 <= retry_after <= 60
    monotonic.now += retry_after - 1
    assert 503 == (await push(api, repo, token, 2)).status_code
    monotonic.now += 1
    answer = await push(api, repo, token, 2)
    assert (200, "pushed") == (answer.status_code, answer.json()["outcome"])
    assert 2 == issuer.requests.count("/jwks")


async def test_made_up_kids_cost_the_issuer_no_fetch_within_the_interval(
    api: httpx.AsyncClient, issuer: Issuer, repo: str
) -> None:
    """Tokens naming made-up kids are not verified and fetch nothing more from the issuer
    within the refresh interval (60 s here), so they cannot make pushgate hammer it."""
    assert 200 == (await push(api, repo, issuer.token(), 1)).status_code
    answers = []
    for _ in range(20):
        stranger = RSAKey.generate_key(2048, parameters={"kid": uuid.uuid4().hex})
        answers.append((await push(api, repo, issuer.token(stranger), 2)).status_code)
    assert [503] * 20 == answers
    assert 1 == issuer.requests.count("/jwks")


async def test_issuer_unreachable_without_cached_keys_is_503(
    api: httpx.AsyncClient, issuer: Issuer, repo: str
) -> None:
    """With the issuer down and no keys cached, the answer is a retryable 503, not a 401
    that would make the CI job give up on a valid token."""
    issuer.down = True
    answer = await push(api, repo, issuer.token())
    assert 503 == answer.status_code
    assert "retry-after" in answer.headers


async def test_cached_keys_survive_an_issuer_outage(
    api: httpx.AsyncClient, issuer: Issuer, repo: str
) -> None:
    """Keys fetched before the issuer went down keep verifying its tokens."""
    assert 200 == (await push(api, repo, issuer.token(), 1)).status_code
    issuer.down = True
    answer = await push(api, repo, issuer.token(), 2)
    assert (200, "pushed") == (answer.status_code, answer.json()["outcome"])


async def test_static_tokens_keep_working(api: httpx.AsyncClient, repo: str) -> None:
    """A static bearer token is accepted beside OIDC tokens."""
    answer = await push(api, repo, STATIC)
    assert (200, "pushed") == (answer.status_code, answer.json()["outcome"])


async def test_garbage_jwt_shaped_token_is_401(api: httpx.AsyncClient, repo: str) -> None:
    """Three base64url parts that are no JWT: 401, not a 500."""
    answer = await push(api, repo, "aaaa.bbbb.cccc")
    assert (401, "unauthorized") == (answer.status_code, answer.json()["error"])
