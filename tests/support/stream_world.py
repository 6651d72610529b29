"""What the stream tests' worlds share: a lake holding simulated validated bars before a session, and that
session's simulated intraday bars."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pandas as pd

from stockpred_core.data import calendar
from stockpred_core.data.simulation import simulate_market
from stockpred_core.io.lake import Lake
from stockpred_core.settings import Settings, load_settings
from stream.sources import SimulatedReplay


def lake_before(
    root: Path, seed: int, universe: int, session: dt.date, sessions: int = 200
) -> tuple[Settings, Lake, pd.DataFrame, pd.DataFrame]:
    """Local settings on `root` and its lake holding the validated bars (no events) of `sessions` simulated sessions
    before `session`: (settings, lake, those bars, the session's daily bars)."""
    settings = load_settings({"STOCKPRED_ENV": "local", "STOCKPRED_DATA_DIR": str(root)})
    start = calendar.lookback_start(pd.Timestamp(session), sessions)
    bars, events = simulate_market(seed, universe, start, session)
    history = bars[bars["date"] < pd.Timestamp(session)]
    lake = Lake(settings.lake_url)
    days = sorted(history["date"].unique())
    lake.write_partitions("validated", "bars", history, days)
    lake.write_partitions("validated", "events", events.iloc[0:0], days)
    return settings, lake, history, bars[bars["date"] == pd.Timestamp(session)]


def session_bars(seed: int, universe: int, session: dt.date, daily: pd.DataFrame) -> list:
    """The session's simulated intraday bars (consistent with its daily bars), in order."""
    replay = SimulatedReplay(seed, universe, session, daily=daily)
    return [bar for group in replay.groups() for bar in group]
