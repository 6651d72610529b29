"""The warm start: the lake's daily history before a session, into the incremental feature state.

The window is the `features` asset's (`LOOKBACK_SESSIONS` before the day, adjusted for splits and dividends the
same way), so an intraday row of the session equals the row the asset would compute for that day from the same bars.
"""

from __future__ import annotations

import datetime as dt
import logging

import pandas as pd

from stockpred_core.data import calendar
from stockpred_core.data.adjustments import adjust
from stockpred_core.data.context import market_context
from stockpred_core.features.batch import LOOKBACK_SESSIONS
from stockpred_core.features.intraday import IntradayFeatures
from stockpred_core.io.lake import Lake
from stockpred_core.settings import Settings

logger = logging.getLogger("stockpred.stream")


class LakeHistory:
    """Builds the session's feature state from the lake's `validated/bars` and `validated/events`."""

    def __init__(self, lake: Lake, settings: Settings) -> None:
        self.lake, self.settings = lake, settings

    def __call__(self, session: dt.date) -> IntradayFeatures | None:
        """The state ready for `session`, or None when the lake lacks the session before it (the daily pipeline
        has not run yet: the caller then rolls its own state forward with the intraday bars)."""
        previous = calendar.previous_sessions(pd.Timestamp(session), 1)
        if not len(previous):
            return None
        start = calendar.lookback_start(pd.Timestamp(session), LOOKBACK_SESSIONS)
        end = previous[-1]
        bars = self.lake.read_range("validated", "bars", start, end)
        if bars.empty or pd.Timestamp(bars["date"].max()).normalize() < end:
            logger.warning(
                "the lake's validated bars end %s, not on %s (the session before %s): no warm start from the lake",
                "nowhere" if bars.empty else f"{pd.Timestamp(bars['date'].max()):%Y-%m-%d}",
                f"{end:%Y-%m-%d}",
                session,
            )
            return None
        events = self.lake.read_range("validated", "events", start, end)
        context = market_context(self.lake, self.settings.providers, self.settings.index_file, self.settings.vix_file)
        features = IntradayFeatures.from_history(adjust(bars, events), context)
        logger.info(
            "warm start for %s: %d tickers, %d sessions %s..%s",
            session,
            bars["ticker"].nunique(),
            bars["date"].nunique(),
            f"{start:%Y-%m-%d}",
            f"{end:%Y-%m-%d}",
        )
        return features
