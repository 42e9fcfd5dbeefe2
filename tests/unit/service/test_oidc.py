"""The OIDC verifier without a network: configuration, claim rules and the key cache."""

from __future__ import annotations

import json
from typing import Any

import pytest
from joserfc.jwk import RSAKey

from service.auth import Authenticator, AuthError
from service.oidc import (
    ClaimRule,
    OidcRejected,
    OidcUnavailable,
    OidcVerifier,
    looks_like_jwt,
    parse_config,
)
from tests.oidc_issuer import AUDIENCE, Issuer

ISSUER = "https://issuer.example"


def config(**issuer: Any) -> dict[str, Any]:
    entry = {
        "issuer": ISSUER,
        "audience": AUDIENCE,
        "rules": [{"claims": {"repository": "org/*"}, "scopes": ["team/*"]}],
    }
    entry.update(issuer)
    return {"issuers": [entry]}


class Keys:
    """An in-memory issuer: answers discovery and JWKS fetches, counting them."""

    def __init__(self) -> None:
        self.issuer = Issuer(ISSUER)
        self.fetched: list[str] = []
        self.now = 0.0

    async def fetch(self, url: str) -> Any:
        self.fetched.append(url)
        if url.endswith("openid-configuration"):
            return {"jwks_uri": f"{ISSUER}/jwks"}
        return self.issuer.jwks()

    def verifier(self, **options: Any) -> OidcVerifier:
        return OidcVerifier(
            parse_config(config(), source="test"),
            fetch=self.fetch,
            monotonic=lambda: self.now,
            **options,
        )


@pytest.mark.parametrize(
    ("token", "expected"),
    [("a.b.c", True), ("a.b.", True), ("pg_abc", False), ("a.b", False), ("a.b.c d", False)],
)
def test_jwt_shape(token: str, expected: bool) -> None:
    """Three base64url parts look like a JWT; a static token never does."""
    assert expected == looks_like_jwt(token)


def test_oversized_token_is_not_taken_for_a_jwt() -> None:
    """A token over 8 KiB is not parsed as a JWT at all."""
    assert not looks_like_jwt("a" * 9000 + ".b.c")


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"issuer": "http://issuer.example"}, "https"),
        ({"audience": ""}, "audience"),
        ({"rules": []}, "rules"),
        ({"rules": [{"claims": {}, "scopes": ["x"]}]}, "claims"),
        ({"rules": [{"claims": {"a": 1}, "scopes": ["x"]}]}, "strings"),
        ({"rules": [{"claims": {"a": "b"}, "scopes": []}]}, "scopes"),
        ({"jwks_uri": "ftp://x"}, "jwks_uri"),
    ],
)
def test_bad_configuration_names_what_is_wrong(change: dict[str, Any], message: str) -> None:
    """Each malformed entry is refused at start-up with a sentence naming the field."""
    with pytest.raises(ValueError, match=message):
        parse_config(config(**change), source="test")


def test_loopback_issuer_may_be_plain_http() -> None:
    """http is allowed on loopback only (local issuers, tests)."""
    issuers = parse_config(config(issuer="http://127.0.0.1:9999"), source="test")
    assert "http://127.0.0.1:9999" == issuers[0].issuer


def test_every_claim_of_a_rule_must_match() -> None:
    """A rule grants its scopes only when all its claims match (globs, string claims)."""
    rule = ClaimRule({"repository": "org/*", "ref": "refs/heads/main"}, ("x",))
    assert rule.matches({"repository": "org/app", "ref": "refs/heads/main"})
    assert not rule.matches({"repository": "org/app", "ref": "refs/heads/dev"})
    assert not rule.matches({"repository": "org/app"})
    assert not rule.matches({"repository": ["org/app"], "ref": "refs/heads/main"})


async def test_valid_token_grants_the_rule_scopes() -> None:
    """A valid token's subject and the scopes of matching rules make its grant."""
    keys = Keys()
    grant = await keys.verifier().verify(keys.issuer.token(repository="org/app"))
    assert ("repo:org/app:ref:refs/heads/main", ("team/*",)) == (grant.subject, grant.scopes)
    assert grant.allows("team/app")
    assert not grant.allows("other/app")


async def test_keys_are_fetched_once_and_cached() -> None:
    """Discovery and JWKS are fetched for the first token and reused after."""
    keys = Keys()
    verifier = keys.verifier()
    for _ in range(3):
        await verifier.verify(keys.issuer.token())
    assert [f"{ISSUER}/.well-known/openid-configuration", f"{ISSUER}/jwks"] == keys.fetched


async def test_unknown_kid_after_the_interval_refetches_then_is_401() -> None:
    """Once the refresh interval has passed, an unknown kid refetches the JWKS once; still
    unknown, the token is rejected."""
    keys = Keys()
    verifier = keys.verifier(refresh_interval=30.0)
    await verifier.verify(keys.issuer.token())
    keys.now = 31.0
    stranger = RSAKey.generate_key(2048, parameters={"kid": "nobody"})
    with pytest.raises(OidcRejected):
        await verifier.verify(keys.issuer.token(stranger))
    assert 4 == len(keys.fetched)


async def test_unknown_kid_within_the_interval_is_told_when_to_retry() -> None:
    """Within the refresh interval an unknown kid is answered retry-after the interval's
    rest, with no fetch."""
    keys = Keys()
    verifier = keys.verifier(refresh_interval=30.0)
    await verifier.verify(keys.issuer.token())
    keys.now = 10.0
    stranger = RSAKey.generate_key(2048, parameters={"kid": "nobody"})
    with pytest.raises(OidcUnavailable) as caught:
        await verifier.verify(keys.issuer.token(stranger))
    assert (20.0, 2) == (caught.value.retry_after, len(keys.fetched))


async def test_stale_keys_are_refetched() -> None:
    """Keys older than max_age are fetched again before use."""
    keys = Keys()
    verifier = keys.verifier(max_age=100.0)
    await verifier.verify(keys.issuer.token())
    keys.now = 101.0
    await verifier.verify(keys.issuer.token())
    assert 4 == len(keys.fetched)


async def test_jwks_without_signing_keys_leaves_the_issuer_unavailable() -> None:
    """A JWKS holding only encryption keys gives nothing to verify with: 503, not 401."""
    keys = Keys()

    async def fetch(url: str) -> Any:
        if url.endswith("openid-configuration"):
            return {"jwks_uri": f"{ISSUER}/jwks"}
        return {"keys": [{**keys.issuer.key.as_dict(private=False), "use": "enc"}]}

    verifier = OidcVerifier(parse_config(config(), source="test"), fetch=fetch)
    with pytest.raises(OidcUnavailable):
        await verifier.verify(keys.issuer.token())


async def test_authenticator_maps_rejection_to_401() -> None:
    """service.auth answers an invalid OIDC token 401 unauthorized."""
    keys = Keys()
    auth = Authenticator([], oidc=keys.verifier())
    with pytest.raises(AuthError) as caught:
        await auth.authenticate(f"Bearer {keys.issuer.token(aud='other')}")
    assert (401, "unauthorized") == (caught.value.status, caught.value.code)


async def test_authenticator_names_the_subject() -> None:
    """The identity of an OIDC token is its subject."""
    keys = Keys()
    identity = await Authenticator([], oidc=keys.verifier()).authenticate(
        f"Bearer {keys.issuer.token()}"
    )
    assert "repo:org/app:ref:refs/heads/main" == identity.name


def test_duplicate_issuers_are_refused() -> None:
    """An issuer configured twice (file and inline) is a configuration error."""
    from service.oidc import load_config

    with pytest.raises(ValueError, match="once"):
        load_config(json.dumps({"issuers": config()["issuers"] * 2}), None)


async def test_deeply_nested_payload_is_rejected_not_a_crash() -> None:
    """A JWT-shaped token whose payload nests too deep for the parser: rejected (401),
    not an unhandled RecursionError."""
    import base64

    def b64(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    header = b64(b'{"alg": "RS256"}')
    token = f"{header}.{b64(b'[' * 3000)}.c2ln"
    with pytest.raises(OidcRejected):
        await Keys().verifier().verify(token)
