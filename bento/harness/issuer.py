"""A small OAuth2 token issuer for tests and benchmarks: signing keys generated per run (RSA 2048 and EC P-256), the
public ones served as a JWKS over real HTTP on a free port, tokens signed with joserfc; `rotate()` replaces the
keys the way an identity provider does (new kid, published before it signs)."""

from __future__ import annotations

import json
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from joserfc import jwt
from joserfc.jwk import ECKey, RSAKey

JWKS_PATH = "/.well-known/jwks.json"


class Issuer:
    def __init__(self, audience: str = "stockpred") -> None:
        self.audience = audience
        self.requests = 0  # JWKS fetches served
        self.rsa = self._rsa()
        self.ec = ECKey.generate_key("P-256", parameters={"kid": f"ec-{uuid.uuid4().hex[:8]}", "use": "sig"})
        self.published = [self.rsa, self.ec]
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self.base = f"http://127.0.0.1:{self._server.server_address[1]}"
        self.issuer = self.base  # `iss`: the issuer's URL, as identity providers set it

    @staticmethod
    def _rsa() -> RSAKey:
        return RSAKey.generate_key(2048, parameters={"kid": f"rsa-{uuid.uuid4().hex[:8]}", "use": "sig"})

    @property
    def jwks_url(self) -> str:
        return self.base + JWKS_PATH

    def env(self) -> dict[str, str]:
        """The service's settings that trust this issuer."""
        return {
            "STOCKPRED_JWT_ISSUER": self.issuer,
            "STOCKPRED_JWT_AUDIENCE": self.audience,
            "STOCKPRED_JWT_JWKS_URL": self.jwks_url,
        }

    def _handler(self):
        issuer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                if self.path != JWKS_PATH:
                    self.send_error(404)
                    return
                issuer.requests += 1
                body = json.dumps({"keys": [k.as_dict(private=False) for k in issuer.published]}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        return Handler

    def start(self) -> Issuer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> Issuer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def rotate(self) -> RSAKey:
        """A new RSA signing key, published beside the old one (which stays until `retire`)."""
        self.rsa = self._rsa()
        self.published = [self.rsa, *self.published]
        return self.rsa

    def retire(self, kid: str) -> None:
        self.published = [k for k in self.published if k.kid != kid]

    def claims(self, subject: str = "alice", scope: str = "stockpred.predict", lifetime: float = 300, **extra) -> dict:
        now = int(time.time())
        claims = {
            "iss": self.issuer,
            "aud": self.audience,
            "sub": subject,
            "iat": now,
            "nbf": now,
            "exp": now + int(lifetime),
            "scope": scope,
            "jti": uuid.uuid4().hex,
        }
        claims.update(extra)
        return {k: v for k, v in claims.items() if v is not None}

    def token(self, *, key=None, alg: str | None = None, header: dict | None = None, **claims) -> str:
        """A signed token: RS256 with the current RSA key unless told otherwise (`key=issuer.ec` signs ES256)."""
        key = key or self.rsa
        alg = alg or ("ES256" if isinstance(key, ECKey) else "RS256")
        return jwt.encode({"alg": alg, "kid": key.kid, "typ": "JWT", **(header or {})}, self.claims(**claims), key)
