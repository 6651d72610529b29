import numpy as np
import pandas as pd
import pytest

from stockpred_assets.core import calendar
from stockpred_assets.core.schemas import BarSchema
from stockpred_assets.core.simulation import simulate_bars, simulated_tickers
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
    assert provider.fetch_bars(pd.Timestamp("2024-07-04"), pd.Timestamp("2024-07-04")).empty  # a holiday
    with pytest.raises(ValueError, match="not in the simulated universe"):
        provider.fetch_bars(pd.Timestamp("2024-07-01"), pd.Timestamp("2024-07-02"), ["AAPL"])
    with pytest.raises(ValueError, match="between 1 and 99,999"):
        simulated_tickers(0)
