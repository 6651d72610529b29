"""Split- and dividend-adjusted prices derived from raw bars and corporate-action events.

Back-adjustment relative to the last bar given: a price before an event is scaled by 1/ratio for a split and by
(1 - cash / previous close) for a dividend, so returns computed on the adjusted series are total returns and an
unadjusted split never appears as a -75% day. Only events up to the last bar are used, so a window ending on day D
is adjusted with what was known on D.
"""

from __future__ import annotations

import pandas as pd

from stockpred_core.features.batch import to_wide

PRICE_FIELDS = ["open", "high", "low", "close"]


def price_factors(bars: pd.DataFrame, events: pd.DataFrame | None) -> pd.DataFrame:
    """(date x ticker) multipliers that turn raw prices into adjusted prices (1.0 where nothing happened since)."""
    close = to_wide(bars, "close")
    factors = pd.DataFrame(1.0, index=close.index, columns=close.columns)
    if events is None or events.empty:
        return factors
    known = events[events["ticker"].isin(close.columns) & (events["date"] > close.index[0])]
    known = known[known["date"] <= close.index[-1]]
    step = pd.DataFrame(1.0, index=close.index, columns=close.columns)
    prev_close = close.shift(1)
    for event in known.itertuples():
        day = close.index[close.index.searchsorted(event.date)]  # the event's session (or the next one present)
        if event.kind == "split" and event.value > 0:
            step.loc[day, event.ticker] *= 1.0 / float(event.value)
        elif event.kind == "dividend" and prev_close.loc[day, event.ticker] > 0:
            step.loc[day, event.ticker] *= 1.0 - float(event.value) / prev_close.loc[day, event.ticker]
    # A price on day t is scaled by every event strictly after t: a reversed cumulative product, shifted one day.
    after = step.iloc[::-1].cumprod().iloc[::-1].shift(-1).fillna(1.0)
    return factors * after


def adjust(bars: pd.DataFrame, events: pd.DataFrame | None) -> pd.DataFrame:
    """Bars with adjusted open/high/low/close, `adj_close` = adjusted close and volume in today's shares."""
    if bars.empty:
        return bars
    factors = price_factors(bars, events).stack(future_stack=True).rename("factor")
    split_only = price_factors(bars, None if events is None or events.empty else events[events["kind"] == "split"])
    share_factor = split_only.stack(future_stack=True).rename("share_factor")
    out = bars.join(factors, on=["date", "ticker"]).join(share_factor, on=["date", "ticker"])
    for col in PRICE_FIELDS:
        out[col] = out[col] * out["factor"]
    out["adj_close"] = out["close"]
    # not rounded: a rounded rescaled volume depends on which splits the window holds, so a backfill and a daily run
    # would differ in the volume features (1e-7 in volume_ratio_20_z around EBAY's 2015 split)
    out["volume"] = out["volume"] / out["share_factor"]
    return out.drop(columns=["factor", "share_factor"])
