"""OAuth2 bearer tokens (issue 23): a real `bentoml serve` trusting a real local issuer (keys generated per run, the
JWKS served over HTTP, `bento.harness.issuer`). Each attack of the issue gets its status and a clear error body;
API keys keep working beside tokens; the audit log names the token's subject."""

import base64
import hashlib
import hmac
import json
import time

import httpx
import pytest
from support.service import audit_lines, build_world, serve

pytestmark = pytest.mark.slow

MIN_REFRESH_S = 2.0


@pytest.fixture(scope="module")
def server(tmp_path_factory, issuer, redis_url):
    root = tmp_path_factory.mktemp("jwt")
    env = {**issuer.env(), "STOCKPRED_JWT_JWKS_MIN_REFRESH_SECONDS": str(MIN_REFRESH_S)}
    world = build_world(root / "world", 20, redis_url.rsplit("/", 1)[0] + "/9", extra_env=env)
    with serve(world.env, root / "bento.log") as base:
        yield base, world


def call(server, token: str | None, path: str = "/predict", body=None, header: str = "Authorization"):
    base, _ = server
    headers = {}
    if token is not None:
        headers[header] = f"Bearer {token}" if header == "Authorization" else token
    return httpx.post(f"{base}{path}", json=body or {"ticker": "T00001"}, headers=headers, timeout=30)


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def refused(answer: httpx.Response, status: int, *words: str) -> None:
    assert answer.status_code == status, answer.text
    error = answer.json()["error"]
    for word in words:
        assert word in error, error
    challenge = answer.headers["www-authenticate"]
    assert challenge.startswith("Bearer ") and ("invalid_token" if status == 401 else "insufficient_scope") in challenge


def test_a_valid_token_predicts_rs256_and_es256(server, issuer):
    for token in (issuer.token(subject="alice"), issuer.token(subject="erin", key=issuer.ec)):
        answer = call(server, token)
        assert answer.status_code == 200, answer.text
        assert answer.json()["ticker"] == "T00001"


def test_the_audit_log_names_the_subject_never_the_token(server, issuer):
    token = issuer.token(subject="auditor@example.com")
    assert call(server, token).status_code == 200
    time.sleep(0.3)
    lines = [line for line in audit_lines(server[1]) if line.get("subject") == "auditor@example.com"]
    assert lines and lines[-1]["auth"] == "jwt" and lines[-1]["key_id"] == "jwt:auditor@example.com"
    assert lines[-1]["role"] == "reader" and lines[-1]["status"] == 200
    text = (server[1].root / "audit.log").read_text()
    assert token not in text and token.split(".")[2] not in text


def test_api_keys_keep_working_beside_tokens(server):
    base, world = server
    for header in ("X-API-Key", "Authorization"):
        value = world.keys["reader"] if header == "X-API-Key" else f"Bearer {world.keys['reader']}"
        answer = httpx.post(f"{base}/predict", json={"ticker": "T00002"}, headers={header: value}, timeout=30)
        assert answer.status_code == 200, answer.text
    time.sleep(0.3)
    assert any(line.get("auth") == "key" and line["key_id"] == "reader" for line in audit_lines(world))


def test_an_expired_token_is_refused(server, issuer):
    refused(call(server, issuer.token(lifetime=-120)), 401, "expired")


def test_the_leeway_takes_small_clock_skew_only(server, issuer):
    assert call(server, issuer.token(lifetime=-5)).status_code == 200  # 5 s past exp: within the 30 s leeway
    refused(call(server, issuer.token(nbf=int(time.time()) + 3600)), 401, "not valid yet")


def test_a_token_for_another_audience_is_refused(server, issuer):
    refused(call(server, issuer.token(aud="another-api")), 401, "another audience")


def test_a_token_of_another_issuer_is_refused(server, issuer):
    refused(call(server, issuer.token(iss="https://idp.attacker.example")), 401, "another issuer")


def test_alg_none_is_refused(server, issuer):
    header = b64(json.dumps({"alg": "none", "kid": issuer.rsa.kid, "typ": "JWT"}).encode())
    payload = b64(json.dumps(issuer.claims(scope="stockpred.admin")).encode())
    for token in (f"{header}.{payload}.", f"{header}.{payload}.{b64(b'x')}"):
        refused(call(server, token), 401, "'none' is not accepted")


def test_hs256_signed_with_the_public_key_is_refused(server, issuer):
    """The algorithm confusion attack: the RSA public key (published in the JWKS) used as an HMAC secret."""
    public_pem = issuer.rsa.as_pem(private=False)
    header = b64(json.dumps({"alg": "HS256", "kid": issuer.rsa.kid, "typ": "JWT"}).encode())
    payload = b64(json.dumps(issuer.claims(scope="stockpred.admin")).encode())
    signature = b64(hmac.new(public_pem, f"{header}.{payload}".encode(), hashlib.sha256).digest())
    refused(call(server, f"{header}.{payload}.{signature}", "/admin/reload", {}), 401, "'HS256' is not accepted")


def test_a_tampered_payload_is_refused(server, issuer):
    header, payload, signature = issuer.token(subject="mallory").split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=="))
    claims["scope"] = "stockpred.admin"
    forged = f"{header}.{b64(json.dumps(claims).encode())}.{signature}"
    refused(call(server, forged, "/admin/reload", {}), 401, "bad signature")


def test_garbage_and_an_es256_header_on_an_rsa_key_are_refused(server, issuer):
    refused(call(server, "not.a.jwt"), 401, "not a signed JWT")
    _, payload, signature = issuer.token().split(".")
    header = b64(json.dumps({"alg": "ES256", "kid": issuer.rsa.kid}).encode())
    refused(call(server, f"{header}.{payload}.{signature}"), 401, "does not fit key")


def test_scopes_map_to_roles(server, issuer):
    refused(call(server, issuer.token(scope="openid profile")), 403, "none of the scopes")
    refused(call(server, issuer.token(scope="stockpred.predict"), "/admin/reload", {}), 403, "stockpred.admin")
    assert call(server, issuer.token(scope="stockpred.admin"), "/admin/reload", {}).status_code == 200
    assert call(server, issuer.token(scp=["stockpred.predict"], scope=None)).status_code == 200  # Azure AD's `scp`


def test_an_unknown_kid_is_fetched_once_then_keys_rotate_without_restart(server, issuer):
    """A rotated key is fetched on its first token; made-up kids cost the issuer at most one fetch per interval."""
    assert call(server, issuer.token()).status_code == 200
    time.sleep(MIN_REFRESH_S + 0.2)
    old = issuer.rsa
    issuer.rotate()
    fetches = issuer.requests
    assert call(server, issuer.token(subject="after-rotation")).status_code == 200
    assert issuer.requests == fetches + 1
    issuer.retire(old.kid)
    fetches = issuer.requests
    started = time.monotonic()
    flood = [call(server, issuer.token(header={"kid": f"made-up-{i}"})) for i in range(40)]
    elapsed = time.monotonic() - started
    for answer in flood:
        refused(answer, 401, "unknown signing key")
    assert issuer.requests - fetches <= 1 + elapsed / MIN_REFRESH_S, (issuer.requests - fetches, elapsed)


def test_the_push_stream_takes_a_token_in_the_query(server, issuer):
    base, _ = server
    with httpx.stream("GET", f"{base}/events", params={"access_token": issuer.token()}, timeout=10) as answer:
        assert answer.status_code == 200 and answer.headers["content-type"].startswith("text/event-stream")
    expired = httpx.get(f"{base}/events", params={"access_token": issuer.token(lifetime=-120)}, timeout=10)
    refused(expired, 401, "expired")


def test_a_push_stream_ends_when_its_token_expires(server, issuer):
    base, _ = server
    token = issuer.token(lifetime=2)
    started, lines = time.monotonic(), []
    with httpx.stream("GET", f"{base}/events", params={"access_token": token}, timeout=15) as answer:
        assert answer.status_code == 200
        for line in answer.iter_lines():  # ends when the service closes the stream
            lines.append(line)
    # `exp` is whole seconds (now rounded down + 2): the stream ends 1 to 2 s after the token was issued
    assert "event: expired" in lines and 0.9 < time.monotonic() - started < 10
    assert json.loads(lines[lines.index("event: expired") + 1][len("data: ") :])["error"] == "the access token expired"
