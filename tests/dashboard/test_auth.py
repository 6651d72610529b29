"""The dashboard signs in with the service's API keys (sha256 of the token) and keeps a signed session cookie."""

from __future__ import annotations

import hashlib
import json

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
