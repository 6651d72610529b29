"""Drift statistics (PSI over fixed reference bins, KS on the reference grid, the ordinary range), the day's verdict,
live performance against the champion's test figures, freshness, and the report before any champion exists."""

import dagster as dg
import numpy as np
import pandas as pd
import pytest
from scipy import stats
from support.env import local_env

from stockpred_assets.definitions import build_definitions
from stockpred_core.data import calendar
from stockpred_core.monitoring.daily_drift import classify, feature_summary, window_drift
from stockpred_core.monitoring.freshness import freshness
from stockpred_core.monitoring.performance import Baseline, live_performance
from stockpred_core.monitoring.reference import DriftReference, build_reference
from stockpred_core.monitoring.statistics import PSI_ALERT, PSI_WARN, bin_shares, fit_cuts, psi, psi_of_shares
from stockpred_core.monitoring.verdict import (
    ALERT,
    NO_SESSION,
    NOT_AVAILABLE,
    OK,
    WARN,
    DayVerdict,
    DriftThresholds,
    verdict,
)

SESSIONS = calendar.sessions("2023-01-03", "2024-12-31")


def long_frame(values: dict[str, np.ndarray], dates: pd.DatetimeIndex, tickers: int) -> pd.DataFrame:
    """Rows (date, ticker, columns...) from arrays of shape (len(dates), tickers)."""
    frame = pd.DataFrame({"date": np.repeat(dates.values, tickers), "ticker": np.tile(np.arange(tickers), len(dates))})
    return frame.assign(**{name: array.ravel() for name, array in values.items()})


def test_psi_of_known_shares_and_the_usual_thresholds():
    expected = (0.25 - 0.5) * np.log(0.25 / 0.5) + (0.75 - 0.5) * np.log(0.75 / 0.5)
    assert psi_of_shares(np.array([0.5, 0.5]), np.array([0.25, 0.75])) == pytest.approx(expected)
    assert psi_of_shares(np.array([0.5, 0.5]), np.array([0.5, 0.5])) == 0.0
    assert (PSI_WARN, PSI_ALERT) == (0.1, 0.25)
    rng = np.random.default_rng(0)
    ref = rng.normal(size=20_000)
    assert psi(ref, rng.normal(size=20_000)) < 0.01
    assert PSI_WARN < psi(ref, rng.normal(0.4, 1.0, size=20_000)) < PSI_ALERT
    assert psi(ref, rng.normal(1.0, 1.0, size=20_000)) > PSI_ALERT


def test_bins_are_fixed_by_the_reference_and_keep_discrete_values_apart():
    ref = np.repeat([-1.0, 0.0, 1.0], [200, 500, 300])  # a regime-like feature
    cuts = fit_cuts(ref)
    shares = bin_shares(ref, cuts)
    assert list(cuts) == [-1.0, 0.0, 1.0]
    assert shares == pytest.approx([0.0, 0.2, 0.5, 0.3])  # one bin per value, the first (< -1) empty
    # the bins do not move with the current data: all-bear days land in the -1 bin
    assert bin_shares(np.full(50, -1.0), cuts) == pytest.approx([0.0, 1.0, 0.0, 0.0])
    assert psi_of_shares(shares, bin_shares(np.full(50, -1.0), cuts)) > PSI_ALERT


def _reference(rng, window=20):
    """Two years of 30 tickers: `iid` is noise; `clustered` is a market-wide AR(1) level, the same for every ticker
    on a day (like the VIX); `shifted` is noise the current side will move."""
    n, k = len(SESSIONS), 30
    level = np.zeros(n)
    for t in range(1, n):
        level[t] = 0.98 * level[t - 1] + 0.2 * rng.normal()
    values = {
        "iid": rng.normal(size=(n, k)),
        "clustered": np.repeat(level[:, None], k, axis=1) + 0.05 * rng.normal(size=(n, k)),
        "shifted": rng.normal(size=(n, k)),
    }
    frame = long_frame(values, SESSIONS, k)
    return frame, build_reference(frame, ["iid", "clustered", "shifted"], window)


def test_reference_round_trips_through_its_table():
    frame, reference = _reference(np.random.default_rng(1))
    back = DriftReference.from_frame(reference.to_frame())
    assert (back.window, back.start, back.end, back.sessions) == (20, SESSIONS[0], SESSIONS[-1], len(SESSIONS))
    for name, ref in reference.features.items():
        other = back.features[name]
        np.testing.assert_allclose(other.cuts, ref.cuts)
        np.testing.assert_allclose(other.shares, ref.shares)
        np.testing.assert_allclose(other.ks_cdf, ref.ks_cdf)
        assert other.ordinary_psi == pytest.approx(ref.ordinary_psi) and other.rows == ref.rows == len(frame)


def test_window_psi_and_ks_match_a_direct_computation():
    rng = np.random.default_rng(2)
    frame, reference = _reference(rng)
    days = pd.DatetimeIndex(["2024-06-14", "2024-06-15", "2024-12-31"])  # a Saturday reads the Friday's window
    result = window_drift(frame, reference, days, 20).set_index(["date", "feature"])
    for day in days:
        end = SESSIONS[SESSIONS <= day][-1]
        rows = frame[(frame["date"] <= end) & (frame["date"] > SESSIONS[SESSIONS.get_loc(end) - 20])]
        for name in ("iid", "clustered"):
            ref = reference.features[name]
            got = result.loc[(day, name)]
            assert got["rows"] == len(rows) and got["window_end"] == end
            assert got["psi"] == pytest.approx(psi_of_shares(ref.shares, bin_shares(rows[name], ref.cuts)))
            exact = stats.ks_2samp(frame[name], rows[name]).statistic
            assert abs(got["ks"] - exact) <= 0.011  # the reference's percentile grid: within a percentile


def test_a_feature_drifts_only_beyond_its_ordinary_range():
    rng = np.random.default_rng(3)
    frame, reference = _reference(rng)
    # the market-wide level wanders far from its two-year distribution in any month; noise does not
    assert reference.features["clustered"].ordinary_psi > 1.0 > 0.1 > reference.features["iid"].ordinary_psi
    days = calendar.sessions("2025-01-02", "2025-02-28")
    k = 30
    current = long_frame(
        {
            "iid": rng.normal(size=(len(days), k)),
            "clustered": np.full((len(days), k), np.quantile(frame["clustered"], 0.8)),  # a spell at the high end
            "shifted": rng.normal(1.5, 1.0, size=(len(days), k)),
        },
        days,
        k,
    )
    thresholds = DriftThresholds()
    classified = classify(window_drift(current, reference, days[-1:], 20), reference, thresholds)
    rows = classified.set_index("feature")
    assert rows.loc["shifted", "status"] == ALERT and rows.loc["shifted", "drifting"]
    assert rows.loc["clustered", "status"] == ALERT and not rows.loc["clustered", "drifting"]
    assert rows.loc["iid", "status"] == OK and not rows.loc["iid", "drifting"]
    assert rows.loc["clustered", "limit"] == pytest.approx(1.5 * reference.features["clustered"].ordinary_psi)
    assert rows.loc["iid", "limit"] == PSI_ALERT

    summary = feature_summary(classified, thresholds).iloc[0]
    assert (summary["features"], summary["drifting"], summary["alert"]) == (3, 1, 2)
    assert summary["feature_status"] == ALERT  # a third of the features drift: past the 0.3 alert share
    calm = feature_summary(classified, DriftThresholds(alert_share=0.5)).iloc[0]
    assert calm["feature_status"] == WARN
    quiet = feature_summary(classified, DriftThresholds(alert_share=0.5, warn_share=0.5)).iloc[0]
    assert quiet["feature_status"] == OK


def test_only_drifting_features_raise_the_alert():
    assert verdict(ALERT, OK, OK, OK).status == ALERT
    decay = verdict(OK, OK, WARN, OK)
    assert decay.status == WARN and "live performance" in decay.reasons[0]
    stale = verdict(OK, WARN, NOT_AVAILABLE, WARN)
    assert stale.status == WARN and len(stale.reasons) == 2
    assert verdict(OK, NOT_AVAILABLE, NOT_AVAILABLE, OK) == DayVerdict(OK)


def _returns(days: pd.DatetimeIndex, tickers: int, rng) -> pd.Series:
    index = pd.MultiIndex.from_product([days, [f"T{i}" for i in range(tickers)]], names=["date", "ticker"])
    return pd.Series(rng.normal(0, 0.02, size=len(index)), index=index)


def test_live_performance_uses_only_labels_known_on_the_day():
    rng = np.random.default_rng(4)
    days = calendar.sessions("2024-01-02", "2024-06-28")
    realized = _returns(days, 30, rng)
    baseline = Baseline(rank_ic=0.05, mse_vs_naive=1.0, horizon=5)
    good = realized + rng.normal(0, 0.02, size=len(realized))  # informative forecasts
    result = live_performance(good, realized, days[-3:], baseline, ic_window=60)
    last = result.iloc[-1]
    # the day's report counts prediction dates whose 5-session return has ended by it: not the last 5 sessions
    assert last["ic_dates"] == 60
    assert last["live_rank_ic"] > 0.5 and last["ic_gap_t"] > 2 and last["decay_status"] == OK
    early = live_performance(good, realized, days[20:21], baseline, ic_window=60).iloc[0]
    assert early["ic_dates"] == 16 and early["decay_status"] == NOT_AVAILABLE  # fewer than 20 labelled dates

    wrong = -good  # a model whose sign flipped
    flipped = live_performance(wrong, realized, days[-1:], baseline, ic_window=60).iloc[0]
    assert flipped["live_rank_ic"] < -0.5 and flipped["ic_gap_t"] < -2 and flipped["decay_status"] == WARN
    noisy = live_performance(realized * 0 + rng.normal(size=len(realized)), realized, days[-1:], baseline, 60)
    assert noisy.iloc[0]["live_mse_vs_naive"] > 1.1 and noisy.iloc[0]["decay_status"] == WARN  # error worse
    # a new champion's first days: predictions whose returns are not realized yet
    fresh = live_performance(good.loc[days[-3:]], realized.loc[days[:-10]], days[-3:], baseline, 60)
    assert (fresh["ic_dates"] == 0).all() and (fresh["decay_status"] == NOT_AVAILABLE).all()


def test_freshness_flags_missing_and_thin_days():
    days = calendar.sessions("2025-06-23", "2025-07-03")
    counts = pd.Series(50, index=days)
    counts[pd.Timestamp("2025-07-02")] = 30  # a partial day
    counts = counts.drop(pd.Timestamp("2025-07-03"))  # not ingested yet
    result = freshness(counts, [*days, pd.Timestamp("2025-07-04")])
    assert result.loc["2025-07-01", "fresh"] == OK and result.loc["2025-07-01", "coverage"] == 1.0
    assert result.loc["2025-07-02", "fresh"] == WARN and result.loc["2025-07-02", "coverage"] == 0.6
    late = result.loc["2025-07-03"]
    assert (
        late["fresh"] == WARN and late["sessions_behind"] == 1 and late["last_data_date"] == pd.Timestamp("2025-07-02")
    )
    assert result.loc["2025-07-04", "fresh"] == NO_SESSION


def test_drift_report_without_a_champion_says_so_and_does_not_fail(tmp_path, monkeypatch):
    for key, value in local_env(tmp_path).items():
        monkeypatch.setenv(key, value)
    run = (
        build_definitions()
        .resolve_implicit_global_asset_job_def()
        .execute_in_process(
            instance=dg.DagsterInstance.ephemeral(),
            asset_selection=[dg.AssetKey("drift_report")],
            partition_key="2025-03-12",
        )
    )
    meta = run.asset_materializations_for_node("drift_report")[0].metadata
    assert meta["drift_status"].value == "n/a" and "no champion" in meta["note"].value
    checks = {e.asset_check_key.name: e for e in run.get_asset_check_evaluations()}
    assert checks["feature_drift"].passed and checks["prediction_drift"].passed
    assert not checks["data_freshness"].passed  # no features at all for the day
