"""Metrics tables for display: values as strings by their column's kind (returns, alphas, costs and turnover in %,
t-statistics and betas as numbers), as Markdown or as the rows the HTML template shows."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import pandas as pd

PERCENT_COLUMNS = (
    "return",
    "cagr",
    "vol",
    "drawdown",
    "excess",
    "turnover",
    "tracking_error",
    "exposure",
    "alpha",
    "cost_drag",
)


def _is_t_statistic(column: str) -> bool:
    return column.endswith("_t") or column.startswith("alpha_t_")


def _format(column: str, value: object) -> str:
    if not isinstance(value, int | float | np.number):
        return str(value)
    if not np.isfinite(value):
        return "-"
    if column in ("days", "positions") or column.startswith("n_"):
        return f"{value:,.0f}"
    if not _is_t_statistic(column) and any(part in column for part in PERCENT_COLUMNS):
        return f"{value:.2%}"
    if value == 0 or abs(value) >= 0.01:
        return f"{value:.4f}" if abs(value) < 1 else f"{value:.3f}"
    return f"{value:.3g}"


def formatted(table: pd.DataFrame, by_row: bool = False) -> pd.DataFrame:
    """A copy of a metrics table as display strings (returns, drawdowns, turnover in %), each value formatted by
    its column's name (or its row's, with by_row)."""
    return pd.DataFrame(
        {c: [_format(str(i if by_row else c), v) for i, v in table[c].items()] for c in table.columns},
        index=table.index.astype(str),
    )


def markdown_table(table: pd.DataFrame) -> str:
    shown = formatted(table)
    head = "| " + " | ".join([str(table.index.name or ""), *map(str, shown.columns)]) + " |"
    rule = "|" + "---|" * (len(shown.columns) + 1)
    body = ["| " + " | ".join([str(i), *row]) + " |" for i, row in zip(shown.index, shown.to_numpy(), strict=True)]
    return "\n".join([head, rule, *body])


class HtmlTable(NamedTuple):
    """A metrics table as the template shows it: display strings, escaped by the template."""

    caption: str
    index_name: str
    columns: list[str]
    rows: list[tuple[str, list[str]]]


def html_table(table: pd.DataFrame, caption: str, by_row: bool = False) -> HtmlTable:
    shown = formatted(table, by_row)
    rows = [(str(i), list(cells)) for i, cells in zip(shown.index, shown.to_numpy().tolist(), strict=True)]
    return HtmlTable(caption, str(table.index.name or ""), [str(c) for c in shown.columns], rows)
