"""Each channel against a real local server: SMTP (smtpd), and HTTP with recorded replies (Slack's "ok", Twilio's
documented Message resource and error shapes, a generic webhook)."""

from __future__ import annotations

import base64
import json
from urllib.parse import parse_qsl

import pytest
from support.recorded_server import Reply

from stockpred_core.notify.channels import (
    EmailChannel,
    Notification,
    PermanentDeliveryError,
    SlackChannel,
    SmsChannel,
    TransientDeliveryError,
    WebhookChannel,
    channels_from_settings,
    signature,
)
from stockpred_core.settings import load_notify_settings

SID, TOKEN = "AC0123456789abcdef0123456789abcdef", "tw-auth-token-SECRET"
MESSAGES = f"/2010-04-01/Accounts/{SID}/Messages.json"
# The Message resource as Twilio's API reference documents the reply to a create (POST .../Messages.json, 201).
TWILIO_CREATED = {
    "account_sid": SID,
    "api_version": "2010-04-01",
    "body": "stockpred alert",
    "date_created": "Thu, 24 Aug 2023 05:01:45 +0000",
    "date_sent": None,
    "date_updated": "Thu, 24 Aug 2023 05:01:45 +0000",
    "direction": "outbound-api",
    "error_code": None,
    "error_message": None,
    "from": "+15557122661",
    "num_media": "0",
    "num_segments": "1",
    "price": None,
    "price_unit": "USD",
    "messaging_service_sid": None,
    "sid": "SMaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
    "status": "queued",
    "subresource_uris": {"media": f"/2010-04-01/Accounts/{SID}/Messages/SMaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa/Media.json"},
    "to": "+15558675310",
    "uri": f"/2010-04-01/Accounts/{SID}/Messages/SMaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.json",
}
# Twilio's documented error body (here: 21211, an invalid 'To' number, HTTP 400)
TWILIO_INVALID_TO = {
    "code": 21211,
    "message": "The 'To' number +1555 is not a valid phone number.",
    "more_info": "https://www.twilio.com/docs/errors/21211",
    "status": 400,
}
NOTE = Notification("subject line", "plain text", "<p>html</p>", {"id": "1-0", "ticker": "AAPL"})


def test_email_is_delivered_with_text_html_and_a_stable_message_id(smtp_server):
    channel = EmailChannel("127.0.0.1", smtp_server.port, sender="alerts@stockpred.test")
    receipt = channel.send("desk@example.com", NOTE, "k" * 32)
    [message] = smtp_server.messages
    assert message["Subject"] == "subject line" and message["To"] == "desk@example.com"
    assert message["Message-ID"] == receipt == f"<{'k' * 32}@stockpred>"
    assert message.get_body(("plain",)).get_content().strip() == "plain text"
    assert message.get_body(("html",)).get_content().strip() == "<p>html</p>"
    assert smtp_server.envelopes == [("alerts@stockpred.test", ["desk@example.com"])]


def test_smtp_4xx_is_transient_and_5xx_permanent(smtp_server):
    channel = EmailChannel("127.0.0.1", smtp_server.port, password="smtp-SECRET")
    smtp_server.fail_next = ["451 4.3.0 try again later", "550 5.1.1 mailbox unavailable"]
    with pytest.raises(TransientDeliveryError, match="451"):
        channel.send("a@example.com", NOTE, "k1")
    with pytest.raises(PermanentDeliveryError, match="550") as raised:
        channel.send("a@example.com", NOTE, "k2")
    assert "smtp-SECRET" not in str(raised.value)


def test_an_unreachable_smtp_server_is_transient():
    with pytest.raises(TransientDeliveryError, match="email"):
        EmailChannel("127.0.0.1", 1, timeout_s=1).send("a@example.com", NOTE, "k")


def test_slack_posts_text_with_the_idempotency_key(http_server):
    http_server.route("/services/T0/B0/XYZ", Reply.text("ok", 200))
    SlackChannel().send(f"{http_server.url}/services/T0/B0/XYZ", NOTE, "key-1")
    [hit] = http_server.posts("/services/T0/B0/XYZ")
    assert json.loads(hit.body) == {"text": "*subject line*\nplain text"}
    assert hit.headers["idempotency-key"] == "key-1"


def test_slack_default_uses_the_configured_webhook_and_never_names_it(http_server):
    url = f"{http_server.url}/services/T0/B0/SECRETPATH"
    http_server.route("/services/T0/B0/SECRETPATH", Reply.text("invalid_token", 403))
    with pytest.raises(PermanentDeliveryError, match="slack: HTTP 403") as raised:
        SlackChannel(url).send("default", NOTE, "key-1")
    assert "SECRETPATH" not in str(raised.value)
    with pytest.raises(PermanentDeliveryError, match="STOCKPRED_SLACK_WEBHOOK_URL"):
        SlackChannel().send("default", NOTE, "key-1")


def test_sms_posts_the_form_with_basic_auth_and_returns_the_message_sid(http_server):
    http_server.route(MESSAGES, Reply.json(json.dumps(TWILIO_CREATED), status=201))
    channel = SmsChannel(SID, TOKEN, "+15557122661", base_url=http_server.url)
    assert channel.send("+15558675310", NOTE, "key-2") == TWILIO_CREATED["sid"]
    [hit] = http_server.posts(MESSAGES)
    assert dict(parse_qsl(hit.body.decode())) == {
        "To": "+15558675310",
        "From": "+15557122661",
        "Body": "subject line: plain text",
    }
    assert hit.headers["authorization"] == "Basic " + base64.b64encode(f"{SID}:{TOKEN}".encode()).decode()
    assert hit.headers["i-twilio-idempotency-token"] == "key-2"


def test_sms_400_is_permanent_without_the_token(http_server):
    http_server.route(MESSAGES, Reply.json(json.dumps(TWILIO_INVALID_TO), status=400))
    with pytest.raises(PermanentDeliveryError, match="21211") as raised:
        SmsChannel(SID, TOKEN, "+15557122661", base_url=http_server.url).send("+1555", NOTE, "k")
    assert TOKEN not in str(raised.value)


def test_webhook_posts_the_alert_signed(http_server):
    http_server.route("/hook", Reply.json("{}"))
    WebhookChannel("whsec-SECRET", clock=lambda: 1_700_000_000).send(f"{http_server.url}/hook", NOTE, "key-3")
    [hit] = http_server.posts("/hook")
    assert json.loads(hit.body) == {"id": "1-0", "ticker": "AAPL"}
    assert hit.headers["idempotency-key"] == "key-3"
    assert hit.headers["x-stockpred-signature"] == signature("whsec-SECRET", 1_700_000_000, hit.body)
    assert hit.headers["x-stockpred-signature"].startswith("t=1700000000,v1=")


def test_webhook_5xx_is_transient(http_server):
    http_server.route("/hook", Reply.text("down", 503))
    with pytest.raises(TransientDeliveryError, match="503"):
        WebhookChannel().send(f"{http_server.url}/hook", NOTE, "k")


def test_channels_come_from_the_environment_and_secrets_never_print():
    settings = load_notify_settings(
        {
            "STOCKPRED_SMTP_HOST": "smtp.example.com",
            "STOCKPRED_SMTP_PASSWORD": "pw-SECRET",
            "STOCKPRED_TWILIO_ACCOUNT_SID": SID,
            "STOCKPRED_TWILIO_AUTH_TOKEN": TOKEN,
            "STOCKPRED_TWILIO_FROM": "+15557122661",
        }
    )
    assert "pw-SECRET" not in repr(settings) and TOKEN not in repr(settings)
    assert sorted(channels_from_settings(settings)) == ["email", "slack", "sms", "webhook"]
    assert sorted(channels_from_settings(load_notify_settings({}))) == ["slack", "webhook"]
