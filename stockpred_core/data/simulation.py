"""A deterministic simulated equity market, the offline default data source.

Every path starts at the first session of the calendar and each ticker draws from its own random streams, so a
bar depends only on (seed, ticker, date): fetching one day or a five-year range gives identical values, and growing
the universe leaves existing tickers untouched. The market has a GARCH market factor with fat tails, sector factors,
per-ticker betas and GARCH idiosyncratic noise, a slowly drifting per-ticker alpha (weak momentum) and short-term
reversal, volume that rises with the size of the move, and OHLC built to be consistent. Prices are raw, as traded:
about a third of the tickers pay quarterly dividends (the price drops by the cash on the ex-date) and a ticker whose
price runs far up may split; both come with their events. A regime change (a bear market with twice the volatility
from a given date) can be switched on to provoke drift.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from stockpred_core.data import calendar
from stockpred_core.data.schemas import BAR_COLUMNS, EVENT_COLUMNS, empty_bars

N_SECTORS = 11
SECTORS = [
    "Technology",
    "Health Care",
    "Financials",
    "Consumer Discretionary",
    "Communication Services",
    "Industrials",
    "Consumer Staples",
    "Energy",
    "Utilities",
    "Real Estate",
    "Materials",
]
_T_DOF = 5.0
_CHUNK = 512


def simulated_tickers(count: int) -> list[str]:
    """The first `count` simulated ticker symbols (stable: ticker i is always the same name)."""
    if not 1 <= count <= 99_999:
        raise ValueError(f"universe size must be between 1 and 99,999, got {count}")
    return [f"S{i:05d}" for i in range(count)]


def ticker_sector(ticker: str) -> str:
    return SECTORS[int(ticker[1:]) % N_SECTORS]


def _student_t(normals: np.ndarray, gammas: np.ndarray) -> np.ndarray:
    """Unit-variance Student-t draws from independent normal and chi-square/2 streams."""
    chi2 = 2.0 * gammas
    return normals / np.sqrt(chi2 / _T_DOF) / np.sqrt(_T_DOF / (_T_DOF - 2.0))


def _garch(shocks: np.ndarray, long_run_vol: np.ndarray, alpha: float = 0.08, beta: float = 0.9) -> tuple:
    """GARCH(1,1) returns and conditional vols for unit shocks of shape (T, N)."""
    omega = (1.0 - alpha - beta) * long_run_vol**2
    var = long_run_vol**2 * np.ones(shocks.shape[1])
    out = np.empty_like(shocks)
    vols = np.empty_like(shocks)
    for t in range(shocks.shape[0]):
        vols[t] = np.sqrt(var)
        out[t] = vols[t] * shocks[t]
        var = omega + alpha * out[t] ** 2 + beta * var
    return out, vols


def _stream(seed: int, *key: int) -> np.random.Generator:
    return np.random.default_rng([seed, *key])


@dataclass(frozen=True)
class Regime:
    """From `start` on, market volatility is multiplied by `vol_multiplier` and `drift` is added to daily returns."""

    start: str
    vol_multiplier: float = 2.0
    drift: float = -0.0015


def _factors(seed: int, days: pd.DatetimeIndex, regime: Regime | None) -> tuple[np.ndarray, np.ndarray]:
    """Market returns (T,) and sector returns (T, N_SECTORS)."""
    n_days = len(days)
    shocks = _student_t(
        _stream(seed, 10**6, 0).standard_normal(n_days), _stream(seed, 10**6, 1).standard_gamma(_T_DOF / 2, n_days)
    )
    market, _ = _garch(shocks[:, None], np.array([0.010]))
    market = market[:, 0] + 0.0003
    if regime is not None:
        after = days >= pd.Timestamp(regime.start)
        market[after] = market[after] * regime.vol_multiplier + regime.drift
    sector_shocks = _student_t(
        _stream(seed, 10**6, 2).standard_normal((n_days, N_SECTORS)),
        _stream(seed, 10**6, 3).standard_gamma(_T_DOF / 2, (n_days, N_SECTORS)),
    )
    return market, 0.005 * sector_shocks


def _total_returns(seed: int, ids: list[int], market: np.ndarray, sectors: np.ndarray, normals, params) -> tuple:
    """Daily total (price + dividend) log returns (T, N) and their conditional volatility."""
    beta, idio_vol = 0.6 + 0.8 * params[:, 0], 0.010 + 0.015 * params[:, 1]
    gammas = np.stack([_stream(seed, i, 1).standard_gamma(_T_DOF / 2, len(market)) for i in ids], axis=1)
    idio, idio_sigma = _garch(_student_t(normals[:, :, 0], gammas), idio_vol)
    alpha, prev = np.zeros(len(ids)), np.zeros(len(ids))
    sector_idx = np.asarray(ids) % N_SECTORS
    returns = np.empty((len(market), len(ids)))
    for t in range(len(market)):
        alpha = 0.98 * alpha + 0.0003 * normals[t, :, 1]
        returns[t] = beta * market[t] + sectors[t, sector_idx] + idio[t] + alpha - 0.06 * prev
        prev = idio[t]
    return returns, np.sqrt((beta * 0.010) ** 2 + idio_sigma**2)


def _corporate_actions(returns: np.ndarray, start_price: np.ndarray, params: np.ndarray, split_draws: np.ndarray):
    """Raw closes, the cash dividend and split ratio on each day, and the cumulative split factor (all (T, N))."""
    n_days, count = returns.shape
    quarterly_yield = np.where(params[:, 4] < 0.35, 0.002 + 0.02 * params[:, 4], 0.0)
    ex_offset = (params[:, 3] * 63).astype(int)
    close, dividend = np.empty((n_days, count)), np.zeros((n_days, count))
    split, factor = np.ones((n_days, count)), np.ones((n_days, count))
    last, cum_factor = start_price.copy(), np.ones(count)
    for t in range(n_days):
        before_cash = last * np.exp(returns[t])
        pays = (quarterly_yield > 0) & ((t - ex_offset) % 63 == 0)
        dividend[t] = np.where(pays, before_cash * quarterly_yield, 0.0)
        price = before_cash - dividend[t]
        # A stock that has run far up splits now and then: 2, 3 or 4 new shares per old share.
        splits = (price > 400.0) & (split_draws[t, :, 0] < 0.02)
        ratio = np.where(splits, 2.0 + np.floor(split_draws[t, :, 1] * 3.0), 1.0)
        split[t], cum_factor = ratio, cum_factor * ratio
        factor[t] = cum_factor
        close[t] = price / ratio
        dividend[t] = dividend[t] / ratio
        last = close[t]
    return close, dividend, split, factor


def _simulate_tickers(seed: int, ids: list[int], market: np.ndarray, sectors: np.ndarray) -> dict[str, np.ndarray]:
    """Raw OHLCV, dividends and split ratios, arrays of shape (T, len(ids)), for universe positions `ids`."""
    n_days = len(market)
    params = np.array([_stream(seed, i, 2).uniform(size=5) for i in ids])
    start_price = 20.0 + 280.0 * params[:, 2]
    base_volume = np.exp(np.log(2e5) + 3.0 * params[:, 3])
    normals = np.stack([_stream(seed, i, 0).standard_normal((n_days, 5)) for i in ids], axis=1)
    split_draws = np.stack([_stream(seed, i, 3).uniform(size=(n_days, 2)) for i in ids], axis=1)
    returns, sigma = _total_returns(seed, ids, market, sectors, normals, params)
    close, dividend, split, _ = _corporate_actions(returns, start_price, params, split_draws)
    prev_close = np.vstack([start_price[None, :], close[:-1]]) / split  # yesterday's close in today's shares
    gap_share = 0.3 + 0.2 * np.tanh(normals[:, :, 2])
    open_ = prev_close * np.exp(gap_share * returns) - dividend
    body_high, body_low = np.maximum(open_, close), np.minimum(open_, close)
    high = body_high * np.exp(0.5 * sigma * np.abs(normals[:, :, 3]))
    low = body_low * np.exp(-0.5 * sigma * np.abs(normals[:, :, 4]))
    volume = base_volume * np.exp(0.35 * normals[:, :, 2]) * (1.0 + 2.5 * np.abs(returns) / sigma) * split.cumprod(0)
    return {
        "open": open_,
        "high": high,
        "low": low,
        "close": close,
        "volume": np.round(volume),
        "dividend": dividend,
        "split": split,
    }


def _events(frame: pd.DataFrame) -> pd.DataFrame:
    divs = frame.loc[frame["dividend"] > 0, ["date", "ticker", "dividend"]].rename(columns={"dividend": "value"})
    splits = frame.loc[frame["split"] != 1.0, ["date", "ticker", "split"]].rename(columns={"split": "value"})
    events = pd.concat([divs.assign(kind="dividend"), splits.assign(kind="split")], ignore_index=True)
    return events.assign(provider="simulated")[EVENT_COLUMNS].sort_values(["date", "ticker"], ignore_index=True)


def simulate_market(
    seed: int,
    universe_size: int,
    start: str | pd.Timestamp,
    end: str | pd.Timestamp,
    tickers: list[str] | None = None,
    regime: Regime | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Raw canonical bars and corporate-action events for the sessions in [start, end] (default: every ticker)."""
    universe = simulated_tickers(universe_size)
    position = {t: i for i, t in enumerate(universe)}
    index = (
        sorted(position[t] for t in set(tickers) if t in position)
        if tickers is not None
        else list(range(len(universe)))
    )
    days = calendar.sessions(calendar.FIRST_SESSION, end)
    keep = days >= pd.Timestamp(start).normalize()
    if not keep.any() or not index:
        return empty_bars(), pd.DataFrame(columns=EVENT_COLUMNS)
    market, sectors = _factors(seed, days, regime)
    frames = []
    for lo in range(0, len(index), _CHUNK):
        chunk = index[lo : lo + _CHUNK]
        columns = _simulate_tickers(seed, chunk, market, sectors)
        frame = pd.DataFrame({name: values[keep].ravel() for name, values in columns.items()})
        frame.insert(0, "ticker", np.tile([universe[i] for i in chunk], int(keep.sum())))
        frame.insert(0, "date", np.repeat(days[keep].values, len(chunk)))
        frames.append(frame)
    frame = pd.concat(frames, ignore_index=True)
    bars = frame.assign(
        adj_close=frame["close"], provider="simulated", ingested_at=pd.Timestamp.now(tz="UTC").tz_localize(None)
    )
    return bars[BAR_COLUMNS].sort_values(["date", "ticker"], ignore_index=True), _events(frame)


def simulate_bars(
    seed: int, universe_size: int, start, end, tickers: list[str] | None = None, regime: Regime | None = None
) -> pd.DataFrame:
    """Raw canonical bars only (see `simulate_market`)."""
    return simulate_market(seed, universe_size, start, end, tickers, regime)[0]
