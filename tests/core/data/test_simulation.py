import numpy as np
import pandas as pd
import pytest

from stockpred_core.data import calendar
from stockpred_core.data.adjustments import adjust
from stockpred_core.data.schemas import BarSchema
from stockpred_core.data.simulation import Regime, simulate_bars, simulate_market, simulated_tickers
from stockpred_resources.providers import SimulatedProvider


@pytest.fixture(scope="module")
def bars() -> pd.DataFrame:
    return simulate_bars(seed=7, universe_size=40, start="2021-01-04", end="2023-12-29")


def test_canonical_schema_and_sessions_only(bars):
    BarSchema.validate(bars)
    assert set(bars["date"].unique()) == set(calendar.sessions("2021-01-04", "2023-12-29"))
    assert len(bars) == 40 * len(calendar.sessions("2021-01-04", "2023-12-29"))


def test_a_bar_depends_only_on_seed_ticker_and_date(bars):
    window = simulate_bars(seed=7, universe_size=60, start="2022-06-01", end="2022-06-10", tickers=["S00003", "S00039"])
    joined = window.merge(bars, on=["date", "ticker"], suffixes=("", "_full"))
    assert len(joined) == len(window) == 2 * 8
    for col in ["open", "high", "low", "close", "volume"]:
        np.testing.assert_array_equal(joined[col], joined[f"{col}_full"])
    other_seed = simulate_bars(seed=8, universe_size=40, start="2022-06-01", end="2022-06-10")
    assert not np.allclose(other_seed["close"], bars[bars["date"].between("2022-06-01", "2022-06-10")]["close"])


def test_market_has_fat_tails_common_factor_and_volume_tied_to_moves(bars):
    close = bars.pivot(index="date", columns="ticker", values="close")
    volume = bars.pivot(index="date", columns="ticker", values="volume")
    ret = np.log(close).diff().iloc[1:]
    assert ret.stack().kurt() > 1.0  # excess kurtosis: fatter tails than the normal
    corr = ret.corr().to_numpy()
    assert corr[np.triu_indices_from(corr, 1)].mean() > 0.2  # a market factor moves the names together
    abs_ret = ret.abs().rank(axis=0)
    assert abs_ret.corrwith(volume.iloc[1:].rank(axis=0)).mean() > 0.2
    # Volatility clustering: |returns| are autocorrelated.
    assert np.mean([ret[c].abs().autocorr(1) for c in ret]) > 0.05


def test_provider_resource_universe_and_errors():
    provider = SimulatedProvider(seed=7, universe_size=12)
    assert provider.universe() == simulated_tickers(12)
    assert SimulatedProvider(universe_size=12, tickers=["s00003", "S00001"]).universe() == ["S00003", "S00001"]
    holiday = provider.fetch_bars(pd.Timestamp("2024-07-04"), pd.Timestamp("2024-07-04"))
    assert holiday.bars.empty and holiday.failures.empty
    report = provider.fetch_bars(pd.Timestamp("2024-07-01"), pd.Timestamp("2024-07-02"), ["S00001", "AAPL"])
    assert sorted(report.bars["ticker"].unique()) == ["S00001"] and report.bars["request_id"].nunique() == 1
    assert report.failures[["ticker", "kind", "retryable"]].to_dict("records") == [
        {"ticker": "AAPL", "kind": "unknown_ticker", "retryable": False}
    ]
    with pytest.raises(ValueError, match="between 1 and 99,999"):
        simulated_tickers(0)


def test_splits_and_dividends_come_with_their_events():
    bars, events = simulate_market(7, 50, "2013-01-02", "2018-12-31")
    assert set(events["kind"]) == {"split", "dividend"}
    close = bars.pivot(index="date", columns="ticker", values="close")
    for split in events[events["kind"] == "split"].itertuples():
        day = close.index.get_loc(split.date)
        raw_move = close[split.ticker].iloc[day] / close[split.ticker].iloc[day - 1]
        assert raw_move * split.value == pytest.approx(1.0, abs=0.35)  # the raw price drops by about the ratio
    adjusted = adjust(bars, events).pivot(index="date", columns="ticker", values="close").pct_change()
    assert adjusted.abs().max().max() < 0.5  # no split survives adjustment as a jump
    dividends = events[events["kind"] == "dividend"]
    assert (dividends["value"] > 0).all() and dividends["ticker"].nunique() < 50  # some tickers pay, not all


def test_regime_switch_raises_market_volatility_from_its_start():
    calm = simulate_bars(7, 30, "2020-01-02", "2021-12-31")
    stressed = simulate_bars(7, 30, "2020-01-02", "2021-12-31", regime=Regime("2021-01-04"))
    before = calm[calm["date"] < "2021-01-04"]
    pd.testing.assert_frame_equal(
        before.drop(columns="ingested_at"), stressed[stressed["date"] < "2021-01-04"].drop(columns="ingested_at")
    )

    def market_vol(frame):
        ret = np.log(frame.pivot(index="date", columns="ticker", values="close")).diff()
        return ret[ret.index >= "2021-01-04"].mean(axis=1).std()

    assert market_vol(stressed) > 1.6 * market_vol(calm)
