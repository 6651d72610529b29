"""Metadata every materialization reports: rows, date range, tickers, where the data went."""

from __future__ import annotations

import base64
import io

import dagster as dg
import pandas as pd


def table_metadata(frame: pd.DataFrame, paths: list[str] | None = None) -> dict[str, dg.MetadataValue]:
    dates = pd.to_datetime(frame["date"]) if len(frame) else pd.Series(dtype="datetime64[ns]")
    meta = {
        "dagster/row_count": dg.MetadataValue.int(len(frame)),
        "tickers": dg.MetadataValue.int(int(frame["ticker"].nunique()) if len(frame) else 0),
        "first_date": dg.MetadataValue.text(f"{dates.min():%Y-%m-%d}" if len(frame) else "-"),
        "last_date": dg.MetadataValue.text(f"{dates.max():%Y-%m-%d}" if len(frame) else "-"),
    }
    if paths:
        meta["partitions_written"] = dg.MetadataValue.int(len(paths))
        meta["path"] = dg.MetadataValue.path(paths[-1].rsplit("/", 2)[0])
    return meta


def float_metadata(metrics: dict[str, float]) -> dict[str, dg.MetadataValue]:
    return {k: dg.MetadataValue.float(float(v)) for k, v in metrics.items()}


def png_markdown(figure) -> dg.MetadataValue:
    """A matplotlib figure as Markdown the Dagster UI renders inline."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=90, bbox_inches="tight")
    encoded = base64.b64encode(buffer.getvalue()).decode()
    return dg.MetadataValue.md(f"![plot](data:image/png;base64,{encoded})")
