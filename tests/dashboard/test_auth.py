"""The dashboard signs in with the service's API keys (sha256 of the token) and keeps a signed session cookie."""

from __future__ import annotations

import hashlib
import json
import time

from bento.harness.issuer import Issuer
from dashboard.app import create_app
from dashboard.auth import Keys
from stockpred_core.settings import ServiceSettings


def test_keys_come_from_the_service_key_file_and_inline_list(tmp_path):
    path = tmp_path / "keys.json"
    path.write_text(json.dumps([{"id": "alice", "role": "reader", "sha256": hashlib.sha256(b"tok-a").hexdigest()}]))
    inline = f"bob:admin:{hashlib.sha256(b'tok-b').hexdigest()}:5"
    keys = Keys.load(ServiceSettings(api_keys_file=str(path), api_keys=inline))
    assert keys.authenticate("tok-a") == ("alice", "reader")
    assert keys.authenticate("tok-b") == ("bob", "admin")
    assert keys.authenticate("nope") is None


def test_pages_need_a_signed_in_session(world):
    keys = Keys({hashlib.sha256(b"secret-token").hexdigest(): ("alice", "reader")})
    client = create_app(world.data(), keys, "test-secret").server.test_client()
    page = client.get("/alerts")
    assert page.status_code == 302 and page.headers["Location"].startswith("/login?next=/alerts")
    assert client.get("/_dash-layout").status_code == 401
    assert client.post("/login", data={"api_key": "wrong"}).status_code == 401
    signed_in = client.post("/login", data={"api_key": "secret-token", "next": "/alerts"})
    assert signed_in.status_code == 302 and signed_in.headers["Location"] == "/alerts"
    assert client.get("/_dash-layout").status_code == 200
    client.get("/logout")
    assert client.get("/_dash-layout").status_code == 401


def test_without_keys_the_dashboard_is_open(world):
    client = create_app(world.data()).server.test_client()
    assert client.get("/_dash-layout").status_code == 200


def test_bearer_tokens_of_the_services_issuer_sign_in(world):
    """With an issuer configured: a token at the login form (the session ends with the token), or on every request
    as the OAuth2 proxy sends it; refused tokens say why."""
    with Issuer() as issuer:
        service = ServiceSettings(jwt_issuer=issuer.issuer, jwt_jwks_url=issuer.jwks_url)
        keys = Keys.load(service)
        assert keys.configured and not keys.by_hash
        client = create_app(world.data(), keys, "test-secret").server.test_client()
        assert client.get("/_dash-layout").status_code == 401
        proxied = client.get("/_dash-layout", headers={"Authorization": f"Bearer {issuer.token(subject='ana')}"})
        assert proxied.status_code == 200
        via_ingress = client.get("/_dash-layout", headers={"X-Auth-Request-Access-Token": issuer.token(subject="cy")})
        assert via_ingress.status_code == 200
        expired = client.get("/_dash-layout", headers={"Authorization": f"Bearer {issuer.token(lifetime=-120)}"})
        assert expired.status_code == 401 and b"expired" in expired.data
        other = client.post("/login", data={"api_key": issuer.token(aud="elsewhere")})
        assert other.status_code == 401 and b"another audience" in other.data
        assert client.post("/login", data={"api_key": issuer.token(subject="bo"), "next": "/alerts"}).status_code == 302
        assert client.get("/_dash-layout").status_code == 200
        with client.session_transaction() as session:
            assert session["key_id"] == "jwt:bo" and session["role"] == "reader"
            session["expires_at"] = time.time() - 1  # the token's end, as if time had passed
        assert client.get("/_dash-layout").status_code == 401
