"""Ticker: the price with its SMAs and Bollinger bands (the features table), the prediction history against the
realized return with the interval band, and the ticker's live online vector."""

from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go
from dash import Input, Output, dcc, html

from dashboard.data import Data

PATH = "/ticker"
TITLE = "Ticker"


def layout(data: Data) -> html.Div:
    tickers = data.tickers()
    return html.Div(
        [
            dcc.Dropdown(tickers, tickers[0] if tickers else None, id="ticker-choice", clearable=False),
            html.Div(id="ticker-live", className="status"),
            dcc.Graph(id="ticker-price"),
            dcc.Graph(id="ticker-predictions"),
        ]
    )


def price_figure(history: pd.DataFrame, ticker: str) -> go.Figure:
    fig = go.Figure()
    if history.empty:
        return fig.update_layout(title=f"{ticker}: no feature rows")
    dates = history["date"]
    fig.add_scatter(x=dates, y=history["bb_upper"], name="Bollinger upper", line={"width": 0}, showlegend=False)
    fig.add_scatter(x=dates, y=history["bb_lower"], name="Bollinger (20, 2)", fill="tonexty", line={"width": 0},
                    fillcolor="rgba(100,100,200,0.15)")  # fmt: skip
    fig.add_scatter(x=dates, y=history["close"], name="close", line={"color": "black"})
    for column in ("sma_20", "sma_50"):
        if column in history:
            fig.add_scatter(x=dates, y=history[column], name=column.upper().replace("_", " "))
    return fig.update_layout(title=f"{ticker}: price", height=360, margin={"t": 40, "b": 30})


def prediction_figure(history: pd.DataFrame, ticker: str) -> go.Figure:
    fig = go.Figure()
    if history.empty:
        return fig.update_layout(title=f"{ticker}: no predictions")
    dates = history["date"]
    fig.add_scatter(x=dates, y=history["interval_high"], line={"width": 0}, showlegend=False, name="high")
    fig.add_scatter(x=dates, y=history["interval_low"], fill="tonexty", line={"width": 0}, name="90% interval",
                    fillcolor="rgba(42,157,143,0.2)")  # fmt: skip
    fig.add_scatter(x=dates, y=history["prediction"], name="predicted", line={"color": "#2a9d8f"})
    fig.add_scatter(x=dates, y=history["realized"], name="realized", mode="markers", marker={"color": "#264653"})
    return fig.update_layout(
        title=f"{ticker}: predicted vs realized return", yaxis_tickformat=".1%", height=320, margin={"t": 40}
    )


def live_text(vector: dict | None) -> str:
    if vector is None:
        return "no online vector"
    when = vector.get("as_of") or vector.get("date", "-")
    close = vector.get("close")
    return f"online vector: close {close:.2f} as of {when}" if close is not None else f"online vector as of {when}"


def register(app, data: Data) -> None:
    @app.callback(
        Output("ticker-price", "figure"), Output("ticker-predictions", "figure"), Input("ticker-choice", "value")
    )
    def charts(ticker):
        if not ticker:
            return go.Figure(), go.Figure()
        return price_figure(data.ticker_history(ticker), ticker), prediction_figure(
            data.prediction_history(ticker), ticker
        )

    @app.callback(Output("ticker-live", "children"), Input("ticker-choice", "value"), Input("live", "data"))
    def live(ticker, _):
        return live_text(data.online_vector(ticker)) if ticker else ""
