"""Row-level validation: every raw bar ends up either validated or quarantined with its rule and reason."""

from __future__ import annotations

import pandas as pd
import pandera.errors as pa_errors

from stockpred_assets.core import calendar
from stockpred_assets.core.schemas import BAR_COLUMNS, BarSchema

QUARANTINE_COLUMNS = [*BAR_COLUMNS, "rule", "reason"]


class BarShapeError(ValueError):
    """The input is not a table of bars at all (missing columns, wrong types): nothing can be validated."""


def _reject(reasons: dict[int, tuple[str, str]], index, rule: str, reason) -> None:
    for i in index:
        reasons.setdefault(i, (rule, reason(i) if callable(reason) else reason))


def split_valid(raw: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(validated, quarantined) frames whose row counts add up to len(raw)."""
    missing = [c for c in BAR_COLUMNS if c not in raw.columns]
    if missing:
        raise BarShapeError(f"raw bars lack the canonical columns {missing}")
    frame = raw[BAR_COLUMNS].reset_index(drop=True)
    reasons: dict[int, tuple[str, str]] = {}

    dup = frame.sort_values("ingested_at").duplicated(["date", "ticker"], keep="last")
    _reject(reasons, dup[dup].index, "duplicate", "duplicate (date, ticker): the latest ingestion was kept")
    if len(frame):
        days = pd.to_datetime(frame["date"]).dt.normalize()
        open_days = calendar.sessions(days.min(), days.max())
        off = ~days.isin(open_days)
        _reject(reasons, frame.index[off], "trading_day", lambda i: f"{days[i].date()} is not an NYSE session")

    candidates = frame.drop(index=list(reasons))
    try:
        BarSchema.validate(candidates, lazy=True)
    except pa_errors.SchemaErrors as errors:
        cases = errors.failure_cases
        if cases["index"].isna().any():
            table_level = cases[cases["index"].isna()][["column", "check"]].drop_duplicates().to_dict("records")
            raise BarShapeError(f"raw bars fail table-level schema checks: {table_level}") from errors
        # Column checks (nulls, types, ranges) explain a row better than the row-wide OHLC check: report them first.
        cases = cases.assign(row_wide=cases["schema_context"] == "DataFrameSchema").sort_values(
            "row_wide", kind="stable"
        )
        for case in cases.itertuples():
            if case.row_wide:
                _reject(reasons, [int(case.index)], "ohlc", f"row failed: {case.check}")
            else:
                _reject(
                    reasons,
                    [int(case.index)],
                    f"{case.column}:{case.check}",
                    f"{case.column} failed {case.check} (value {case.failure_case!r})",
                )

    bad = sorted(reasons)
    quarantined = frame.loc[bad].copy()
    quarantined["rule"] = [reasons[i][0] for i in bad]
    quarantined["reason"] = [reasons[i][1] for i in bad]
    validated = BarSchema.validate(frame.drop(index=bad)) if len(frame) > len(bad) else frame.iloc[0:0]
    return validated.reset_index(drop=True), quarantined[QUARANTINE_COLUMNS].reset_index(drop=True)
