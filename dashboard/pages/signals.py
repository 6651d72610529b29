"""Signals: the latest predictions for the universe ranked, with interval, confidence, top contributions and sector;
filters by sector, minimum confidence and side; a CSV download. Refreshed intraday answers replace a ticker's row."""

from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go
from dash import Input, Output, State, dash_table, dcc, html

from dashboard.data import Data

PATH = "/"
TITLE = "Signals"
CHART_ROWS = 20  # the chart shows the strongest longs and shorts
PERCENT = {"specifier": ".2%"}


def layout(data: Data) -> html.Div:
    sectors = sorted(set(data.sectors().values()))
    return html.Div(
        [
            html.Div(
                [
                    dcc.Dropdown(sectors, multi=True, id="signals-sector", placeholder="all sectors"),
                    html.Label("min confidence"),
                    dcc.Slider(0, 1, 0.1, value=0, id="signals-confidence"),
                    dcc.RadioItems(["all", "long", "short"], "all", id="signals-side", inline=True),
                    html.Button("Download CSV", id="signals-download-button"),
                    dcc.Download(id="signals-download"),
                ],
                className="filters",
            ),
            html.Div(id="signals-status", className="status"),
            dcc.Graph(id="signals-chart"),
            dash_table.DataTable(
                id="signals-table",
                columns=_columns(),
                page_size=25,
                sort_action="native",
                style_table={"overflowX": "auto"},
            ),
        ]
    )


def _columns() -> list[dict]:
    numeric = {"prediction", "interval_low", "interval_high", "confidence"}
    names = ["rank", "ticker", "sector", "prediction", "interval_low", "interval_high", "confidence",
             "top_contributions", "model_version", "date", "source"]  # fmt: skip
    return [
        {"name": n, "id": n, "type": "numeric", "format": PERCENT} if n in numeric else {"name": n, "id": n}
        for n in names
    ]


def filtered(table: pd.DataFrame, sectors: list[str] | None, min_confidence: float, side: str) -> pd.DataFrame:
    """The rows the filters keep, still ranked."""
    keep = table["confidence"] >= (min_confidence or 0)
    if sectors:
        keep &= table["sector"].isin(sectors)
    if side == "long":
        keep &= table["prediction"] > 0
    elif side == "short":
        keep &= table["prediction"] < 0
    return table[keep]


def figure(table: pd.DataFrame) -> go.Figure:
    """The strongest predictions each way with their intervals."""
    shown = pd.concat([table.head(CHART_ROWS), table.tail(CHART_ROWS)]).drop_duplicates("ticker")
    fig = go.Figure(
        go.Bar(
            x=shown["ticker"],
            y=shown["prediction"],
            error_y={
                "type": "data",
                "symmetric": False,
                "array": shown["interval_high"] - shown["prediction"],
                "arrayminus": shown["prediction"] - shown["interval_low"],
            },
            marker_color=["#2a9d8f" if v > 0 else "#e76f51" for v in shown["prediction"]],
        )
    )
    fig.update_layout(
        title="Strongest signals (90% interval)", yaxis_tickformat=".1%", margin={"t": 40, "b": 40}, height=320
    )
    return fig


def register(app, data: Data) -> None:
    @app.callback(
        Output("signals-table", "data"),
        Output("signals-chart", "figure"),
        Output("signals-status", "children"),
        Input("signals-sector", "value"),
        Input("signals-confidence", "value"),
        Input("signals-side", "value"),
        Input("live", "data"),
    )
    def refresh(sectors, min_confidence, side, live):
        table = filtered(data.signals(), sectors, min_confidence, side)
        live_rows = int(table["source"].str.startswith("live").sum())
        status = f"{len(table)} tickers, {live_rows} refreshed intraday; events up to {(live or {}).get('event', '-')}"
        return table.to_dict("records"), figure(table), status

    @app.callback(
        Output("signals-download", "data"),
        Input("signals-download-button", "n_clicks"),
        State("signals-sector", "value"),
        State("signals-confidence", "value"),
        State("signals-side", "value"),
        prevent_initial_call=True,
    )
    def download(_, sectors, min_confidence, side):
        table = filtered(data.signals(), sectors, min_confidence, side)
        return dcc.send_data_frame(table.to_csv, "signals.csv", index=False)
