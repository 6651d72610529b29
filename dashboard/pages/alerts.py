"""Alerts: the feed of alerts from the events stream (new ones appear without reload) and the subscriptions, with a
form to create, edit (click a row to load it) and delete one. Rules are written `kind [value] [@channel,...]`,
separated by `;`: `above 0.02 @email; top_n 10; interval_excludes_zero`; the subscriber's channels as
`email=a@example.com, slack=default`. Saving keeps what the form does not show (quiet hours, rate limit, ...)."""

from __future__ import annotations

import plotly.graph_objects as go
from dash import Input, Output, State, ctx, dash_table, dcc, html, no_update

from dashboard.auth import restricted_to
from dashboard.data import Data
from stockpred_core.alerts import DEFAULT_COOLDOWN_S, Subscription, SubscriptionError, parse_subscription

PATH = "/alerts"
TITLE = "Alerts"
_RANK = {"top_n", "bottom_n"}


def layout(data: Data) -> html.Div:
    return html.Div(
        [
            html.H4("Feed"),
            html.Div(id="alerts-status", className="status"),
            dcc.Graph(id="alerts-chart"),
            dash_table.DataTable(id="alerts-feed", page_size=10),
            html.H4("Subscriptions"),
            html.Div(
                [
                    dcc.Input(id="sub-subscriber", placeholder="subscriber"),
                    dcc.Input(id="sub-tickers", placeholder="tickers (comma-separated; empty: all)"),
                    dcc.Input(
                        id="sub-rules", placeholder="rules: above 0.02 @email; top_n 10", style={"width": "20em"}
                    ),
                    dcc.Input(id="sub-channels", placeholder="channels: email=a@example.com, slack=default"),
                    dcc.Input(id="sub-cooldown", type="number", value=DEFAULT_COOLDOWN_S, placeholder="cool-down s"),
                    html.Button("Save", id="sub-save"),
                    html.Button("Delete", id="sub-delete"),
                ],
                className="filters",
            ),
            html.Div(id="sub-message", className="status"),
            dash_table.DataTable(id="sub-table", columns=[{"name": c, "id": c} for c in _SUB_COLUMNS]),
        ]
    )


_SUB_COLUMNS = ["subscriber", "tickers", "rules", "channels", "cooldown_s"]


def parse_rules(text: str) -> list[dict]:
    """`above 0.02 @email,slack; top_n 10` -> the rules' dicts (validated by the subscription)."""
    rules = []
    for part in (text or "").split(";"):
        words = part.split()
        if not words:
            continue
        rule: dict = {"kind": words[0]}
        for word in words[1:]:
            if word.startswith("@"):
                rule["channels"] = [c for c in word[1:].split(",") if c]
            else:
                rule["n" if words[0] in _RANK else "threshold"] = word
        rules.append(rule)
    return rules


def parse_channels(text: str) -> dict[str, str]:
    """`email=a@example.com, slack=default` -> {channel: address}."""
    pairs = [item.split("=", 1) for item in (text or "").split(",") if "=" in item]
    return {name.strip(): address.strip() for name, address in pairs}


def rules_text(subscription: Subscription) -> str:
    def one(rule) -> str:
        channels = getattr(rule, "channels", None)
        return f"{rule.name} @{','.join(channels)}" if channels else rule.name

    return "; ".join(one(rule) for rule in subscription.rules)


def channels_text(subscription: Subscription) -> str:
    return ", ".join(f"{k}={v}" for k, v in (getattr(subscription, "channels", None) or {}).items())


def from_form(
    subscriber: str, tickers: str, rules: str, cooldown, channels: str = "", existing: Subscription | None = None
) -> Subscription:
    """The subscription the form describes, over what `existing` holds that the form does not show;
    SubscriptionError names what is wrong."""
    data = existing.model_dump(mode="json", exclude_none=True) if existing is not None else {}
    data.update(subscriber=(subscriber or "").strip(), rules=parse_rules(rules))
    names = [t.strip().upper() for t in (tickers or "").split(",") if t.strip()]
    data.pop("tickers", None)
    if names:
        data["tickers"] = names
    if cooldown not in (None, ""):
        data["cooldown_s"] = cooldown
    if parse_channels(channels) or "channels" in data:
        data["channels"] = parse_channels(channels)
    return parse_subscription(data)


def subscription_rows(subscriptions: list[Subscription]) -> list[dict]:
    return [
        {
            "subscriber": s.subscriber,
            "tickers": ", ".join(s.tickers) if s.tickers else "all",
            "rules": rules_text(s),
            "channels": channels_text(s),
            "cooldown_s": s.cooldown_s,
        }
        for s in subscriptions
    ]


def feed_figure(feed) -> go.Figure:
    fig = go.Figure()
    if feed.empty:
        return fig.update_layout(title="No alerts yet", height=220)
    counts = feed.groupby("rule").size()
    fig.add_bar(x=counts.index, y=counts.to_numpy(), name="alerts")
    return fig.update_layout(title=f"The last {len(feed)} alerts by rule", height=220, margin={"t": 40, "b": 30})


def register(app, data: Data) -> None:
    @app.callback(
        Output("alerts-feed", "data"),
        Output("alerts-chart", "figure"),
        Output("alerts-status", "children"),
        Input("live", "data"),
        Input("page", "pathname"),
    )
    def feed(live, _):
        table = data.alert_feed()
        own = restricted_to()
        if own is not None and len(table):
            table = table[table["subscriber"] == own]
        newest = table["id"].iloc[0] if len(table) else "-"
        return table.to_dict("records"), feed_figure(table), f"{len(table)} alerts shown, newest {newest}"

    @app.callback(
        Output("sub-table", "data"),
        Output("sub-message", "children"),
        Input("sub-save", "n_clicks"),
        Input("sub-delete", "n_clicks"),
        Input("page", "pathname"),
        State("sub-subscriber", "value"),
        State("sub-tickers", "value"),
        State("sub-rules", "value"),
        State("sub-cooldown", "value"),
        State("sub-channels", "value"),
    )
    def change(_save, _delete, _page, subscriber, tickers, rules, cooldown, channels):
        message, action, own = "", ctx.triggered_id, restricted_to()
        if own is not None and action in ("sub-save", "sub-delete"):
            subscriber = (subscriber or "").strip() or own
            if subscriber != own:
                action, message = None, f"not saved: you may manage your own subscription only ({own})"
        if action == "sub-save":
            try:
                known = {s.subscriber: s for s in data.subscriptions()}
                subscription = from_form(subscriber, tickers, rules, cooldown, channels, known.get(subscriber))
                data.save_subscription(subscription)
                message = f"saved {subscription.subscriber}: {rules_text(subscription)}"
            except (SubscriptionError, RuntimeError) as exc:
                message = f"not saved: {exc}"
        elif action == "sub-delete" and subscriber:
            data.delete_subscription(subscriber.strip())
            message = f"deleted {subscriber.strip()}"
        return subscription_rows([s for s in data.subscriptions() if own in (None, s.subscriber)]), message

    @app.callback(
        Output("sub-subscriber", "value"),
        Output("sub-tickers", "value"),
        Output("sub-rules", "value"),
        Output("sub-cooldown", "value"),
        Output("sub-channels", "value"),
        Input("sub-table", "active_cell"),
        State("sub-table", "data"),
        prevent_initial_call=True,
    )
    def edit(cell, rows):
        if not cell or not rows:
            return (no_update,) * 5
        row = rows[cell["row"]]
        tickers = "" if row["tickers"] == "all" else row["tickers"]
        return row["subscriber"], tickers, row["rules"], row["cooldown_s"], row["channels"]
