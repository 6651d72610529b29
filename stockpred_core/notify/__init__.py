"""Notifications: alerts and reports to people by email (SMTP), Slack-style webhook, SMS (Twilio-style REST) and a
generic signed webhook, delivered reliably (retries with backoff, dead letters, idempotency, per-subscriber rate
limits, quiet hours).

- `channels`: the four channels and the notification they send;
- `message`: an alert as a notification;
- `dispatcher`: delivery with its guarantees (see its docstring);
- `consumer`: the loop that delivers the events stream's alerts (a Redis consumer group);
- `cli`: `stockpred-notify`.

Subscribers' addresses and delivery settings are part of their alert subscription (`stockpred_core.alerts`); the
channels' endpoints and secrets come from the environment only (`stockpred_core.settings.NotifySettings`).
"""
