"""The dashboard's login: the service's API keys (the same key file and inline list, docs/configuration.md) or, when
the service trusts an OAuth2 issuer (STOCKPRED_JWT_*), its bearer tokens (`stockpred_core.auth`).

A key or a token is checked once at the login form; a signed Flask session cookie carries the caller's id afterwards
(a token's session ends with the token). Behind an OAuth2 proxy (deploy/k8s: oauth2-proxy) every request carries
the user's access token (`X-Auth-Request-Access-Token`, or `Authorization: Bearer <token>`), verified on each request,
no form. Without any key or issuer configured the
dashboard is open (the local default, as the service is)."""

from __future__ import annotations

import hashlib
import hmac
import html
import json
import time
from dataclasses import dataclass
from pathlib import Path

import flask

from stockpred_core.auth import JwtVerifier, TokenError, looks_like_jwt
from stockpred_core.settings import ServiceSettings

LOGIN_PATH = "/login"
LOGOUT_PATH = "/logout"
OPEN_PATHS = (LOGIN_PATH, "/healthz", "/metrics")  # the probes and the scrape, as the service's
PROXY_TOKEN = "X-Auth-Request-Access-Token"  # what ingress-nginx passes on from oauth2-proxy (deploy/k8s/base/auth)


@dataclass(frozen=True)
class Keys:
    """sha256 hex digest of a token -> (key id, role)."""

    by_hash: dict[str, tuple[str, str]]
    tokens: JwtVerifier | None = None  # the service's bearer tokens, when an issuer is configured

    @property
    def configured(self) -> bool:
        return bool(self.by_hash) or self.tokens is not None

    @classmethod
    def load(cls, service: ServiceSettings) -> Keys:
        """The keys of STOCKPRED_API_KEYS_FILE (a JSON list, or {"keys": [...]}, of {"id", "role", "sha256"}) and of
        STOCKPRED_API_KEYS (`id:role:sha256[:rate],...`)."""
        by_hash: dict[str, tuple[str, str]] = {}
        if service.api_keys_file:
            data = json.loads(Path(service.api_keys_file).read_text())
            rows = data.get("keys", []) if isinstance(data, dict) else data
            for row in rows:
                by_hash[str(row["sha256"]).lower()] = (str(row["id"]), str(row["role"]))
        for item in (service.api_keys or "").split(","):
            parts = item.strip().split(":")
            if len(parts) >= 3:
                by_hash[parts[2].lower()] = (parts[0], parts[1])
        config = service.jwt_config()
        return cls(by_hash, JwtVerifier(config) if config is not None else None)

    def verify_token(self, token: str) -> tuple[str, str, float] | TokenError | None:
        """(id `jwt:<subject>`, role, expiry) of a bearer token, its refusal, or None when tokens are off or it is
        not a JWT."""
        if self.tokens is None or not looks_like_jwt(token):
            return None
        try:
            principal = self.tokens.verify(token)
        except TokenError as error:
            return error
        return principal.id, principal.role, principal.expires_at

    def authenticate(self, token: str) -> tuple[str, str] | None:
        digest = hashlib.sha256(token.encode()).hexdigest()
        for known, key in self.by_hash.items():
            if hmac.compare_digest(known, digest):
                return key
        return None


_FORM = """<!doctype html><title>stockpred: sign in</title>
<form method="post" action="{login}" style="font-family:sans-serif;max-width:22em;margin:4em auto">
<h2>stockpred dashboard</h2><p>{message}</p>
<input id="api-key" name="api_key" type="password" placeholder="API key or access token" style="width:100%" autofocus>
<input type="hidden" name="next" value="{next}"><button id="sign-in" type="submit">Sign in</button></form>"""


def protect(server: flask.Flask, keys: Keys, secret: str) -> None:
    """Require a signed-in session on every route but the login form, when keys are configured."""
    server.secret_key = secret
    server.config.update(SESSION_COOKIE_HTTPONLY=True, SESSION_COOKIE_SAMESITE="Lax")

    @server.route(LOGIN_PATH, methods=["GET", "POST"])
    def login():
        target = flask.request.values.get("next", "/")
        target = target if target.startswith("/") and not target.startswith("//") else "/"
        if flask.request.method == "POST":
            given = flask.request.form.get("api_key", "").strip()
            token = keys.verify_token(given)
            if isinstance(token, TokenError):
                return _form(token.message, target), token.status
            key = token[:2] if token is not None else keys.authenticate(given)
            if key is not None:
                flask.session.clear()
                flask.session["key_id"], flask.session["role"] = key
                if token is not None:
                    flask.session["expires_at"] = token[2]
                return flask.redirect(target)
            return _form("Unknown API key.", target), 401
        return _form("Sign in with your API key or an access token.", target)

    @server.route(LOGOUT_PATH)
    def logout():
        flask.session.clear()
        return flask.redirect(LOGIN_PATH)

    @server.before_request
    def require_login():
        if not keys.configured or flask.request.path in OPEN_PATHS:
            return None
        bearer = flask.request.headers.get("Authorization", "")
        bearer = bearer[7:].strip() if bearer[:7].lower() == "bearer " else flask.request.headers.get(PROXY_TOKEN, "")
        if bearer and keys.tokens is not None:  # behind the OAuth2 proxy: every request, verified here too
            token = keys.verify_token(bearer)
            if isinstance(token, TokenError):
                return flask.Response(token.message, status=token.status, mimetype="text/plain")
            if token is not None:
                flask.g.caller = token[:2]
                return None
        if "key_id" in flask.session:
            if flask.session.get("expires_at", float("inf")) > time.time():
                return None
            flask.session.clear()  # the token it was opened with expired
        if flask.request.method == "GET" and not flask.request.path.startswith("/_dash"):
            return flask.redirect(f"{LOGIN_PATH}?next={flask.request.full_path.rstrip('?')}")
        return flask.Response("sign in first", status=401)


def caller() -> tuple[str, str] | None:
    """(subscriber name, role) of the signed-in caller: its API key's id, or `jwt:<subject>` for a token (the
    service's names), which its alert subscriptions go by. None when the dashboard is open (no key and no issuer
    configured: every subscription is everyone's, the local default)."""
    if not flask.has_request_context():
        return None
    if "caller" in flask.g:
        return flask.g.caller
    if "key_id" in flask.session:
        return flask.session["key_id"], flask.session.get("role", "reader")
    return None


def restricted_to() -> str | None:
    """The one subscriber whose alerts and subscriptions the caller may see and change (a reader: its own), or None
    for all of them (an admin, or the open dashboard)."""
    who = caller()
    return None if who is None or who[1] == "admin" else who[0]


def _form(message: str, target: str) -> str:
    return _FORM.format(login=LOGIN_PATH, message=html.escape(message), next=html.escape(target))
