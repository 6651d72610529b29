"""OAuth 2.0 bearer tokens (JWT), verified as a resource server does: the signature against the issuer's JWKS, then
`iss`, `aud`, `exp`, `nbf` and `iat` (with a small leeway), then the scopes, mapped to stockpred's roles.

The cryptography and the claim rules are joserfc's (RFC 7515/7517/7519); this module only decides what to accept:

- algorithms: RS256 and ES256 only (configurable among the asymmetric ones), taken from the key the token names,
  never from the token alone: `alg: none` and HS256 signed with the public key ("algorithm confusion") are refused
  before any key is used;
- keys: the JWKS is fetched from `jwks_url` (httpx, a timeout), kept `cache_seconds`, and fetched again when a token
  names a `kid` it does not hold (the issuer rotated its keys): at most once per `min_refresh_seconds`, so a flood of
  made-up kids costs the issuer one request per interval. A failed fetch keeps the keys held;
- verified tokens are remembered by their SHA-256 for at most `VERIFIED_TTL_S` and never past their `exp`, so a
  client sending the same token does not pay the signature check on each request (benchmarks/serving/auth.py).

Roles: a token's scopes (`scope`, space-separated, or `scp`, a list) map to the highest role any of them grants.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import httpx
from cachetools import TTLCache
from joserfc import jws, jwt
from joserfc.errors import (
    BadSignatureError,
    ExpiredTokenError,
    InvalidClaimError,
    JoseError,
    MissingClaimError,
)
from joserfc.jwk import KeySet

ASYMMETRIC = frozenset({"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"})
KEY_TYPES = {"RS": "RSA", "PS": "RSA", "ES": "EC", "Ed": "OKP"}  # alg prefix -> the JWK kty it needs
VERIFIED_TTL_S = 60.0
VERIFIED_ENTRIES = 50_000
MAX_TOKEN_BYTES = 8_192


class TokenError(Exception):
    """Why a token is refused: `status` 401 (not authenticated) or 403 (authenticated, not allowed); the message is
    safe to answer (it never holds the token)."""

    def __init__(self, status: int, reason: str, message: str) -> None:
        super().__init__(message)
        self.status, self.reason, self.message = status, reason, message


@dataclass(frozen=True)
class TokenPrincipal:
    subject: str
    role: str
    expires_at: float

    @property
    def id(self) -> str:
        """The caller's name wherever keys are named (rate limits, the audit log, alert subscribers): `jwt:<sub>`,
        so a token's subject never passes for an API key's id."""
        return f"jwt:{self.subject}"


@dataclass(frozen=True)
class JwtConfig:
    issuer: str
    audience: str
    jwks_url: str
    algorithms: tuple[str, ...] = ("RS256", "ES256")
    leeway_seconds: int = 30
    cache_seconds: float = 300.0
    min_refresh_seconds: float = 10.0
    fetch_timeout_seconds: float = 3.0
    # role -> the scopes that grant it, lowest role first (a later role may do what the earlier ones may)
    role_scopes: tuple[tuple[str, tuple[str, ...]], ...] = (
        ("reader", ("stockpred.predict",)),
        ("admin", ("stockpred.admin",)),
    )

    def __post_init__(self) -> None:
        unsafe = set(self.algorithms) - ASYMMETRIC
        if unsafe:
            raise ValueError(f"JWT algorithms must be asymmetric ({sorted(ASYMMETRIC)}), not {sorted(unsafe)}")
        url = httpx.URL(self.jwks_url)
        if url.scheme != "https" and url.host not in ("127.0.0.1", "localhost", "::1"):
            raise ValueError(f"the JWKS URL must be https:// (plain http only on loopback), not {self.jwks_url!r}")


def looks_like_jwt(token: str) -> bool:
    """A compact JWS: three base64url parts (an API key `spk_...` has no dot)."""
    return token.count(".") == 2


class JwksCache:
    """The issuer's public keys by `kid`: fetched, cached, re-fetched on an unknown kid at a bounded rate."""

    def __init__(self, config: JwtConfig, clock: Callable[[], float] = time.monotonic, client=None) -> None:
        self.config = config
        self.clock = clock
        self.client = client or httpx.Client(timeout=config.fetch_timeout_seconds, follow_redirects=False)
        self.keys: KeySet | None = None
        self.fetched_at: float | None = None  # last successful fetch
        self.tried_at: float | None = None  # last attempt, successful or not
        self.fetching = False  # a fetch is under way: callers missing a key wait for it (`refresh` takes the lock)
        self.error: str | None = None
        self._lock = threading.Lock()

    def key(self, kid: str):
        """The held key with this kid, or None (no IO)."""
        if self.keys is None:
            return None
        for key in self.keys.keys:
            if key.kid == kid:
                return key
        return None

    def due(self, kid: str) -> bool:
        """Whether a fetch should happen before verifying a token with this kid: none held, the cache expired, or an
        unknown kid, and the last attempt was long enough ago."""
        now = self.clock()
        if self.tried_at is not None and now - self.tried_at < self.config.min_refresh_seconds:
            return False
        if self.keys is None or self.key(kid) is None:
            return True
        return self.fetched_at is None or now - self.fetched_at >= self.config.cache_seconds

    def refresh(self, kid: str) -> None:
        """Fetch the JWKS when `due(kid)` still holds once the lock is taken (concurrent callers fetch once)."""
        with self._lock:
            if not self.due(kid):
                return
            self.tried_at = self.clock()
            self.fetching = True
            try:
                answer = self.client.get(self.config.jwks_url, headers={"Accept": "application/json"})
                answer.raise_for_status()
                keys = KeySet.import_key_set(answer.json())
            except (httpx.HTTPError, ValueError, JoseError, TypeError, KeyError) as exc:
                self.error = f"the issuer's keys cannot be fetched ({type(exc).__name__})"
                return
            finally:
                self.fetching = False
            self.keys, self.fetched_at, self.error = keys, self.clock(), None


class JwtVerifier:
    """`verify(token)` -> TokenPrincipal, or TokenError with a status and a message for the client."""

    def __init__(self, config: JwtConfig, jwks: JwksCache | None = None, now: Callable[[], float] = time.time):
        self.config = config
        self.jwks = jwks or JwksCache(config)
        self.now = now
        self.verified: TTLCache = TTLCache(VERIFIED_ENTRIES, VERIFIED_TTL_S)
        self._verified_lock = threading.Lock()  # the dashboard verifies from several threads
        self._claims = jwt.JWTClaimsRegistry(
            now=lambda: int(self.now()),
            leeway=config.leeway_seconds,
            iss={"essential": True, "value": config.issuer},
            aud={"essential": True, "value": config.audience},
            exp={"essential": True},
            sub={"essential": True},
        )

    def remembered(self, token: str) -> TokenPrincipal | None:
        """The principal of a token verified lately and not expired, else None (no signature check, no IO)."""
        return self._remembered(hashlib.sha256(token.encode()).digest())

    def needs_keys(self, token: str) -> bool:
        """Whether the JWKS should be fetched before `verify(token, fetch=False)` of a token not `remembered`
        (the caller fetches off its event loop)."""
        try:
            kid = self._header(token).get("kid")
        except TokenError:
            return False
        if not isinstance(kid, str):
            return False
        return self.jwks.due(kid) or (self.jwks.fetching and self.jwks.key(kid) is None)

    def prefetch(self, token: str) -> None:
        """Fetch the keys `token` needs when `needs_keys(token)`: the only IO of a verification."""
        kid = self._header(token).get("kid")
        if isinstance(kid, str):
            self.jwks.refresh(kid)

    def verify(self, token: str, fetch: bool = True) -> TokenPrincipal:
        """The token's principal, or TokenError. `fetch=False`: never fetch the JWKS here (an event loop calls
        `prefetch` in a thread first): a kid the held keys lack is refused."""
        digest = hashlib.sha256(token.encode()).digest()
        known = self._remembered(digest)
        if known is not None:
            return known
        principal = self._verify(token, fetch)
        with self._verified_lock:
            self.verified[digest] = principal
        return principal

    def _remembered(self, digest: bytes) -> TokenPrincipal | None:
        with self._verified_lock:
            known = self.verified.get(digest)
        if known is not None and known.expires_at > self.now() - self.config.leeway_seconds:
            return known
        return None

    def _header(self, token: str) -> dict:
        if len(token) > MAX_TOKEN_BYTES:
            raise TokenError(401, "invalid", f"invalid token: longer than {MAX_TOKEN_BYTES} bytes")
        try:
            return jws.extract_compact(token.encode()).headers()
        except (JoseError, ValueError, TypeError, UnicodeError):
            raise TokenError(401, "invalid", "invalid token: not a signed JWT (header.payload.signature)") from None

    def _verify(self, token: str, fetch: bool) -> TokenPrincipal:
        header = self._header(token)
        alg = header.get("alg")
        if alg not in self.config.algorithms:
            accepted = list(self.config.algorithms)
            raise TokenError(401, "invalid", f"invalid token: algorithm {alg!r} is not accepted (only {accepted})")
        kid = header.get("kid")
        if not isinstance(kid, str) or not kid:
            raise TokenError(401, "invalid", "invalid token: its header names no signing key (kid)")
        key = self.jwks.key(kid)
        if fetch and (key is None or self.jwks.due(kid)):
            self.jwks.refresh(kid)
            key = self.jwks.key(kid)
        if key is None:
            why = self.jwks.error or "the issuer does not publish it"
            raise TokenError(401, "unknown_key", f"invalid token: unknown signing key {kid[:64]!r} ({why})")
        if KEY_TYPES.get(alg[:2]) != key.key_type:
            why = f"algorithm {alg} does not fit key {kid[:64]!r} ({key.key_type})"
            raise TokenError(401, "invalid", f"invalid token: {why}")
        try:
            claims = jwt.decode(token, key, algorithms=[alg]).claims
        except BadSignatureError:
            raise TokenError(401, "invalid", "invalid token: bad signature") from None
        except JoseError as exc:
            raise TokenError(401, "invalid", f"invalid token: {exc.error}") from None
        try:
            self._claims.validate(claims)
        except ExpiredTokenError:
            raise TokenError(401, "expired", "invalid token: expired") from None
        except MissingClaimError as exc:
            raise TokenError(401, "invalid", f"invalid token: missing claim {exc.claim!r}") from None
        except InvalidClaimError as exc:
            raise TokenError(401, "invalid", f"invalid token: {_claim_problem(exc.claim)}") from None
        scopes = token_scopes(claims)
        role = role_of(scopes, self.config.role_scopes)
        if role is None:
            granting = sorted({s for _, names in self.config.role_scopes for s in names})
            raise TokenError(403, "forbidden", f"this token grants none of the scopes stockpred knows: {granting}")
        return TokenPrincipal(str(claims["sub"]), role, float(claims["exp"]))


def _claim_problem(name: str) -> str:
    plain = {
        "iss": "issued by another issuer",
        "aud": "meant for another audience",
        "nbf": "not valid yet (nbf)",
        "iat": "issued in the future (iat)",
    }
    return plain.get(name, f"bad claim {name!r}")


def token_scopes(claims: dict) -> frozenset[str]:
    scope = claims.get("scope")
    names: Iterable = scope.split() if isinstance(scope, str) else ()
    scp = claims.get("scp")
    if isinstance(scp, list):
        names = [*names, *(s for s in scp if isinstance(s, str))]
    elif isinstance(scp, str):
        names = [*names, *scp.split()]
    return frozenset(names)


def role_of(scopes: frozenset[str], role_scopes) -> str | None:
    """The highest role a scope grants (role_scopes: lowest first), None when none does."""
    role = None
    for name, granting in role_scopes:
        if scopes.intersection(granting):
            role = name
    return role
