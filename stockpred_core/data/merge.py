"""Combining providers: per (date, ticker) the highest-priority provider's valid bar wins; disagreements recorded."""

from __future__ import annotations

import pandas as pd

DISAGREEMENT_COLUMNS = ["date", "ticker", "provider", "close", "other_provider", "other_close", "diff_bps"]


def merge_by_priority(frames: list[pd.DataFrame], keys: tuple[str, ...] = ("date", "ticker")) -> pd.DataFrame:
    """Rows of `frames` (highest priority first), one per `keys`: the first provider that has it wins."""
    parts = [f.assign(_priority=i) for i, f in enumerate(frames) if len(f)]
    if not parts:
        return frames[0].iloc[0:0] if frames else pd.DataFrame()
    merged = pd.concat(parts, ignore_index=True).sort_values([*keys, "_priority"], kind="stable")
    return merged.drop_duplicates(list(keys)).drop(columns="_priority").reset_index(drop=True)


def disagreements(frames: list[pd.DataFrame], threshold_bps: float) -> pd.DataFrame:
    """Pairs of providers whose close for the same (date, ticker) differs by more than `threshold_bps`."""
    rows = []
    present = [f for f in frames if len(f)]
    for i, first in enumerate(present):
        for other in present[i + 1 :]:
            pair = first[["date", "ticker", "provider", "close"]].merge(
                other[["date", "ticker", "provider", "close"]], on=["date", "ticker"], suffixes=("", "_o")
            )
            pair["diff_bps"] = (pair["close_o"] / pair["close"] - 1.0).abs() * 1e4
            pair = pair[pair["diff_bps"] > threshold_bps]
            rows.append(pair.rename(columns={"provider_o": "other_provider", "close_o": "other_close"}))
    if not rows:
        return pd.DataFrame(columns=DISAGREEMENT_COLUMNS)
    return pd.concat(rows, ignore_index=True)[DISAGREEMENT_COLUMNS]
