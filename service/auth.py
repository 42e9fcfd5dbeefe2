"""Bearer tokens with per-repository glob scopes.

Tokens are configured hashed (``sha256`` hex of the token) with a name and scopes,
from ``PUSHGATE_AUTH_TOKENS_FILE`` (a JSON file) and/or ``PUSHGATE_AUTH_TOKENS``
(the same JSON inline)::

    [{"name": "team-a-ci", "sha256": "<hex>", "scopes": ["team-a/*"]}]

A scope is an ``fnmatch`` glob on the repository name (``*`` matches ``/`` too, so
``team-a/*`` covers ``team-a/app`` and ``team-a/x/y``). The token itself is never
stored nor logged; comparison is constant-time. ``pushgate token`` prints a token and
its entry.

Auth is off only when ``PUSHGATE_AUTH=off`` says so; with ``tokens`` (the default) and no
entry configured (no file, or a file holding ``[]``) and no OIDC issuer, the service
refuses to start.

A bearer token shaped like a JWT is an OIDC ID token from a CI system instead, verified
by :mod:`service.oidc` (its ``sub`` is the caller, its scopes come from claim rules).
"""

from __future__ import annotations

import fnmatch
import hashlib
import hmac
import json
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from service.oidc import OidcVerifier
    from service.settings import Settings

#: the longest token name (it is the caller recorded in history)
MAX_NAME_CHARS = 64


class AuthConfigError(ValueError):
    """The tokens configuration is unusable; the message is one sentence for the operator."""


class AuthError(Exception):
    """Authentication or authorization failed; ``status`` is 401 or 403."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


@dataclass(frozen=True)
class TokenEntry:
    name: str
    sha256: str
    scopes: tuple[str, ...]

    def allows(self, repository: str) -> bool:
        return any(fnmatch.fnmatchcase(repository, scope) for scope in self.scopes)


class Grant(Protocol):
    """What a credential may act on: a static token's entry or a verified OIDC token."""

    def allows(self, repository: str) -> bool: ...


@dataclass(frozen=True)
class Identity:
    """Who called: the token's name or OIDC subject (``anonymous`` when auth is off)."""

    name: str
    entry: Grant | None

    def check(self, repository: str) -> None:
        """Raise 403 unless this identity may act on ``repository``."""
        if self.entry is not None and not self.entry.allows(repository):
            raise AuthError(
                403, "forbidden", f"Token {self.name!r} has no scope for repository {repository!r}."
            )


ANONYMOUS = Identity("anonymous", None)


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def new_token() -> str:
    return "pg_" + secrets.token_urlsafe(32)


def parse_entries(data: Any, *, source: str) -> list[TokenEntry]:
    if not isinstance(data, list):
        raise ValueError(f"{source}: expected a JSON list of token entries")
    entries = []
    for index, item in enumerate(data):
        if not isinstance(item, dict):
            raise ValueError(f"{source}[{index}]: expected an object")
        name, digest, scopes = item.get("name"), item.get("sha256"), item.get("scopes")
        if (
            not isinstance(name, str)
            or not 0 < len(name) <= MAX_NAME_CHARS
            or not name.isprintable()
        ):
            raise ValueError(
                f"{source}[{index}]: 'name' must be 1-{MAX_NAME_CHARS} printable characters"
            )
        if not isinstance(digest, str) or len(digest) != 64:  # noqa: PLR2004 - sha256 hex
            raise ValueError(f"{source}[{index}]: 'sha256' must be 64 hex characters")
        if not isinstance(scopes, list) or not all(isinstance(s, str) for s in scopes):
            raise ValueError(f"{source}[{index}]: 'scopes' must be a list of globs")
        entries.append(TokenEntry(name, digest.lower(), tuple(scopes)))
    return entries


class Authenticator:
    """Turns an ``Authorization`` header into an :class:`Identity`; ``enabled=False`` (auth
    off) makes everyone :data:`ANONYMOUS`. Enabled with no entries is refused: an empty
    tokens file must not open the API."""

    def __init__(
        self, entries: list[TokenEntry], *, enabled: bool = True, oidc: OidcVerifier | None = None
    ) -> None:
        if enabled and not entries and oidc is None:
            raise AuthConfigError(
                "PUSHGATE_AUTH is 'tokens' but no bearer tokens or OIDC issuers are configured: "
                "add entries to PUSHGATE_AUTH_TOKENS_FILE (pushgate token makes one), configure "
                "PUSHGATE_OIDC_CONFIG, or set PUSHGATE_AUTH=off to serve without authentication."
            )
        self._entries = entries
        self._oidc = oidc if enabled else None
        self.enabled = enabled

    @classmethod
    def from_settings(cls, settings: Settings, oidc: OidcVerifier | None = None) -> Authenticator:
        """The settings' tokens (and OIDC issuers); raises :class:`AuthConfigError` with one
        sentence."""
        if settings.auth == "off":
            return cls([], enabled=False)
        entries: list[TokenEntry] = []
        try:
            if settings.auth_tokens_file:
                path = Path(settings.auth_tokens_file)
                entries += parse_entries(json.loads(path.read_text()), source=str(path))
            if settings.auth_tokens:
                entries += parse_entries(
                    json.loads(settings.auth_tokens), source="PUSHGATE_AUTH_TOKENS"
                )
        except OSError as exc:
            raise AuthConfigError(f"cannot read the tokens file: {exc}") from exc
        except ValueError as exc:
            raise AuthConfigError(f"the bearer tokens are not usable: {exc}") from exc
        return cls(entries, oidc=oidc)

    @property
    def token_names(self) -> list[str]:
        return [entry.name for entry in self._entries]

    async def authenticate(self, authorization: str | None) -> Identity:
        """:meth:`identify`, with OIDC ID tokens verified against their issuer's keys."""
        # server dependencies; `pushgate token` imports this module on the client install
        from service.domain.errors import BackendUnavailable  # noqa: PLC0415
        from service.oidc import OidcRejected, OidcUnavailable, looks_like_jwt  # noqa: PLC0415

        token = _bearer(authorization) if self.enabled else ""
        if self._oidc is None or not looks_like_jwt(token):
            return self.identify(authorization)
        try:
            grant = await self._oidc.verify(token)
        except OidcRejected as exc:
            raise AuthError(401, "unauthorized", str(exc)) from exc
        except OidcUnavailable as exc:
            unavailable = BackendUnavailable(str(exc), cause_code="oidc_keys_unavailable")
            unavailable.retry_after = max(1.0, exc.retry_after)
            raise unavailable from exc
        return Identity(grant.subject, grant)

    def identify(self, authorization: str | None) -> Identity:
        if not self.enabled:
            return ANONYMOUS
        digest = hash_token(_bearer(authorization))
        found = None
        for entry in self._entries:  # every entry is compared: no early exit timing
            if hmac.compare_digest(digest, entry.sha256):
                found = entry
        if found is None:
            raise AuthError(401, "unauthorized", "The bearer token is not valid.")
        return Identity(found.name, found)


def _bearer(authorization: str | None) -> str:
    scheme, _, token = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise AuthError(401, "unauthorized", "A bearer token is required.")
    return token.strip()
