"""The dashboard signs in with the service's API keys (sha256 of the token) and keeps a signed session cookie."""

from __future__ import annotations

import hashlib
import json
import time

from bento.harness.issuer import Issuer
from dashboard.app import create_app
from dashboard.auth import Keys
from dashboard.harness import publish_alert
from dashboard.pages import alerts
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


def dash_call(client, output_id: str, values: dict, triggered: str):
    """POST the Dash callback whose outputs include `output_id`, as the browser does: every input and state with
    its value from `values` (None else), `triggered` as the changed property. The response's outputs."""
    key, spec = next((k, s) for k, s in client.application.config["dash_callbacks"].items() if f"{output_id}." in k)
    body = {
        "output": key,
        "outputs": [{"id": o.split(".")[0], "property": o.split(".")[1]} for o in key.strip(".").split("...")],
        "inputs": [{**i, "value": values.get(i["id"])} for i in spec["inputs"]],
        "state": [{**s, "value": values.get(s["id"])} for s in spec["state"]],
        "changedPropIds": [triggered],
    }
    answer = client.post("/_dash-update-component", json=body)
    assert answer.status_code == 200, answer.data[:500]
    return answer.get_json()["response"]


def test_a_reader_sees_and_manages_its_own_subscriptions_and_alerts_an_admin_all(world):
    keys = Keys(
        {
            hashlib.sha256(b"ana-key").hexdigest(): ("ana", "reader"),
            hashlib.sha256(b"ops").hexdigest(): ("ops", "admin"),
        }
    )
    app = create_app(world.data(), keys, "test-secret")
    app.server.config["dash_callbacks"] = app.callback_map
    data = world.data()
    for subscriber in ("ana", "bo"):
        data.save_subscription(alerts.from_form(subscriber, "", "above 0.5", 60))
        publish_alert(data.sources.redis, "T0007", "above 0.5", subscriber=subscriber)
    reader = app.server.test_client()
    reader.post("/login", data={"api_key": "ana-key"})
    form = {"sub-subscriber": "bo", "sub-rules": "above 0.9", "sub-cooldown": 60, "page": "/alerts"}
    refused = dash_call(reader, "sub-table", form, "sub-save.n_clicks")
    assert "your own subscription only (ana)" in refused["sub-message"]["children"]
    assert {row["subscriber"] for row in refused["sub-table"]["data"]} == {"ana"}
    assert {s.subscriber: alerts.rules_text(s) for s in data.subscriptions()}["bo"] == "above 0.5"  # untouched
    saved = dash_call(reader, "sub-table", {**form, "sub-subscriber": ""}, "sub-save.n_clicks")
    assert saved["sub-message"]["children"].startswith("saved ana: above 0.9")
    feed = dash_call(reader, "alerts-feed", {"page": "/alerts"}, "page.pathname")
    assert feed["alerts-feed"]["data"] and {a["subscriber"] for a in feed["alerts-feed"]["data"]} == {"ana"}
    admin = app.server.test_client()
    admin.post("/login", data={"api_key": "ops"})
    everyone = dash_call(admin, "alerts-feed", {"page": "/alerts"}, "page.pathname")
    assert {"ana", "bo"} <= {a["subscriber"] for a in everyone["alerts-feed"]["data"]}
    rows = dash_call(admin, "sub-table", {"page": "/alerts"}, "page.pathname")["sub-table"]["data"]
    assert {"ana", "bo"} <= {row["subscriber"] for row in rows}
    for subscriber in ("ana", "bo"):
        data.delete_subscription(subscriber)
