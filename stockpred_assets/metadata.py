"""Metadata every materialization reports: rows, date range, tickers, where the data went; tables and plots in the
shapes the Dagster UI shows inline."""

from __future__ import annotations

import base64
import io

import dagster as dg
import pandas as pd
from pandas.api import types


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


def optional_float(value: object) -> float | None:
    """A figure that may be missing (None or NaN) as a float, or None."""
    return float(value) if value is not None and pd.notna(value) else None


def _cell(value: object, kind: str) -> object:
    if pd.isna(value):
        return None
    if kind == "float":
        return round(float(value), 4)
    return int(value) if kind == "int" else str(value)


def frame_table(frame: pd.DataFrame, index: bool = False) -> dg.MetadataValue:
    """A DataFrame as a Dagster table, which the UI draws inline with its column types (Markdown longer than 1,000
    characters hides behind a "[Show Markdown]" link); floats rounded to 4 decimals. `index`: keep the index as the
    first column."""
    frame = frame.reset_index() if index else frame
    kinds = {
        str(c): "int" if types.is_integer_dtype(t) else "float" if types.is_float_dtype(t) else "string"
        for c, t in frame.dtypes.items()
    }
    schema = dg.TableSchema(columns=[dg.TableColumn(name, kind) for name, kind in kinds.items()])
    records = [
        dg.TableRecord({name: _cell(value, kinds[name]) for name, value in zip(kinds, row, strict=True)})
        for row in frame.itertuples(index=False)
    ]
    return dg.MetadataValue.table(records=records, schema=schema)


def png_markdown(figure) -> dg.MetadataValue:
    """A matplotlib figure as Markdown with the PNG embedded: for plots that are not logged anywhere else (the UI
    shows it behind a "[Show Markdown]" link); plots logged to MLflow use `MLflowResource.image`."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=90, bbox_inches="tight")
    encoded = base64.b64encode(buffer.getvalue()).decode()
    return dg.MetadataValue.md(f"![plot](data:image/png;base64,{encoded})")
