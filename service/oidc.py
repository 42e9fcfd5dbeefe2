"""OIDC ID tokens from CI systems (GitHub Actions, GitLab, Buildkite, any OIDC issuer) as
bearer tokens, so CI jobs push without a long-lived secret.

A token is accepted when:

- its issuer (``iss``) is configured, and its signature verifies against that issuer's
  JWKS with one of :data:`ALGORITHMS` (never ``none``, never an HMAC algorithm: an HS256
  token "signed" with the public key finds no key to verify with);
- ``aud`` names the issuer's configured audience, ``exp`` is in the future and ``nbf`` /
  ``iat`` are not, each within ``leeway`` seconds of clock skew;
- it carries a ``sub`` (the caller recorded in history) of printable text.

Its scopes are the union of the issuer's rules whose claims all match (``fnmatch`` globs
on string claims, ``*`` matching ``/`` too); a valid token that no rule matches
authenticates but may push nowhere (403). Configuration (``PUSHGATE_OIDC_CONFIG`` inline
or ``PUSHGATE_OIDC_CONFIG_FILE``)::

    {"issuers": [{"issuer": "https://token.ci.example",
                  "audience": "pushgate",
                  "rules": [{"claims": {"repository": "org/app", "ref": "refs/heads/main"},
                             "scopes": ["team-a/app"]}]}]}

Keys: the JWKS is found through the issuer's discovery document (or ``jwks_uri`` in the
config), cached, refetched when older than ``max_age`` and when a token names an unknown
``kid`` (key rotation) — at most once per ``refresh_interval`` per issuer, so tokens with
made-up ``kid`` values cannot make pushgate hammer the issuer. When a refetch fails the
cached keys stay in use; with no keys at all the request is answered 503 (retryable).
Issuer and JWKS URLs must be https, except on loopback (tests, local issuers).

This module knows nothing of HTTP answers: it raises :class:`OidcRejected` (401) and
:class:`OidcUnavailable` (503), which ``service.auth`` translates.
"""

from __future__ import annotations

import asyncio
import fnmatch
import json
import re
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import httpx
from joserfc import jws, jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet

ALGORITHMS = ("RS256", "RS384", "RS512", "ES256", "ES384", "PS256")
MAX_TOKEN_BYTES = 8192
MAX_DOCUMENT_BYTES = 256 * 1024
MAX_SUBJECT = 256
_SIGNING_KTY = {"RSA", "EC"}
_LOOPBACK = {"127.0.0.1", "localhost", "::1"}
_PRINTABLE = re.compile(r"^[\x20-\x7e]+$")
_JWT_SHAPE = re.compile(r"^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*$")

Fetch = Callable[[str], Awaitable[Any]]


class OidcRejected(Exception):
    """The token is not valid (401)."""


class OidcUnavailable(Exception):
    """The issuer's keys could not be had (yet): 503, retryable after ``retry_after``."""

    def __init__(self, message: str, *, retry_after: float) -> None:
        super().__init__(message)
        self.retry_after = retry_after


def looks_like_jwt(token: str) -> bool:
    """Three base64url parts: a JWT. Static tokens (``pg_...``) never have dots."""
    return len(token) <= MAX_TOKEN_BYTES and bool(_JWT_SHAPE.match(token))


@dataclass(frozen=True)
class ClaimRule:
    claims: Mapping[str, str]
    scopes: tuple[str, ...]

    def matches(self, claims: Mapping[str, Any]) -> bool:
        return all(
            isinstance(claims.get(name), str) and fnmatch.fnmatchcase(claims[name], pattern)
            for name, pattern in self.claims.items()
        )


@dataclass(frozen=True)
class Issuer:
    issuer: str
    audience: str
    rules: tuple[ClaimRule, ...]
    jwks_uri: str | None = None

    def scopes_for(self, claims: Mapping[str, Any]) -> tuple[str, ...]:
        found: list[str] = []
        for rule in self.rules:
            if rule.matches(claims):
                found += [scope for scope in rule.scopes if scope not in found]
        return tuple(found)


@dataclass(frozen=True)
class OidcGrant:
    """A verified token: who (``sub``) and where it may push."""

    subject: str
    issuer: str
    scopes: tuple[str, ...]

    def allows(self, repository: str) -> bool:
        return any(fnmatch.fnmatchcase(repository, scope) for scope in self.scopes)


def _check_url(url: Any, *, what: str) -> str:
    if not isinstance(url, str) or not url:
        raise ValueError(f"{what} must be a URL")
    parts = urlsplit(url)
    if parts.scheme != "https" and not (parts.scheme == "http" and parts.hostname in _LOOPBACK):
        raise ValueError(f"{what} must be https (http only on loopback): {url[:200]!r}")
    return url


def _strings(value: Any, *, what: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not value:
        raise ValueError(f"{what} must be a non-empty list")
    if not all(isinstance(item, str) and item for item in value):
        raise ValueError(f"{what} must hold non-empty strings")
    return tuple(value)


def _rule(data: Any, *, what: str) -> ClaimRule:
    if not isinstance(data, dict):
        raise ValueError(f"{what} must be an object")
    claims = data.get("claims")
    if not isinstance(claims, dict) or not claims:
        raise ValueError(f"{what}.claims must be a non-empty object of claim: glob")
    if not all(isinstance(k, str) and isinstance(v, str) for k, v in claims.items()):
        raise ValueError(f"{what}.claims values must be strings")
    return ClaimRule(dict(claims), _strings(data.get("scopes"), what=f"{what}.scopes"))


def parse_config(data: Any, *, source: str) -> tuple[Issuer, ...]:
    """The issuers of an OIDC configuration document; ``ValueError`` names what is wrong."""
    if not isinstance(data, dict) or not isinstance(data.get("issuers"), list):
        raise ValueError(f'{source}: expected {{"issuers": [...]}}')
    issuers: list[Issuer] = []
    for index, item in enumerate(data["issuers"]):
        what = f"{source}.issuers[{index}]"
        if not isinstance(item, dict):
            raise ValueError(f"{what} must be an object")
        audience = item.get("audience")
        if not isinstance(audience, str) or not audience:
            raise ValueError(f"{what}.audience must be a non-empty string")
        rules = item.get("rules")
        if not isinstance(rules, list) or not rules:
            raise ValueError(f"{what}.rules must be a non-empty list")
        jwks_uri = item.get("jwks_uri")
        if jwks_uri is not None:
            jwks_uri = _check_url(jwks_uri, what=f"{what}.jwks_uri")
        issuers.append(
            Issuer(
                issuer=_check_url(item.get("issuer"), what=f"{what}.issuer"),
                audience=audience,
                rules=tuple(_rule(rule, what=f"{what}.rules[{n}]") for n, rule in enumerate(rules)),
                jwks_uri=None
                if jwks_uri is None
                else _check_url(jwks_uri, what=f"{what}.jwks_uri"),
            )
        )
    return tuple(issuers)


async def fetch_json(url: str) -> Any:
    """GET a small JSON document (discovery, JWKS): short timeout, bounded size, no redirects
    to other schemes than the checks allow."""
    async with (
        httpx.AsyncClient(timeout=5.0, follow_redirects=False) as client,
        client.stream("GET", url, headers={"accept": "application/json"}) as response,
    ):
        response.raise_for_status()
        body = bytearray()
        async for chunk in response.aiter_bytes():
            body += chunk
            if len(body) > MAX_DOCUMENT_BYTES:
                raise ValueError("document too large")
        return json.loads(body)


@dataclass
class _Keys:
    keys: KeySet | None = None
    fetched_at: float = float("-inf")
    attempted_at: float = float("-inf")
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)


class OidcVerifier:
    """Verifies OIDC ID tokens against their issuers' keys; see the module docstring."""

    def __init__(
        self,
        issuers: tuple[Issuer, ...],
        *,
        leeway: float = 60.0,
        refresh_interval: float = 30.0,
        max_age: float = 3600.0,
        fetch: Fetch = fetch_json,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._issuers = {issuer.issuer: issuer for issuer in issuers}
        self._leeway = int(leeway)
        self._refresh_interval = refresh_interval
        self._max_age = max_age
        self._fetch = fetch
        self._clock = clock
        self._monotonic = monotonic
        self._keys = {name: _Keys() for name in self._issuers}
        #: how many times each issuer's keys were fetched (observability, tests)
        self.fetches: dict[str, int] = dict.fromkeys(self._issuers, 0)

    async def verify(self, token: str) -> OidcGrant:
        issuer, kid = self._unverified_issuer_and_kid(token)
        keys = await self._keys_for(issuer, kid)
        try:
            verified = jwt.decode(token, keys, algorithms=list(ALGORITHMS))
            jwt.JWTClaimsRegistry(
                now=lambda: int(self._clock()),
                leeway=self._leeway,
                iss={"essential": True, "value": issuer.issuer},
                aud={"essential": True, "value": issuer.audience},
                exp={"essential": True},
                sub={"essential": True},
            ).validate(verified.claims)
        except (JoseError, ValueError, TypeError, RecursionError) as exc:
            raise OidcRejected("The token's signature or claims are not valid.") from exc
        subject = verified.claims["sub"]
        if (
            not isinstance(subject, str)
            or len(subject) > MAX_SUBJECT
            or not _PRINTABLE.match(subject)
        ):
            raise OidcRejected(
                "The token's subject is not printable text of at most 256 characters."
            )
        return OidcGrant(subject, issuer.issuer, issuer.scopes_for(verified.claims))

    def _unverified_issuer_and_kid(self, token: str) -> tuple[Issuer, str | None]:
        """Which issuer's keys to verify with: read from the token before verifying it."""
        try:
            compact = jws.extract_compact(token.encode())
            claims = json.loads(compact.payload)
        except (JoseError, ValueError, TypeError, RecursionError) as exc:
            raise OidcRejected("The bearer token is not a well-formed JWT.") from exc
        iss = claims.get("iss") if isinstance(claims, dict) else None
        issuer = self._issuers.get(iss) if isinstance(iss, str) else None
        if issuer is None:
            raise OidcRejected("The token's issuer is not trusted here.")
        kid = compact.headers().get("kid")
        return issuer, kid if isinstance(kid, str) else None

    async def _keys_for(self, issuer: Issuer, kid: str | None) -> KeySet:
        state = self._keys[issuer.issuer]
        if not self._fresh_with(state, kid):
            async with state.lock:
                if not self._fresh_with(state, kid):
                    await self._refresh_or_wait(issuer, state, kid)
        if state.keys is None:
            raise OidcUnavailable(
                "The token's issuer could not be reached to fetch its keys.",
                retry_after=self._refresh_interval,
            )
        return state.keys

    def _fresh_with(self, state: _Keys, kid: str | None) -> bool:
        stale = self._monotonic() - state.fetched_at > self._max_age
        return state.keys is not None and not stale and _has_kid(state.keys, kid)

    async def _refresh_or_wait(self, issuer: Issuer, state: _Keys, kid: str | None) -> None:
        """Fetch the keys again when the last attempt is ``refresh_interval`` old. Sooner,
        a token naming a key not fetched yet is told to come back (a rotation is served
        after one wait; a flood of made-up ``kid`` values costs the issuer nothing); stale
        keys that hold the ``kid`` stay in use."""
        wait = state.attempted_at + self._refresh_interval - self._monotonic()
        if wait <= 0:
            state.attempted_at = self._monotonic()
            await self._refresh(issuer, state)
        elif state.keys is not None and not _has_kid(state.keys, kid):
            raise OidcUnavailable(
                "The token names a key of its issuer that pushgate has not fetched yet.",
                retry_after=wait,
            )

    async def _refresh(self, issuer: Issuer, state: _Keys) -> None:
        self.fetches[issuer.issuer] += 1
        try:
            jwks_uri = issuer.jwks_uri
            if jwks_uri is None:
                discovery = issuer.issuer.rstrip("/") + "/.well-known/openid-configuration"
                document = await self._fetch(discovery)
                jwks_uri = _check_url(
                    document.get("jwks_uri") if isinstance(document, dict) else None,
                    what="jwks_uri",
                )
            state.keys = _key_set(await self._fetch(jwks_uri))
            state.fetched_at = self._monotonic()
        except (httpx.HTTPError, JoseError, ValueError, TypeError, KeyError):
            # the cached keys (if any) stay in use until the next allowed refresh
            return


def _has_kid(keys: KeySet, kid: str | None) -> bool:
    return kid is None or any(key.kid == kid for key in keys)


def _key_set(document: Any) -> KeySet:
    """The signing keys of a JWKS document (RSA and EC; encryption keys left out)."""
    if not isinstance(document, dict) or not isinstance(document.get("keys"), list):
        raise ValueError("not a JWKS document")
    keys = [
        key
        for key in document["keys"]
        if isinstance(key, dict)
        and key.get("kty") in {"RSA", "EC"}
        and key.get("use", "sig") == "sig"
    ]
    if not keys:
        raise ValueError("the JWKS holds no signing key")
    return KeySet.import_key_set({"keys": keys})


def load_config(config_json: str | None, config_file: str | None) -> tuple[Issuer, ...]:
    """Issuers from the inline setting and/or the file (both may be given)."""
    issuers: tuple[Issuer, ...] = ()
    if config_file:
        with open(config_file, encoding="utf-8") as handle:  # noqa: PTH123 - one small file
            issuers += parse_config(json.load(handle), source=config_file)
    if config_json:
        issuers += parse_config(json.loads(config_json), source="PUSHGATE_OIDC_CONFIG")
    if len({issuer.issuer for issuer in issuers}) != len(issuers):
        raise ValueError("OIDC configuration: each issuer may be configured once")
    return issuers
