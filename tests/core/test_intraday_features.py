"""`IntradayFeatures` against the batch: every row `update()` returns must equal `compute_features` run on the history
plus the running bars of that moment, at the session date, for every column (1e-9, NaN in the same places).

Real data: daily S&P 500 bars (and SPY) up to 2013-10-04 as history, Lean's real minute bars of 2013-10-07 replayed
as the session, with the equal-weight market and with the real S&P 500 index and VIX. Simulated: 30 tickers x a year
with adjusted prices, sectors, history gaps, a late listing and a ticker without history, twin tickers (tied ranks), a
halt, a ticker that does not trade, an empty day, and two sessions in a row (the first committed at the roll)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from stockpred_core.data.simulation import simulate_bars, ticker_sector
from stockpred_core.features.batch import MarketContext, compute_features
from stockpred_core.features.catalog import LIBRARY_COLUMNS
from stockpred_core.features.intraday import IntradayFeatures, _corr_cov, _var
from stream.sources.lean import LeanReplay

SESSION = pd.Timestamp("2013-10-07")  # the Lean minute bars' session; the daily history ends on 2013-10-04
LEAN_TICKERS = ["SPY", "AIG", "BAC", "IBM"]


def assert_equals_batch(
    feats: IntradayFeatures,
    history: pd.DataFrame,
    context: MarketContext,
    tickers: list[str],
    got: np.ndarray,
    committed: list[pd.DataFrame] = (),
) -> None:
    """`got` (the rows update() returned for `tickers`) equals compute_features(history + committed days + the
    running bars) at the session; a ticker has a row there exactly when it has a running bar."""
    running = feats.session_frame()
    table = compute_features(pd.concat([history, *committed, running], ignore_index=True), context)
    today = table[table["date"] == feats.session].set_index("ticker")
    assert sorted(today.index) == sorted(running["ticker"])
    expected = today.loc[tickers, list(feats.columns)].to_numpy(dtype=np.float64)
    assert got.shape == expected.shape
    for j, name in enumerate(feats.columns):
        np.testing.assert_allclose(got[:, j], expected[:, j], rtol=1e-9, atol=1e-9, err_msg=name)


class Running:
    """What the caller keeps: each ticker's aggregate of the day's intraday bars so far."""

    def __init__(self) -> None:
        self.bars: dict[str, list[float]] = {}

    def add(self, ticker: str, open_, high, low, close, volume) -> None:
        bar = self.bars.get(ticker)
        if bar is None:
            self.bars[ticker] = [open_, high, low, close, volume]
        else:
            bar[1], bar[2], bar[3], bar[4] = max(bar[1], high), min(bar[2], low), close, bar[4] + volume

    def update(self, feats: IntradayFeatures, tickers: list[str], **levels) -> np.ndarray:
        values = np.array([self.bars[t] for t in tickers], dtype=np.float64).reshape(len(tickers), 5)
        return feats.update(tickers, *values.T, **levels)


# -- real data ----------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def real_history(shared_data) -> pd.DataFrame:
    """Daily bars up to 2013-10-04: AIG, BAC, IBM and every 20th S&P 500 ticker (real, split-adjusted) and SPY."""
    raw = pd.read_csv(shared_data / "market" / "all_stocks_5yr.csv.gz", parse_dates=["date"])
    raw = raw.rename(columns={"Name": "ticker"}).dropna(subset=["open", "high", "low", "close"])
    names = sorted(raw["ticker"].unique())
    chosen = {"AIG", "BAC", "IBM", *names[::20]}
    stocks = raw[raw["ticker"].isin(chosen) & (raw["date"] < SESSION)]
    spy = pd.read_csv(shared_data / "market" / "SPY_D.csv", index_col=0, parse_dates=["date"])
    spy = spy[spy["date"].between(stocks["date"].min(), SESSION - pd.Timedelta(days=1))].assign(ticker="SPY")
    bars = pd.concat([stocks, spy], ignore_index=True).assign(adj_close=lambda f: f["close"])
    return bars[["date", "ticker", "open", "high", "low", "close", "adj_close", "volume"]]


@pytest.fixture(scope="module")
def real_market(shared_data) -> tuple[pd.Series, pd.Series, pd.DataFrame]:
    """The real S&P 500 index close and VIX (open and close), by date."""
    gspc = pd.read_csv(shared_data / "market" / "GSPC.csv", parse_dates=["Date"]).set_index("Date")["Close"]
    vix = pd.read_csv(shared_data / "market" / "VIX_History.csv")
    vix.index = pd.to_datetime(vix.pop("DATE"), format="%m/%d/%Y")
    return gspc, vix["CLOSE"], vix


def lean_minutes(shared_data) -> list[list]:
    """The real minute bars of 2013-10-07, grouped by the minute they complete in."""
    replay = LeanReplay(shared_data / "intraday" / "lean", SESSION.date(), LEAN_TICKERS, resolution="minute")
    return list(replay.groups())


@pytest.mark.parametrize("with_index", [False, True], ids=["equal-weight-market", "sp500-index-and-vix"])
def test_real_minute_session_equals_the_batch(shared_data, real_history, real_market, with_index):
    gspc, vix_close, vix = real_market
    before = lambda s: s[s.index < SESSION]  # noqa: E731 - what is known before the session
    context = MarketContext(index_close=before(gspc), vix=before(vix_close)) if with_index else MarketContext()
    universe = sorted(real_history["ticker"].unique())
    feats = IntradayFeatures.from_history(real_history, context, tickers=universe)
    assert feats.last_date == pd.Timestamp("2013-10-04") and len(feats.tickers) == len(universe)
    vix_open = float(vix.at[SESSION, "OPEN"])
    feats.start_session(SESSION.date(), vix=vix_open if with_index else None)
    minutes = lean_minutes(shared_data)
    assert len(minutes) > 300
    chunks = [minutes[:1]] + [minutes[i : i + 10] for i in range(1, len(minutes), 10)]
    checkpoints = {0, len(chunks) // 2, len(chunks) - 1}
    running, compared = Running(), 0
    for k, chunk in enumerate(chunks):
        for group in chunk:
            for bar in group:
                running.add(bar.ticker, bar.open, bar.high, bar.low, bar.close, bar.volume)
        changed = sorted({bar.ticker for group in chunk for bar in group})
        levels = {}
        if with_index and k == len(chunks) - 1:  # the close: the day's index level and VIX become known
            levels = {"index_level": float(gspc[SESSION]), "vix": float(vix_close[SESSION])}
        got = running.update(feats, changed, **levels)
        if k in checkpoints:
            batch_context = context
            if with_index:  # what the batch reads at D: the levels given so far, else its ffill rule
                day_vix = levels.get("vix", vix_open)
                index = context.index_close
                if "index_level" in levels:
                    index = pd.concat([index, pd.Series({SESSION: levels["index_level"]})])
                batch_context = MarketContext(
                    index_close=index, vix=pd.concat([context.vix, pd.Series({SESSION: day_vix})])
                )
            assert_equals_batch(feats, real_history, batch_context, changed, got)
            compared += len(changed)
    assert compared >= 9
    got = running.update(feats, LEAN_TICKERS)  # the close, every ticker (nothing new given: the levels stay)
    assert_equals_batch(feats, real_history, batch_context, LEAN_TICKERS, got)
    columns = list(feats.columns)
    assert np.isfinite(got[:, [columns.index(c) for c in ("market_corr_60", "rsi_14", "ret_20_rank")]]).all()
    assert set(feats.session_frame()["ticker"]) == set(LEAN_TICKERS)  # the other tickers have no row on D


# -- simulated ----------------------------------------------------------------------------------------------------


def simulated_history() -> tuple[pd.DataFrame, list[pd.Timestamp], list[str]]:
    """30 simulated tickers over a year, dividend-adjusted, with gaps, a late listing and twins; the last three
    simulated dates are kept out as session dates. Returns the history, those dates and the universe."""
    bars = simulate_bars(11, 30, "2022-01-03", "2023-01-06")
    dates = sorted(bars["date"].unique())
    sessions, history = dates[-3:], bars[bars["date"] < dates[-3]].copy()
    # Adjusted prices: a third of the tickers had dividends, the older rows scaled down, the last row's factor < 1.
    payer = history["ticker"].str[-1].isin(["0", "3", "6"])
    factor = np.where(history["date"] < dates[120], 0.95, 0.985)
    history["adj_close"] = np.where(payer, history["close"] * factor, history["close"])
    drop = (history["ticker"] == "S00004") & history["date"].isin(dates[200:203])  # a gap mid-history
    drop |= (history["ticker"] == "S00007") & history["date"].isin(dates[-5:-3])  # missing the last two days
    drop |= (history["ticker"] == "S00005") & (history["date"] < dates[-33])  # listed 30 sessions ago
    history = history[~drop]
    flat = (history["ticker"] == "S00008") & (history["date"] >= dates[-28])  # halted: flat, no volume
    halt_price = history.loc[(history["ticker"] == "S00008") & (history["date"] == dates[-29]), "close"].iloc[0]
    history.loc[flat, ["open", "high", "low", "close", "adj_close"]] = halt_price
    history.loc[flat, "volume"] = 0.0
    twin = history[history["ticker"] == "S00028"].assign(ticker="S00029")  # same bars: tied ranks
    history = pd.concat([history[history["ticker"] != "S00029"], twin], ignore_index=True)
    universe = [*sorted(history["ticker"].unique()), "NEW01"]  # NEW01: no history, trades from the first session
    return history, sessions, universe


def intraday_paths(tickers: list[str], last_close: dict[str, float], minutes: int, seed: int) -> dict[str, np.ndarray]:
    """Random minute bars (minutes x open, high, low, close, volume) per ticker; NaN rows before its first trade."""
    rng = np.random.default_rng(seed)
    paths = {}
    for t in tickers:
        steps = rng.normal(0.0, 0.002, minutes)
        close = last_close.get(t, 50.0) * np.exp(rng.normal(0.0, 0.01) + np.cumsum(steps))
        open_ = np.concatenate([[close[0] * np.exp(-steps[0])], close[:-1]])
        spread = np.abs(rng.normal(0.0, 0.001, (2, minutes)))
        high, low = np.maximum(open_, close) * (1 + spread[0]), np.minimum(open_, close) * (1 - spread[1])
        volume = rng.integers(100, 50_000, minutes).astype(np.float64)
        bars = np.column_stack([open_, high, low, close, volume])
        bars[: rng.integers(0, minutes // 4)] = np.nan  # first trade after the open
        paths[t] = bars
    twin = [t for t in ("S00028", "S00029") if t in paths]
    if len(twin) == 2:
        paths["S00029"] = paths["S00028"].copy()
    if "S00008" in paths:  # the halted ticker reopens at its last price and does not move
        trading = ~np.isnan(paths["S00008"][:, 3])
        paths["S00008"][trading, :4] = last_close["S00008"]
    return paths


def replay_session(
    feats: IntradayFeatures,
    history: pd.DataFrame,
    context_at,
    paths: dict[str, np.ndarray],
    *,
    committed: list[pd.DataFrame] = (),
    halted: str | None = None,
    levels_at=lambda chunk: {},
    chunk_minutes: int = 7,
) -> None:
    """Replay the minute paths in chunks: each chunk's traded tickers are updated with their running bars and
    compared with the batch at the first, a middle and the last chunk (then every ticker with a bar is re-sent).
    `halted` trades only in the first half. context_at(chunk) is the batch's context after that chunk's update."""
    minutes = len(next(iter(paths.values())))
    running = Running()
    starts = list(range(0, minutes, chunk_minutes))
    checkpoints = {0, len(starts) // 2, len(starts) - 1}
    for k, start in enumerate(starts):
        changed = []
        for t, bars in paths.items():
            if t == halted and start >= minutes // 2:
                continue
            traded = bars[start : start + chunk_minutes]
            traded = traded[~np.isnan(traded[:, 3])]
            for minute in traded:
                running.add(t, *minute)
            if len(traded):
                changed.append(t)
        got = running.update(feats, changed, **levels_at(k))
        if k in checkpoints:
            assert_equals_batch(feats, history, context_at(k), changed, got, committed)
    everyone = sorted(running.bars)
    got = running.update(feats, everyone)
    assert_equals_batch(feats, history, context_at(len(starts) - 1), everyone, got, committed)
    if halted is not None:
        assert halted in everyone


def test_simulated_sessions_with_gaps_halts_and_a_roll_equal_the_batch():
    history, (empty_day, day1, day2), universe = simulated_history()
    context = MarketContext(sectors={t: ticker_sector(t) for t in universe if t != "NEW01"})
    feats = IntradayFeatures.from_history(history, context, tickers=universe)
    last_close = history.sort_values("date").groupby("ticker")["close"].last().to_dict()

    feats.start_session(empty_day)  # nobody trades: not a session of the axis, nothing is committed
    feats.start_session(day1)
    assert feats.last_date == history["date"].max()
    day1_tickers = [t for t in universe if t != "S00010"]  # S00010 does not trade on day 1
    paths = intraday_paths(day1_tickers, last_close, minutes=60, seed=1)
    replay_session(feats, history, lambda k: context, paths, halted="S00003")
    final_day1 = feats.session_frame()
    assert "S00010" not in set(final_day1["ticker"])

    feats.start_session(day2)  # commits day 1's running bars as its final daily bars
    assert feats.last_date == day1
    day2_tickers = [t for t in universe if t not in ("S00012", "S00013")]  # S00010 is back, after a missing day
    paths = intraday_paths(day2_tickers, final_day1.set_index("ticker")["close"].to_dict(), minutes=40, seed=2)
    replay_session(feats, history, lambda k: context, paths, committed=[final_day1], chunk_minutes=5)


def test_the_library_switched_off_is_nan_and_switched_on_mid_session_equals_the_batch():
    """Off, the Alpha158-like columns are NaN and the rest of the row is unchanged; switched on after half the
    tickers' first bars, the next update's library already reads the cross-section of every running bar."""
    history, (_, day1, _), universe = simulated_history()
    feats = IntradayFeatures.from_history(history, tickers=universe)
    last_close = history.sort_values("date").groupby("ticker")["close"].last().to_dict()
    feats.start_session(day1)
    feats.set_library(False)
    paths = intraday_paths(universe, last_close, minutes=10, seed=5)
    running = Running()
    for t, bars in paths.items():
        for minute in bars[~np.isnan(bars[:, 3])]:
            running.add(t, *minute)
    first, rest = universe[: len(universe) // 2], universe[len(universe) // 2 :]
    off = running.update(feats, first)
    library = [list(feats.columns).index(c) for c in LIBRARY_COLUMNS]
    assert np.isnan(off[:, library]).all()
    on = IntradayFeatures.from_history(history, tickers=universe)
    on.start_session(day1)
    other = [j for j in range(len(feats.columns)) if j not in library]
    np.testing.assert_array_equal(off[:, other], running.update(on, first)[:, other])
    feats.set_library(True)
    got = running.update(feats, rest)
    assert np.isfinite(got[:, library]).any()
    assert_equals_batch(feats, history, MarketContext(), rest, got)


def test_simulated_index_and_vix_series_follow_the_batch_fill_rule():
    """Index and VIX series that stop before the history does: the batch carries a level forward at most three
    sessions, so day 1 without a level reads the one of three sessions back and day 2 has none until it is given."""
    history, (_, day1, day2), universe = simulated_history()
    dates = sorted(history["date"].unique())
    rng = np.random.default_rng(3)
    index = pd.Series(3000.0 * np.exp(np.cumsum(rng.normal(0, 0.01, len(dates)))), index=dates)
    vix = pd.Series(20.0 + rng.normal(0, 2, len(dates)), index=dates)
    index, vix = index.iloc[:-2], vix.iloc[:-1]  # no index for the last two history days, no VIX for the last one
    context = MarketContext(index_close=index, vix=vix)
    feats = IntradayFeatures.from_history(history, context, tickers=universe)
    last_close = history.sort_values("date").groupby("ticker")["close"].last().to_dict()

    feats.start_session(day1, vix=21.5)
    day1_context = MarketContext(index_close=index, vix=pd.concat([vix, pd.Series({day1: 21.5})]))
    paths = intraday_paths(universe, last_close, minutes=30, seed=4)
    replay_session(feats, history, lambda k: day1_context, paths)
    final_day1 = feats.session_frame()

    feats.start_session(day2)  # no level yet: four sessions since the last one, past the fill limit
    given_from = 3  # the chunk whose update brings day 2's index level

    def context_at(chunk: int) -> MarketContext:
        day2_index = pd.concat([index, pd.Series({day2: 3100.0})]) if chunk >= given_from else index
        return MarketContext(index_close=day2_index, vix=day1_context.vix)

    paths = intraday_paths(universe, final_day1.set_index("ticker")["close"].to_dict(), minutes=40, seed=5)
    levels_at = lambda chunk: {"index_level": 3100.0} if chunk == given_from else {}  # noqa: E731
    replay_session(feats, history, context_at, paths, committed=[final_day1], levels_at=levels_at, chunk_minutes=5)


def test_a_day_on_which_only_a_new_listing_trades():
    """No ticker has a return on such a day: the equal-weight market return is NaN, its level carries on
    (ret.fillna(0).cumsum()), and the next day's regime, beta and derived VIX read that."""
    history, (_, day1, day2), universe = simulated_history()
    context = MarketContext()
    feats = IntradayFeatures.from_history(history, context, tickers=universe)
    feats.start_session(day1)
    got = feats.update(["NEW01"], [10.0], [10.5], [9.5], [10.2], [1e5])
    assert_equals_batch(feats, history, context, ["NEW01"], got)
    final_day1 = feats.session_frame()
    feats.start_session(day2)
    tickers = ["NEW01", "S00001", "S00002", "S00020"]
    got = feats.update(
        tickers, [10.0, 20, 30, 40], [10.5, 21, 31, 41], [9.5, 19, 29, 39], [10.4, 20, 30, 40], [1e5] * 4
    )
    assert_equals_batch(feats, history, context, tickers, got, committed=[final_day1])
    assert np.isfinite(got[1:, list(feats.columns).index("market_regime")]).all()


def test_a_constant_window_has_zero_variance_as_in_pandas():
    """pandas' rolling var answers exactly 0 for a window of equal values (its mean is the value itself), where a
    two-pass variance keeps a rounding residue that would turn a NaN correlation into a huge finite one."""
    window = np.full((1, 60), 0.1)
    rolling = pd.Series(window[0]).rolling(60, min_periods=60).var(ddof=0).iloc[-1]
    assert rolling == 0.0 == _var(window, 0)[0]
    assert np.isnan(_corr_cov(window, np.linspace(-0.01, 0.01, 60))[1]).all()


def test_a_day_without_a_level_has_no_regime_nor_market_beta():
    """Past the fill limit the batch has no index level: regime, market beta and correlation are NaN at D."""
    history, (_, day1, _), universe = simulated_history()
    dates = sorted(history["date"].unique())
    index = pd.Series(np.linspace(3000.0, 3300.0, len(dates)), index=dates).iloc[:-3]
    feats = IntradayFeatures.from_history(history, MarketContext(index_close=index), tickers=universe)
    feats.start_session(day1)
    got = feats.update(["S00001"], [10.0], [10.5], [9.5], [10.2], [1e5])
    columns = list(feats.columns)
    assert np.isnan(got[0, [columns.index(c) for c in ("market_regime", "market_beta_60", "market_corr_60")]]).all()
    assert_equals_batch(feats, history, MarketContext(index_close=index), ["S00001"], got)
    got = feats.update(["S00001"], [10.0], [10.5], [9.5], [10.2], [1e5], index_level=3310.0)
    assert np.isfinite(got[0, columns.index("market_beta_60")])


# -- errors -------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def small() -> tuple[pd.DataFrame, pd.Timestamp]:
    bars = simulate_bars(2, 4, "2023-01-02", "2023-04-28")
    return bars, bars["date"].max() + pd.Timedelta(days=3)


def test_update_before_a_session_is_an_error(small):
    bars, _ = small
    feats = IntradayFeatures.from_history(bars)
    with pytest.raises(RuntimeError, match="start_session"):
        feats.update(["S00000"], [1.0], [1.0], [1.0], [1.0], [1.0])


def test_unknown_tickers_and_mismatched_arrays_are_errors(small):
    bars, day = small
    feats = IntradayFeatures.from_history(bars)
    feats.start_session(day)
    with pytest.raises(KeyError, match="NOPE"):
        feats.update(["S00000", "NOPE"], [1.0, 1.0], [1.0, 1.0], [1.0, 1.0], [1.0, 1.0], [1.0, 1.0])
    with pytest.raises(ValueError, match="as long as tickers"):
        feats.update(["S00000", "S00001"], [1.0, 1.0], [1.0, 1.0], [1.0], [1.0, 1.0], [1.0, 1.0])
    with pytest.raises(ValueError, match="twice"):
        feats.update(["S00000", "S00000"], [1.0, 1.0], [1.0, 1.0], [1.0, 1.0], [1.0, 1.0], [1.0, 1.0])
    with pytest.raises(ValueError, match="finite"):
        feats.update(["S00001"], [1.0], [1.0], [1.0], [np.nan], [1.0])
    with pytest.raises(ValueError, match="no index"):
        feats.update(["S00001"], [1.0], [1.0], [1.0], [1.0], [1.0], index_level=3000.0)
    with pytest.raises(ValueError, match="not after"):
        feats.start_session(bars["date"].max())
    assert feats.session_frame().empty  # the failed calls set nothing


def test_the_committed_state_does_not_move_during_the_session(small):
    bars, day = small
    feats = IntradayFeatures.from_history(bars)
    state, count = feats._indicators.state.copy(), feats._indicators.count.copy()
    feats.start_session(day)
    for close in (10.0, 10.5, 9.8):
        feats.update(["S00000", "S00002"], [10.0, 20.0], [11.0, 21.0], [9.0, 19.0], [close, 20.0], [1e5, 2e5])
    np.testing.assert_array_equal(feats._indicators.state, state)
    np.testing.assert_array_equal(feats._indicators.count, count)
    feats.start_session(day + pd.Timedelta(days=1))
    np.testing.assert_array_equal(feats._indicators.count - count, [1, 0, 1, 0])


def test_the_universe_leaves_out_the_history_of_other_tickers(small):
    bars, day = small
    universe = ["S00001", "S00003", "NEW01"]
    feats = IntradayFeatures.from_history(bars, tickers=universe)
    assert list(feats.tickers) == universe
    feats.start_session(day)
    got = feats.update(["S00003", "NEW01"], [30.0, 5.0], [31.0, 5.5], [29.0, 4.5], [30.5, 5.2], [2e5, 1e4])
    assert_equals_batch(feats, bars[bars["ticker"].isin(universe)], MarketContext(), ["S00003", "NEW01"], got)
