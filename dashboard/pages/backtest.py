"""Backtest: the latest walk-forward backtest's out-of-sample predictions against what was realized: the long-short
book's equity curve and drawdown, the daily IC and rank IC, and a per-year table."""

from __future__ import annotations

import plotly.graph_objects as go
from dash import Input, Output, dash_table, dcc, html

from dashboard.data import Data

PATH = "/backtest"
TITLE = "Backtest"
IC_WINDOW = 20  # sessions in the IC's rolling mean


def layout(data: Data) -> html.Div:
    return html.Div(
        [
            html.Div(id="backtest-title", className="status"),
            dcc.Graph(id="backtest-equity"),
            dcc.Graph(id="backtest-drawdown"),
            dcc.Graph(id="backtest-ic"),
            dash_table.DataTable(id="backtest-years"),
        ]
    )


def figures(result: dict | None) -> tuple[go.Figure, go.Figure, go.Figure]:
    if result is None:
        empty = go.Figure().update_layout(title="No backtest report yet")
        return empty, empty, empty
    equity = go.Figure(go.Scatter(x=result["equity"].index, y=result["equity"], name="long-short"))
    equity.update_layout(title="Equity of the long-short book (top/bottom fifth, before costs)", height=300)
    drawdown = go.Figure(go.Scatter(x=result["drawdown"].index, y=result["drawdown"], fill="tozeroy"))
    drawdown.update_layout(title="Drawdown", yaxis_tickformat=".0%", height=240)
    ic = go.Figure()
    for name in ("ic", "rank_ic"):
        series = result[name]
        ic.add_scatter(x=series.index, y=series.rolling(IC_WINDOW, min_periods=1).mean(), name=f"{name} ({IC_WINDOW}d)")
    ic.update_layout(title="IC over time", height=280)
    return equity, drawdown, ic


def register(app, data: Data) -> None:
    @app.callback(
        Output("backtest-title", "children"),
        Output("backtest-equity", "figure"),
        Output("backtest-drawdown", "figure"),
        Output("backtest-ic", "figure"),
        Output("backtest-years", "data"),
        Input("page", "pathname"),
    )
    def refresh(_):
        result = data.backtest()
        title = f"Backtest of week {result['week']}" if result else "No backtest report in the lake yet"
        years = result["per_year"].round(4).to_dict("records") if result else []
        return (title, *figures(result), years)
