"""A deterministic simulated equity market, the offline default data source.

Every path starts at the first session of the calendar and each ticker draws from its own random streams, so a
bar depends only on (seed, ticker, date): fetching one day or a five-year range gives identical values, and growing
the universe leaves existing tickers untouched. The market has a GARCH market factor with fat tails, sector factors,
per-ticker betas and GARCH idiosyncratic noise, a slowly drifting per-ticker alpha (weak momentum) and short-term
reversal, volume that rises with the size of the move, and OHLC built to be consistent.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from stockpred_assets.core import calendar
from stockpred_assets.core.schemas import BAR_COLUMNS, empty_bars

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


def _factors(seed: int, n_days: int) -> tuple[np.ndarray, np.ndarray]:
    """Market returns (T,) and sector returns (T, N_SECTORS)."""
    shocks = _student_t(
        _stream(seed, 10**6, 0).standard_normal(n_days), _stream(seed, 10**6, 1).standard_gamma(_T_DOF / 2, n_days)
    )
    market, _ = _garch(shocks[:, None], np.array([0.010]))
    sector_shocks = _student_t(
        _stream(seed, 10**6, 2).standard_normal((n_days, N_SECTORS)),
        _stream(seed, 10**6, 3).standard_gamma(_T_DOF / 2, (n_days, N_SECTORS)),
    )
    return market[:, 0] + 0.0003, 0.005 * sector_shocks


def _simulate_tickers(seed: int, ids: list[int], market: np.ndarray, sectors: np.ndarray) -> dict[str, np.ndarray]:
    """OHLCV arrays of shape (T, len(ids)) for the tickers with universe positions `ids`."""
    n_days, count = len(market), len(ids)
    params = np.array([_stream(seed, i, 2).uniform(size=5) for i in ids])
    beta = 0.6 + 0.8 * params[:, 0]
    idio_vol = 0.010 + 0.015 * params[:, 1]
    start_price = 20.0 + 280.0 * params[:, 2]
    base_volume = np.exp(np.log(2e5) + 3.0 * params[:, 3])
    normals = np.stack([_stream(seed, i, 0).standard_normal((n_days, 5)) for i in ids], axis=1)
    gammas = np.stack([_stream(seed, i, 1).standard_gamma(_T_DOF / 2, n_days) for i in ids], axis=1)

    idio, idio_sigma = _garch(_student_t(normals[:, :, 0], gammas), idio_vol)
    alpha = np.zeros(count)
    prev = np.zeros(count)
    sector_idx = np.asarray(ids) % N_SECTORS
    returns = np.empty((n_days, count))
    for t in range(n_days):
        alpha = 0.98 * alpha + 0.0003 * normals[t, :, 1]
        returns[t] = beta * market[t] + sectors[t, sector_idx] + idio[t] + alpha - 0.06 * prev
        prev = idio[t]
    log_close = np.log(start_price) + np.cumsum(returns, axis=0)
    close = np.exp(log_close)
    prev_close = np.vstack([start_price[None, :], close[:-1]])
    gap_share = 0.3 + 0.2 * np.tanh(normals[:, :, 2])
    open_ = prev_close * np.exp(gap_share * returns)
    body_high, body_low = np.maximum(open_, close), np.minimum(open_, close)
    sigma = np.sqrt((beta * 0.010) ** 2 + idio_sigma**2)
    high = body_high * np.exp(0.5 * sigma * np.abs(normals[:, :, 3]))
    low = body_low * np.exp(-0.5 * sigma * np.abs(normals[:, :, 4]))
    volume = base_volume * np.exp(0.35 * normals[:, :, 2]) * (1.0 + 2.5 * np.abs(returns) / sigma)
    return {"open": open_, "high": high, "low": low, "close": close, "volume": np.round(volume)}


def simulate_bars(
    seed: int, universe_size: int, start: str | pd.Timestamp, end: str | pd.Timestamp, tickers: list[str] | None = None
) -> pd.DataFrame:
    """Canonical bars for the sessions in [start, end] (tickers default to the whole universe)."""
    universe = simulated_tickers(universe_size)
    wanted = universe if tickers is None else [t for t in universe if t in set(tickers)]
    days = calendar.sessions(calendar.FIRST_SESSION, end)
    keep = days >= pd.Timestamp(start).normalize()
    if not keep.any() or not wanted:
        return empty_bars()
    market, sectors = _factors(seed, len(days))
    index = sorted(universe.index(t) for t in wanted)
    frames = []
    for lo in range(0, len(index), _CHUNK):
        chunk = index[lo : lo + _CHUNK]
        columns = _simulate_tickers(seed, chunk, market, sectors)
        frame = pd.DataFrame({name: values[keep].ravel() for name, values in columns.items()})
        frame.insert(0, "ticker", np.tile([universe[i] for i in chunk], int(keep.sum())))
        frame.insert(0, "date", np.repeat(days[keep].values, len(chunk)))
        frames.append(frame)
    bars = pd.concat(frames, ignore_index=True)
    bars["adj_close"] = bars["close"]
    bars["provider"] = "simulated"
    bars["ingested_at"] = pd.Timestamp.now(tz="UTC").tz_localize(None)
    return bars[BAR_COLUMNS].sort_values(["date", "ticker"], ignore_index=True)
