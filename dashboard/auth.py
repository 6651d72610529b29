"""The dashboard's login: the service's API keys (the same key file and inline list, docs/configuration.md), checked
once at a login form; a signed Flask session cookie carries the key's id afterwards. Without any key configured the
dashboard is open (the local default, as the service is)."""

from __future__ import annotations

import hashlib
import hmac
import html
import json
from dataclasses import dataclass
from pathlib import Path

import flask

from stockpred_core.settings import ServiceSettings

LOGIN_PATH = "/login"
LOGOUT_PATH = "/logout"
OPEN_PATHS = (LOGIN_PATH, "/healthz", "/metrics")  # the probes and the scrape, as the service's


@dataclass(frozen=True)
class Keys:
    """sha256 hex digest of a token -> (key id, role)."""

    by_hash: dict[str, tuple[str, str]]

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
        return cls(by_hash)

    def authenticate(self, token: str) -> tuple[str, str] | None:
        digest = hashlib.sha256(token.encode()).hexdigest()
        for known, key in self.by_hash.items():
            if hmac.compare_digest(known, digest):
                return key
        return None


_FORM = """<!doctype html><title>stockpred: sign in</title>
<form method="post" action="{login}" style="font-family:sans-serif;max-width:22em;margin:4em auto">
<h2>stockpred dashboard</h2><p>{message}</p>
<input id="api-key" name="api_key" type="password" placeholder="API key" style="width:100%" autofocus>
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
            key = keys.authenticate(flask.request.form.get("api_key", ""))
            if key is not None:
                flask.session.clear()
                flask.session["key_id"], flask.session["role"] = key
                return flask.redirect(target)
            return _form("Unknown API key.", target), 401
        return _form("Sign in with your API key.", target)

    @server.route(LOGOUT_PATH)
    def logout():
        flask.session.clear()
        return flask.redirect(LOGIN_PATH)

    @server.before_request
    def require_login():
        if not keys.by_hash or flask.request.path in OPEN_PATHS or "key_id" in flask.session:
            return None
        if flask.request.method == "GET" and not flask.request.path.startswith("/_dash"):
            return flask.redirect(f"{LOGIN_PATH}?next={flask.request.full_path.rstrip('?')}")
        return flask.Response("sign in first", status=401)


def _form(message: str, target: str) -> str:
    return _FORM.format(login=LOGIN_PATH, message=html.escape(message), next=html.escape(target))
