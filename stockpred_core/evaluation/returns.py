"""Daily return frames in the backtest's convention: close-to-close returns (date x ticker) indexed by the session where
each return ends, the forward-return labels predictions are scored against, and an index's returns on those sessions."""

from __future__ import annotations

import pandas as pd


def returns_from_prices(prices: pd.DataFrame) -> pd.DataFrame:
    """Close-to-close returns of a wide (date x ticker) price frame, e.g. adj_close: prices are carried forward over a
    missing session (it returns 0 and the next session the whole move); NaN up to a ticker's first price."""
    carried = prices.sort_index().ffill()
    returns = carried / carried.shift(1) - 1.0
    returns.index = pd.DatetimeIndex(returns.index, name="date")
    return returns


def returns_from_bars(bars: pd.DataFrame, column: str = "adj_close") -> pd.DataFrame:
    """`returns_from_prices` of a long bar frame (columns date, ticker and `column`)."""
    prices = bars.pivot(index="date", columns="ticker", values=column)
    prices.index = pd.to_datetime(prices.index)
    return returns_from_prices(prices)


def forward_returns_from_returns(returns: pd.DataFrame, horizon: int = 1) -> pd.Series:
    """The h-session forward return from each date's close, indexed by (date, ticker): the label that predictions
    made at D are scored against (horizon 1: the return the portfolio earns from D to D+1)."""
    growth = (1.0 + returns.fillna(0.0)).cumprod()
    forward = growth.shift(-horizon) / growth - 1.0
    forward = forward.where(returns.notna() | returns.shift(-1).notna())
    return forward.stack(future_stack=True).dropna().rename(f"fwd_ret_{horizon}").rename_axis(["date", "ticker"])


def to_wide(values: pd.Series | pd.DataFrame) -> pd.DataFrame:
    """A (date, ticker)-indexed series as a date x ticker frame; a frame is returned as it is."""
    if isinstance(values, pd.DataFrame):
        return values
    if values.index.nlevels != 2:
        raise ValueError("expected a series indexed by (date, ticker)")
    wide = values.unstack(-1)
    wide.index = pd.DatetimeIndex(wide.index, name="date")
    return wide


def index_returns(close: pd.Series, sessions: pd.DatetimeIndex) -> pd.Series:
    """Close-to-close returns of an index (e.g. ^GSPC's Adj Close, dated) on the given sessions: the close of each
    session (the last one at or before it) over the previous session's."""
    close = close.sort_index()
    close.index = pd.DatetimeIndex(close.index).normalize()
    on_sessions = close[~close.index.duplicated(keep="last")].reindex(pd.DatetimeIndex(sessions), method="ffill")
    return (on_sessions / on_sessions.shift(1) - 1.0).rename("index").rename_axis("date")
