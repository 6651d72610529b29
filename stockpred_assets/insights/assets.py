"""The daily insights report: each trading day's signals, sector view, model health and alerts, rendered by the core
(`stockpred_core.insights`) as an HTML email, written to `<lake>/reports/insights/<day>.html`, shown in the metadata
and emailed to the subscribers who asked for it (`daily_report: true` and an email address)."""

import dagster as dg
import pandas as pd

from stockpred_assets.evaluation.reporting import REPORTS, write_report_file
from stockpred_assets.monitoring.automation import FOLLOWS_THE_DAY
from stockpred_assets.partitions import TIMEZONE, partition_days, trading_days
from stockpred_core.alerts import Subscription, load_subscriptions, read_subscriptions
from stockpred_core.insights.report import (
    alerts_fired,
    build_insights,
    health_from,
    render_html,
    render_markdown,
    render_text,
)
from stockpred_core.io.model_card import CHAMPION_ALIAS, read_model_card
from stockpred_core.notify.channels import EmailChannel, Notification
from stockpred_core.notify.dispatcher import Dispatcher, FileIdempotency, RedisIdempotency, idempotency_key
from stockpred_core.resilience.retry import RetryPolicy
from stockpred_core.settings import PROVIDERS, NotifySettings, load_notify_settings
from stockpred_resources.lake import LakeResource
from stockpred_resources.redis import RedisResource
from stockpred_resources.tracking import MLflowResource


class InsightsConfig(dg.Config):
    top_n: int = 10  # signals in each of the top and bottom tables
    subscriptions_file: str | None = None  # a YAML/JSON subscriptions file, read beside Redis' subscriptions hash
    send: bool = True  # email the run's newest day (a backfill renders every day and sends only the newest)


@dg.asset(
    partitions_def=trading_days,
    backfill_policy=dg.BackfillPolicy.single_run(),
    deps=["predictions", "drift_report"],
    # after the day's drift report (which follows the day's features); predictions are read when present
    automation_condition=FOLLOWS_THE_DAY,
    kinds={"html", "email"},
)
def insights(
    context: dg.AssetExecutionContext,
    config: InsightsConfig,
    lake: LakeResource,
    mlflow_resource: MLflowResource,
    redis: RedisResource,
) -> dg.MaterializeResult:
    """The top and bottom signals with their intervals and sectors, the mean prediction per sector, the champion's
    health (version, family, live rank IC, the drift verdict) and the alerts fired that day (the alerts stream, when
    Redis is configured), as an HTML email report per day. The newest day is emailed once per (day, subscriber):
    only when STOCKPRED_SMTP_HOST is set; otherwise the metadata says why it was not sent."""
    days = partition_days(context)
    client = redis.client() if redis.enabled else None
    version, family, baseline = _champion(context, mlflow_resource)
    predictions = lake.read_range("evaluation", "predictions", days[0], days[-1])
    drift = lake.read_range("monitoring", "drift_summary", days[0], days[-1])
    intervals = _intervals(context, mlflow_resource, predictions)
    sectors = _sectors(lake)
    pages, newest = [], None
    for day in days:
        rows = predictions[pd.to_datetime(predictions["date"]) == day] if len(predictions) else predictions
        day_drift = drift[pd.to_datetime(drift["date"]) == day] if len(drift) else None
        alerts = alerts_fired(client, day, TIMEZONE) if client is not None else []
        if version is None and len(rows):  # no champion card: the model that made the day's predictions
            version, family = str(rows["model_version"].iloc[-1]), str(rows["model_family"].iloc[-1])
        health = health_from(version, family, day_drift, baseline)
        found = build_insights(day, rows, sectors, intervals, health, alerts, config.top_n)
        html = render_html(found, note="" if client is not None else "Alerts: Redis is not configured.")
        location = write_report_file(lake, f"insights/{day:%Y-%m-%d}.html", html.encode("utf-8"))
        pages.append(location)
        newest = (found, html, location)
    found, html, location = newest
    delivery = _send(context, config, lake, client, found, html) if config.send else {"not_sent": "send is off"}
    return dg.MaterializeResult(
        metadata={
            "report": location,
            "preview": dg.MetadataValue.md(render_markdown(found)),
            "days": dg.MetadataValue.int(len(pages)),
            "tickers": dg.MetadataValue.int(found.tickers),
            "alerts_fired": dg.MetadataValue.int(len(found.alerts)),
            "champion": f"v{version} ({family})" if version else "none",
            "emails_sent": dg.MetadataValue.int(delivery.get("sent", 0)),
            "delivery": dg.MetadataValue.json(delivery),
        }
    )


def _champion(context, mlflow_resource: MLflowResource) -> tuple[str | None, str | None, float | None]:
    """The champion's version, family and test rank IC; Nones before the first champion or without the registry."""
    try:
        card = read_model_card(mlflow_resource.client(), mlflow_resource.registered_model, CHAMPION_ALIAS)
    except Exception as exc:  # the report still goes out, saying the champion is unknown
        context.log.warning(f"the champion's card could not be read: {exc}")
        return None, None, None
    if card is None:
        return None, None, None
    return str(card.version), card.family, card.test_metric("rank_ic")


def _intervals(context, mlflow_resource: MLflowResource, predictions: pd.DataFrame) -> dict[str, tuple[float, float]]:
    """Model version -> its residual quantiles (q05, q95), for the versions that made the predictions."""
    out = {}
    versions = predictions["model_version"].dropna().unique() if "model_version" in predictions else []
    for version in versions:
        try:
            card = read_model_card(mlflow_resource.client(), mlflow_resource.registered_model, str(version))
            out[str(version)] = (float(card.residual_q05), float(card.residual_q95))
        except Exception as exc:  # an interval is a nicety: the report shows "-"
            context.log.warning(f"no interval for model version {version}: {exc}")
    return out


def _sectors(lake: LakeResource) -> dict[str, str]:
    """Ticker -> sector, as the providers recorded them at ingestion (the first provider naming a ticker wins)."""
    sectors: dict[str, str] = {}
    for name in reversed(PROVIDERS):
        try:
            sectors.update(lake.read_table("reference", f"sectors_{name}").set_index("ticker")["sector"].to_dict())
        except FileNotFoundError:
            continue
    return sectors


def _recipients(config: InsightsConfig, client) -> list[Subscription]:
    from_file = load_subscriptions(config.subscriptions_file) if config.subscriptions_file else []
    by_name = {s.subscriber: s for s in from_file}
    if client is not None:
        by_name.update({s.subscriber: s for s in read_subscriptions(client)})
    return [s for s in by_name.values() if s.daily_report and "email" in s.channels]


def _send(context, config: InsightsConfig, lake: LakeResource, client, found, html: str) -> dict:
    """Email the report to each recipient once per (day, subscriber): Redis holds the idempotency keys when it is
    configured, else marker files beside the reports (a local lake)."""
    settings: NotifySettings = load_notify_settings()
    if not settings.smtp_host:
        return {"sent": 0, "not_sent": "STOCKPRED_SMTP_HOST is not set: no email channel"}
    recipients = _recipients(config, client)
    if not recipients:
        return {"sent": 0, "not_sent": "no subscription has daily_report: true and an email address"}
    store = lake.lake()
    if client is not None:
        keys = RedisIdempotency(client)
    elif store.fs.protocol in ("file", ("file", "local")):
        keys = FileIdempotency(f"{store.root}/{REPORTS}/insights/sent")
    else:
        return {"sent": 0, "not_sent": "a remote lake needs Redis (STOCKPRED_REDIS_URL) to send each report once"}
    email = EmailChannel(
        settings.smtp_host,
        settings.smtp_port,
        sender=settings.smtp_from,
        username=settings.smtp_username,
        password=settings.smtp_password.get_secret_value() if settings.smtp_password else None,
        starttls=settings.smtp_starttls,
        timeout_s=settings.smtp_timeout_seconds,
    )
    retry = RetryPolicy(max_attempts=settings.notify_max_attempts, backoff_base_s=settings.notify_backoff_seconds)
    dispatcher = Dispatcher(client, {"email": email}, store=keys, retry=retry)
    notification = Notification(found.title, render_text(found), html)
    ref = f"insights:{found.day:%Y-%m-%d}"
    statuses = {}
    for subscription in recipients:
        key = idempotency_key(ref, subscription.subscriber, "email")
        delivery = dispatcher.deliver(
            "email", subscription.channels["email"], notification, key, subscription.subscriber, ref
        )
        statuses[subscription.subscriber] = delivery.status if delivery.reason is None else f"dead: {delivery.reason}"
    context.log.info(f"{ref}: {statuses}")
    return {"sent": sum(s == "sent" for s in statuses.values()), "recipients": statuses}
