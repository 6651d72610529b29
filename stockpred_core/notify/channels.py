"""The notification channels: email over SMTP, a Slack-style incoming webhook, SMS through a Twilio-style REST API and
a generic signed webhook. Each sends one notification to one address, once (the dispatcher retries), and raises
`TransientDeliveryError` (worth another try: 5xx, 429, timeouts, resets, SMTP 4xx) or `PermanentDeliveryError` (the
same request would fail again: other 4xx, SMTP 5xx, a channel that is not configured).

The HTTP channels go through the project's one HTTP client (`stockpred_core.io.http_client.HttpClient`, one attempt
per call: retries are the dispatcher's, so that every channel retries alike). Errors are redacted as they are made:
they name the channel, never a webhook URL, a password or a token.
"""

from __future__ import annotations

import hashlib
import hmac
import smtplib
import ssl
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.utils import formatdate
from typing import Any, Protocol

import orjson

from stockpred_core.io.http_client import HttpClient, HttpStatusError, ProviderError
from stockpred_core.redaction import redact
from stockpred_core.resilience.retry import RetryPolicy

IDEMPOTENCY_HEADER = "Idempotency-Key"
SIGNATURE_HEADER = "X-Stockpred-Signature"  # "t=<unix seconds>,v1=<hex HMAC-SHA256 of '<t>.<body>'>"
SMS_MAX_CHARS = 1600  # Twilio's limit on a message body
_TRANSIENT_HTTP = {408, 409, 425}  # besides 429 and 5xx, which the client already treats as transient


@dataclass(frozen=True)
class Notification:
    """What a channel sends: a subject and a plain text (every channel), an HTML body (email) and the JSON document
    a generic webhook posts (the alert with its `id`)."""

    subject: str
    text: str
    html: str | None = None
    payload: Mapping[str, Any] = field(default_factory=dict)


class DeliveryError(Exception):
    """A notification was not delivered; the message is redacted and safe to log and to dead-letter."""

    transient = False

    def __init__(self, message: str, secrets: Iterable[str | None] = ()) -> None:
        super().__init__(redact(message, secrets))


class TransientDeliveryError(DeliveryError):
    transient = True


class PermanentDeliveryError(DeliveryError):
    transient = False


class Channel(Protocol):
    """Sends one notification to `address`; returns a receipt (a message id) or raises a DeliveryError."""

    name: str

    def send(self, address: str, notification: Notification, idempotency_key: str) -> str: ...

    def secrets(self, address: str) -> list[str]:
        """What must never appear in a message about a delivery to `address`."""
        ...


# --- email --------------------------------------------------------------------------------------------------------


class EmailChannel:
    """SMTP with `smtplib`: STARTTLS when `starttls`, LOGIN when a username is set. The Message-ID is derived from the
    idempotency key, so a resend that slipped through is recognisably the same message."""

    name = "email"

    def __init__(
        self,
        host: str,
        port: int = 587,
        *,
        sender: str = "stockpred@localhost",
        username: str | None = None,
        password: str | None = None,
        starttls: bool = False,
        timeout_s: float = 10.0,
    ) -> None:
        self.host, self.port, self.sender = host, port, sender
        self.username, self._password, self.starttls, self.timeout_s = username, password, starttls, timeout_s

    def secrets(self, address: str) -> list[str]:
        return [s for s in (self._password,) if s]

    def send(self, address: str, notification: Notification, idempotency_key: str) -> str:
        message = EmailMessage()
        message["Subject"] = notification.subject
        message["From"] = self.sender
        message["To"] = address
        message["Date"] = formatdate(localtime=False)
        message["Message-ID"] = f"<{idempotency_key}@stockpred>"
        message["X-Stockpred-Idempotency-Key"] = idempotency_key
        message.set_content(notification.text)
        if notification.html is not None:
            message.add_alternative(notification.html, subtype="html")
        try:
            with smtplib.SMTP(self.host, self.port, timeout=self.timeout_s) as smtp:
                if self.starttls:
                    smtp.starttls(context=ssl.create_default_context())
                if self.username:
                    smtp.login(self.username, self._password or "")
                refused = smtp.send_message(message)
        except smtplib.SMTPRecipientsRefused as exc:
            codes = [code for code, _ in exc.recipients.values()]
            raise self._error(min(codes), "recipient refused", exc.recipients) from None
        except smtplib.SMTPResponseException as exc:
            raise self._error(exc.smtp_code, "refused", exc.smtp_error) from None
        except (smtplib.SMTPException, OSError) as exc:  # disconnects, timeouts, connection refused
            raise TransientDeliveryError(f"email: SMTP {type(exc).__name__}: {exc}", self.secrets(address)) from None
        if refused:
            code = min(code for code, _ in refused.values())
            raise self._error(code, "recipient refused", refused)
        return message["Message-ID"]

    def _error(self, code: int, what: str, detail: Any) -> DeliveryError:
        if isinstance(detail, bytes):
            detail = detail.decode(errors="replace")
        kind = TransientDeliveryError if 400 <= code < 500 else PermanentDeliveryError
        return kind(f"email: SMTP {code} {what}: {detail}", [self._password])


# --- HTTP channels ---------------------------------------------------------------------------------------------------


def _http_client(secrets: Iterable[str | None], timeout_s: float) -> HttpClient:
    # one attempt per send: the dispatcher retries every channel the same way
    return HttpClient("", timeout_s=timeout_s, retry=RetryPolicy(max_attempts=1), secrets=[s for s in secrets if s])


def _post(client: HttpClient, name: str, url: str, secrets: list[str], **request: Any):
    """POST through the shared client; its errors as DeliveryErrors that name the channel only."""
    try:
        return client.post(url, what=f"{name} POST", **request)
    except HttpStatusError as exc:
        kind = TransientDeliveryError if exc.status in _TRANSIENT_HTTP else PermanentDeliveryError
        raise kind(f"{name}: HTTP {exc.status}: {exc.text}", secrets) from None
    except ProviderError as exc:
        kind = TransientDeliveryError if exc.retryable else PermanentDeliveryError
        raise kind(f"{name}: {exc}", secrets) from None


class SlackChannel:
    """A Slack-style incoming webhook: POST {"text": ...}. The address is the webhook URL, or `default` for the one
    configured (STOCKPRED_SLACK_WEBHOOK_URL). A webhook URL is a secret: it never appears in errors."""

    name = "slack"

    def __init__(self, default_url: str | None = None, *, timeout_s: float = 10.0) -> None:
        self._default = default_url
        self._client = _http_client([default_url], timeout_s)

    def secrets(self, address: str) -> list[str]:
        return [s for s in (address, self._default) if s and s != "default"]

    def send(self, address: str, notification: Notification, idempotency_key: str) -> str:
        url = self._default if address == "default" else address
        if not url:
            raise PermanentDeliveryError("slack: `default` names no webhook: STOCKPRED_SLACK_WEBHOOK_URL is not set")
        text = f"*{notification.subject}*\n{notification.text}"
        reply = _post(
            self._client,
            self.name,
            url,
            self.secrets(address),
            json_body={"text": text},
            headers={IDEMPOTENCY_HEADER: idempotency_key},
        )
        return reply.request_id


class SmsChannel:
    """SMS through a Twilio-style REST API: a form POST (To, From, Body) to
    `{base_url}/2010-04-01/Accounts/{account_sid}/Messages.json` with basic auth (SID, auth token). The receipt is the
    message's `sid`; a reply whose `status` is failed/undelivered is a permanent failure."""

    name = "sms"

    def __init__(
        self,
        account_sid: str,
        auth_token: str,
        sender: str,
        *,
        base_url: str = "https://api.twilio.com",
        timeout_s: float = 10.0,
    ) -> None:
        self.account_sid, self._token, self.sender = account_sid, auth_token, sender
        self.url = f"{base_url.rstrip('/')}/2010-04-01/Accounts/{account_sid}/Messages.json"
        self._client = _http_client([auth_token], timeout_s)

    def secrets(self, address: str) -> list[str]:
        return [self._token]

    def send(self, address: str, notification: Notification, idempotency_key: str) -> str:
        body = f"{notification.subject}: {notification.text}"[:SMS_MAX_CHARS]
        reply = _post(
            self._client,
            self.name,
            self.url,
            self.secrets(address),
            form={"To": address, "From": self.sender, "Body": body},
            auth=(self.account_sid, self._token),
            headers={IDEMPOTENCY_HEADER: idempotency_key, "I-Twilio-Idempotency-Token": idempotency_key},
        )
        payload = reply.payload if isinstance(reply.payload, Mapping) else {}
        if payload.get("status") in ("failed", "undelivered"):
            detail = f"{payload.get('error_code')} {payload.get('error_message')}"
            raise PermanentDeliveryError(f"sms: message {payload.get('status')}: {detail}", [self._token])
        if not payload.get("sid"):
            raise TransientDeliveryError("sms: the reply has no message sid", [self._token])
        return str(payload["sid"])


def signature(secret: str, timestamp: int, body: bytes) -> str:
    """The webhook signature header's value: `t=<timestamp>,v1=<hex HMAC-SHA256 of b"<timestamp>." + body>`. The
    receiver recomputes it with the shared secret and rejects old timestamps (replays)."""
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


class WebhookChannel:
    """A generic webhook: POST the alert as JSON, with the `Idempotency-Key` header and, when a secret is
    configured, the `X-Stockpred-Signature` header (see `signature`). The URL is treated as a secret."""

    name = "webhook"

    def __init__(self, secret: str | None = None, *, timeout_s: float = 10.0, clock=time.time) -> None:
        self._secret, self._clock = secret, clock
        self._client = _http_client([secret], timeout_s)

    def secrets(self, address: str) -> list[str]:
        return [s for s in (address, self._secret) if s]

    def send(self, address: str, notification: Notification, idempotency_key: str) -> str:
        body = orjson.dumps(dict(notification.payload) or {"subject": notification.subject, "text": notification.text})
        headers = {"Content-Type": "application/json", IDEMPOTENCY_HEADER: idempotency_key}
        if self._secret:
            headers[SIGNATURE_HEADER] = signature(self._secret, int(self._clock()), body)
        reply = _post(self._client, self.name, address, self.secrets(address), content=body, headers=headers)
        return reply.request_id


def channels_from_settings(settings) -> dict[str, Channel]:
    """The channels the settings (`stockpred_core.settings.NotifySettings`) configure: email with an SMTP host, SMS
    with a Twilio account; Slack and the generic webhook always (their URLs are the subscribers' addresses)."""

    def secret(value) -> str | None:
        return value.get_secret_value() if value is not None else None

    channels: dict[str, Channel] = {}
    if settings.smtp_host:
        channels["email"] = EmailChannel(
            settings.smtp_host,
            settings.smtp_port,
            sender=settings.smtp_from,
            username=settings.smtp_username,
            password=secret(settings.smtp_password),
            starttls=settings.smtp_starttls,
            timeout_s=settings.smtp_timeout_seconds,
        )
    channels["slack"] = SlackChannel(secret(settings.slack_webhook_url))
    if settings.twilio_account_sid and settings.twilio_auth_token and settings.twilio_from:
        channels["sms"] = SmsChannel(
            settings.twilio_account_sid,
            secret(settings.twilio_auth_token),
            settings.twilio_from,
            base_url=settings.twilio_base_url,
        )
    channels["webhook"] = WebhookChannel(secret(settings.webhook_secret))
    return channels
