"""What the alternative assets report on each materialization: rows, rows per session, coverage, quarantine,
failures and a preview."""

from __future__ import annotations

import dagster as dg
import numpy as np
import pandas as pd

from stockpred_core.data.alternative_quality import AltValidation
from stockpred_resources.providers.alternative import AltFetchReport

PREVIEW = {
    "news": ["date", "ticker", "public_at", "headline", "vendor_sentiment"],
    "social": ["date", "ticker", "public_at", "text", "likes"],
    "filings": ["date", "ticker", "form", "public_at", "items"],
    "insider": ["date", "ticker", "insider", "code", "shares", "price"],
    "macro": ["date", "series", "observed_on", "value", "public_at"],
}


def coverage(frame: pd.DataFrame, subject: str, subjects: list[str], sessions: pd.DatetimeIndex) -> dict:
    """Subjects x sessions holding at least one row, of all subjects x sessions of the window."""
    held = int(frame[["date", subject]].drop_duplicates().shape[0]) if len(frame) else 0
    names = set(subjects) | (set(frame[subject]) if len(frame) else set())
    possible = len(names) * len(sessions)
    return {"cells": held, "possible": possible, "share": held / possible if possible else 0.0}


def rows_metadata(
    kind: str, rows: pd.DataFrame, paths: list[str], sessions: pd.DatetimeIndex, subjects: list[str], prefix: str = ""
) -> dict[str, dg.MetadataValue]:
    subject = "series" if kind == "macro" else "ticker"
    dates = pd.to_datetime(rows["date"]) if len(rows) else pd.Series(dtype="datetime64[ns]")
    per_session = dates.dt.strftime("%Y-%m-%d").value_counts().sort_index() if len(rows) else pd.Series(dtype=int)
    covered = coverage(rows, subject, subjects, sessions)
    shown = rows[PREVIEW[kind]].head(5).copy() if len(rows) else None
    if shown is not None:
        for column in shown.select_dtypes("object").columns:
            shown[column] = shown[column].astype(str).str.slice(0, 60)
    meta = {
        "dagster/row_count" if not prefix else f"{prefix}rows": dg.MetadataValue.int(len(rows)),
        f"{prefix}{'tickers' if subject == 'ticker' else 'series'}": dg.MetadataValue.int(
            int(rows[subject].nunique()) if len(rows) else 0
        ),
        f"{prefix}rows_per_session": dg.MetadataValue.json({k: int(v) for k, v in per_session.items()}),
        f"{prefix}coverage": dg.MetadataValue.text(
            f"{covered['cells']} of {covered['possible']} {subject} x sessions ({covered['share']:.1%})"
        ),
        f"{prefix}coverage_share": dg.MetadataValue.float(round(covered["share"], 4)),
        f"{prefix}first_date": dg.MetadataValue.text(f"{dates.min():%Y-%m-%d}" if len(rows) else "-"),
        f"{prefix}last_date": dg.MetadataValue.text(f"{dates.max():%Y-%m-%d}" if len(rows) else "-"),
        f"{prefix}preview": dg.MetadataValue.md(shown.to_markdown(index=False) if shown is not None else "no rows"),
    }
    if paths:
        meta[f"{prefix}path"] = dg.MetadataValue.path(paths[-1].rsplit("/", 2)[0])
    return meta


def quarantine_metadata(checked: AltValidation, path: str, prefix: str = "") -> dict[str, dg.MetadataValue]:
    quarantined = checked.quarantined
    first = quarantined[["rule", "reason"]].head(10) if len(quarantined) else None
    return {
        f"{prefix}duplicates_dropped": dg.MetadataValue.int(checked.duplicates),
        f"{prefix}quarantined": dg.MetadataValue.int(len(quarantined)),
        f"{prefix}quarantined_by_rule": dg.MetadataValue.json(checked.by_rule()),
        f"{prefix}quarantine_reasons": dg.MetadataValue.md(
            first.to_markdown(index=False) if first is not None else "none"
        ),
        f"{prefix}quarantine_path": dg.MetadataValue.path(path),
    }


def fetch_metadata(report: AltFetchReport, rejects_path: str) -> dict[str, dg.MetadataValue]:
    latency = np.array(list(report.latency_s.values()) or [0.0])
    failures = report.failures
    return {
        "requests": dg.MetadataValue.int(int(report.requests)),
        "subjects_fetched": dg.MetadataValue.int(len(report.latency_s)),
        "failed_subjects": dg.MetadataValue.int(len(failures)),
        "failures": dg.MetadataValue.md(
            failures[["ticker", "kind", "reason"]].to_markdown(index=False) if len(failures) else "none"
        ),
        "rejects": dg.MetadataValue.int(len(report.rejects)),
        "rejects_path": dg.MetadataValue.path(rejects_path),
        "latency_p50_s": dg.MetadataValue.float(float(np.percentile(latency, 50))),
        "latency_max_s": dg.MetadataValue.float(float(latency.max())),
        "notes": dg.MetadataValue.json(report.notes),
    }
