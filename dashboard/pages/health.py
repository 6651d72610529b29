"""Model health: the champion and the history of registered versions, the live rank IC beside the backtest's, drift
per feature from the latest drift report, and how fresh each source is."""

from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go
from dash import Input, Output, dash_table, dcc, html

from dashboard.data import Data

PATH = "/health"
TITLE = "Model health"
LIVE_IC = ("live_rank_ic", "rank_ic")  # the drift summary's live figure, under either name


def layout(data: Data) -> html.Div:
    return html.Div(
        [
            html.Div(id="health-champion", className="status"),
            dcc.Graph(id="health-drift"),
            dcc.Graph(id="health-ic"),
            html.H4("Registered versions"),
            dash_table.DataTable(id="health-versions", page_size=10),
            html.H4("Data freshness"),
            dash_table.DataTable(id="health-freshness"),
        ]
    )


def champion_text(card) -> str:
    if card is None:
        return "No champion in the registry yet."
    test = ", ".join(f"{k} {v:.4f}" for k, v in card.metrics.items() if k.startswith("test_")) or "no test metrics"
    return f"Champion: {card.name} v{card.version} ({card.family}, {card.label} label, horizon {card.horizon}); {test}"


def drift_figure(drift: pd.DataFrame) -> go.Figure:
    fig = go.Figure()
    if drift.empty:
        return fig.update_layout(title="No drift report yet")
    day = pd.to_datetime(drift["date"]).max()
    fig.add_bar(x=drift["feature"], y=drift["psi"], name="PSI")
    if "ks" in drift:
        fig.add_scatter(x=drift["feature"], y=drift["ks"], name="KS", mode="markers", yaxis="y2")
    return fig.update_layout(
        title=f"Drift per feature, {day:%Y-%m-%d}", yaxis2={"overlaying": "y", "side": "right"}, height=340
    )


def ic_figure(days: pd.DataFrame) -> go.Figure:
    fig = go.Figure()
    live = next((c for c in LIVE_IC if c in days), None)
    if days.empty or live is None:
        return fig.update_layout(title="No live rank IC recorded yet")
    fig.add_scatter(x=days["date"], y=days[live], name="live rank IC")
    if "baseline_rank_ic" in days:
        fig.add_scatter(x=days["date"], y=days["baseline_rank_ic"], name="backtest rank IC", line={"dash": "dash"})
    return fig.update_layout(title="Live rank IC vs the backtest's", height=300)


def register(app, data: Data) -> None:
    @app.callback(
        Output("health-champion", "children"),
        Output("health-drift", "figure"),
        Output("health-ic", "figure"),
        Output("health-versions", "data"),
        Output("health-freshness", "data"),
        Input("page", "pathname"),
    )
    def refresh(_):
        versions = data.versions()
        return (
            champion_text(data.champion()),
            drift_figure(data.drift()),
            ic_figure(data.drift_days()),
            versions.to_dict("records"),
            data.freshness().to_dict("records"),
        )
