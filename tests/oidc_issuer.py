"""A local OIDC issuer for tests: discovery and JWKS over HTTP on 127.0.0.1, keys made in
the test, and helpers that sign (or forge) ID tokens."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from joserfc import jwt
from joserfc.jwk import ECKey, RSAKey

AUDIENCE = "pushgate"


class Issuer:
    """Serves ``/.well-known/openid-configuration`` and ``/jwks``; ``keys`` may be swapped
    (rotation) and ``down`` makes every request fail with 500."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.keys: list[RSAKey | ECKey] = [RSAKey.generate_key(2048, parameters={"kid": "k1"})]
        self.requests: list[str] = []
        self.down = False

    @property
    def key(self) -> RSAKey | ECKey:
        return self.keys[0]

    def jwks(self) -> dict[str, Any]:
        return {"keys": [key.as_dict(private=False) for key in self.keys]}

    def claims(self, **overrides: Any) -> dict[str, Any]:
        now = int(time.time())
        claims: dict[str, Any] = {
            "iss": self.url,
            "aud": AUDIENCE,
            "sub": "repo:org/app:ref:refs/heads/main",
            "repository": "org/app",
            "ref": "refs/heads/main",
            "iat": now,
            "nbf": now,
            "exp": now + 300,
        }
        claims.update(overrides)
        return {name: value for name, value in claims.items() if value is not None}

    def token(self, key: RSAKey | ECKey | None = None, *, alg: str = "RS256", **claims: Any) -> str:
        key = key or self.key
        return jwt.encode({"alg": alg, "kid": key.kid}, self.claims(**claims), key)

    def unsigned_token(self, **claims: Any) -> str:
        """``alg: none``: no signature at all."""
        return f"{_b64({'alg': 'none', 'typ': 'JWT'})}.{_b64(self.claims(**claims))}."

    def hmac_with_public_key(self, **claims: Any) -> str:
        """HS256 "signed" with the RSA public key's PEM: the classic key-confusion forgery."""
        key = self.key
        assert isinstance(key, RSAKey)
        secret = key.as_pem(private=False)
        signing_input = f"{_b64({'alg': 'HS256', 'kid': key.kid})}.{_b64(self.claims(**claims))}"
        signature = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
        return f"{signing_input}.{_b64url(signature)}"


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _b64(document: dict[str, Any]) -> str:
    return _b64url(json.dumps(document).encode())


@contextmanager
def running_issuer() -> Iterator[Issuer]:
    """An issuer on a free port of 127.0.0.1, stopped at the end."""
    state: dict[str, Issuer] = {}

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            issuer = state["issuer"]
            issuer.requests.append(self.path)
            if issuer.down:
                self._answer(500, {"error": "down"})
            elif self.path == "/.well-known/openid-configuration":
                self._answer(200, {"issuer": issuer.url, "jwks_uri": f"{issuer.url}/jwks"})
            elif self.path == "/jwks":
                self._answer(200, issuer.jwks())
            else:
                self._answer(404, {"error": "not found"})

        def _answer(self, status: int, document: dict[str, Any]) -> None:
            body = json.dumps(document).encode()
            self.send_response(status)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *_args: Any) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state["issuer"] = Issuer(f"http://127.0.0.1:{server.server_address[1]}")
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state["issuer"]
    finally:
        server.shutdown()
        server.server_close()
