"""Sentiment against returns: the mean next-session return of the (date, ticker) rows in each sentiment quintile."""

from __future__ import annotations

import pandas as pd
from matplotlib.figure import Figure
from matplotlib.ticker import PercentFormatter

QUINTILE_COLUMNS = ["family", "quintile", "rows", "mean_sentiment", "mean_next_return"]


def next_returns(bars: pd.DataFrame) -> pd.DataFrame:
    """(date, ticker, next_return): adj_close of the ticker's next session over the day's, minus 1."""
    if bars.empty:
        return pd.DataFrame(columns=["date", "ticker", "next_return"])
    ordered = bars.sort_values(["ticker", "date"])
    close = ordered.groupby("ticker")["adj_close"]
    return ordered.assign(next_return=close.shift(-1) / ordered["adj_close"] - 1)[["date", "ticker", "next_return"]]


def sentiment_return_quintiles(table: pd.DataFrame, bars: pd.DataFrame) -> pd.DataFrame:
    """Per family with a sentiment column: rows, mean sentiment and mean next-session return by sentiment quintile
    (1 = most negative) over the rows holding both; fewer than 5 such rows give no quintiles."""
    joined = table.merge(next_returns(bars), on=["date", "ticker"], how="inner")
    parts = []
    for family in ("news", "social"):
        rows = joined[[f"{family}_sentiment", "next_return"]].dropna()
        if len(rows) < 5:
            continue
        rows = rows.assign(quintile=pd.qcut(rows[f"{family}_sentiment"].rank(method="first"), 5, labels=range(1, 6)))
        grouped = rows.groupby("quintile", observed=True)
        parts.append(
            pd.DataFrame(
                {
                    "family": family,
                    "quintile": grouped.size().index.astype(int),
                    "rows": grouped.size().to_numpy(),
                    "mean_sentiment": grouped[f"{family}_sentiment"].mean().to_numpy(),
                    "mean_next_return": grouped["next_return"].mean().to_numpy(),
                }
            )
        )
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=QUINTILE_COLUMNS)


def sentiment_return_figure(quintiles: pd.DataFrame) -> Figure:
    """One bar panel per family: mean next-session return by sentiment quintile."""
    families = list(dict.fromkeys(quintiles["family"])) or ["news", "social"]
    fig = Figure(figsize=(4 * len(families), 3.2))
    for ax, family in zip(fig.subplots(1, len(families), squeeze=False)[0], families, strict=True):
        rows = quintiles[quintiles["family"] == family]
        if rows.empty:
            ax.text(0.5, 0.5, "fewer than 5 days with sentiment\nand a next-session return", ha="center", va="center")
            ax.set_axis_off()
        else:
            colors = ["C3" if r < 0 else "C2" for r in rows["mean_next_return"]]
            ax.bar(rows["quintile"].astype(str), rows["mean_next_return"], color=colors)
            ax.axhline(0, color="black", linewidth=0.8)
            ax.yaxis.set_major_formatter(PercentFormatter(1.0, decimals=2))
            ax.set_xlabel("sentiment quintile (1 = most negative)")
        ax.set_title(f"{family}: mean next-session return")
    fig.tight_layout()
    return fig
