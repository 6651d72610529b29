"""Signal metrics by hand, the vectorized daily IC against a per-date reference, and the report: figures, flat
metrics, Markdown and a self-contained HTML file."""

import dataclasses
import re

import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure

from stockpred_core.evaluation.backtest import daily_ic, signal_metrics
from stockpred_core.evaluation.report import build_report
from stockpred_core.evaluation.strategies import Strategy


def _long(rows: list[list[float]], dates: pd.DatetimeIndex, tickers: list[str]) -> pd.Series:
    wide = pd.DataFrame(rows, index=dates, columns=pd.Index(tickers, name="ticker"))
    return wide.stack().rename_axis(["date", "ticker"])


def test_signal_metrics_by_hand():
    dates = pd.bdate_range("2024-01-01", periods=2, name="date")
    pred = _long([[-0.01, 0.0, 0.01], [-0.01, 0.0, 0.01]], dates, ["A", "B", "C"])
    label = _long([[0.01, 0.03, 0.02], [-0.01, 0.0, 0.01]], dates, ["A", "B", "C"])
    result = signal_metrics(pred, label)
    m = result.metrics
    # d0: deviations (-1, 0, 1) x 0.01 and (-1, 1, 0) x 0.01 -> IC 0.01 / sqrt(2 x 2) x 100 = 0.5; ranks 1 2 3 and
    # 1 3 2 -> rank IC 0.5. d1: 1 and 1. Mean 0.75, std sqrt(2 x 0.25^2) = 0.3536, IR 2.1213, t = IR x sqrt(2) = 3.
    np.testing.assert_allclose(result.ic, [0.5, 1.0], rtol=0, atol=1e-15)
    np.testing.assert_allclose(result.rank_ic, [0.5, 1.0], rtol=0, atol=1e-15)
    assert m["ic"] == pytest.approx(0.75) and m["rank_ic"] == pytest.approx(0.75)
    assert m["ic_std"] == pytest.approx(np.sqrt(0.125), abs=1e-15)
    assert m["icir"] == pytest.approx(0.75 / np.sqrt(0.125), abs=1e-14)
    assert m["rank_ic_t"] == pytest.approx(3.0, abs=1e-14) and m["rank_ic_positive"] == 1.0
    # Signs agree on C at d0 and on all three at d1 (0 and 0 agree): 4 of 6.
    assert m["hit_rate"] == pytest.approx(4 / 6, abs=1e-15)
    # Squared errors 0.0004 + 0.0009 + 0.0001 (d1 is exact) over 6; the zero forecast's 0.0016 over 6.
    assert m["mse"] == pytest.approx(0.0014 / 6, abs=1e-18) and m["naive_mse"] == pytest.approx(0.0016 / 6, abs=1e-18)
    assert m["mse_vs_naive"] == pytest.approx(0.875, abs=1e-14) and m["oos_r2"] == pytest.approx(0.125, abs=1e-14)
    assert m["n_predictions"] == 6 and m["n_dates"] == 2
    # With a 2-session label only every 2nd date enters the t-statistic: one sample, no t.
    assert np.isnan(signal_metrics(pred, label, horizon=2).metrics["rank_ic_t"])


def test_daily_ic_matches_a_per_date_reference_with_gaps():
    rng = np.random.default_rng(5)
    dates = pd.bdate_range("2024-01-01", periods=30, name="date")
    tickers = [f"T{i}" for i in range(9)]
    pred = _long(rng.normal(size=(30, 9)).tolist(), dates, tickers)
    label = (0.3 * pred + pd.Series(rng.normal(size=len(pred)), index=pred.index)).round(1)  # ties in the ranks
    pred = pred.mask(rng.random(len(pred)) < 0.2)
    label = label.mask(rng.random(len(label)) < 0.2).drop(label.index[:7])  # d0: 2 tickers at most
    both = pd.concat({"p": pred, "y": label}, axis=1, join="inner").dropna()
    for method in ("pearson", "spearman"):
        expected = both.groupby(level="date").apply(
            lambda g, m=method: g["p"].corr(g["y"], method=m) if len(g) >= 3 else np.nan
        )
        pd.testing.assert_series_equal(
            daily_ic(pred, label, method), expected.dropna(), check_names=False, atol=1e-13, rtol=0
        )
    with pytest.raises(ValueError, match="method"):
        daily_ic(pred, label, "kendall")


@pytest.fixture(scope="module")
def market():
    rng = np.random.default_rng(11)
    dates = pd.bdate_range("2022-12-01", periods=60, name="date")
    tickers = [f"T{i:02d}" for i in range(15)]
    returns = pd.DataFrame(rng.normal(0.0005, 0.02, (60, 15)), index=dates, columns=tickers)
    returns.iloc[0] = np.nan
    following = returns.shift(-1)
    pred = (following + rng.normal(0, 0.02, following.shape)).iloc[:-1].stack().rename_axis(["date", "ticker"])
    index_close = pd.Series(
        100 * np.cumprod(1 + rng.normal(0.0003, 0.01, 61)), index=pd.bdate_range("2022-11-30", periods=61)
    )
    strategies = (Strategy("topk_dropout", k=5, n_drop=1), Strategy("topk", k=5), Strategy("long_short", k=3))
    return pred, returns, index_close, strategies


@pytest.fixture(scope="module")
def report(market):
    pred, returns, index_close, strategies = market
    return build_report(pred, returns, strategies=strategies, index_close=index_close, index_name="sp500")


def test_report_tables_and_flat_metrics(report):
    assert set(report.portfolios) == {"top5_drop1", "top5", "long_short3"}
    assert list(report.summary.index) == [
        *(f"{name} {kind}" for name in ("top5_drop1", "top5", "long_short3") for kind in ("gross", "net")),
        "top5_drop1 beta_neutral",
        "sp500",
        "equal_weight",
    ]
    spread = report.summary.loc["long_short3 net"]
    assert np.isnan(spread["ir_sp500"]) and np.isnan(spread["excess_equal_weight"])  # a spread beats no benchmark
    assert np.isfinite(spread[["beta_sp500", "alpha_sp500", "alpha_t_sp500", "alpha_t_equal_weight"]]).all()
    for name in report.portfolios:  # one definition: the cost drag is what the costs take off the annual return
        gross, net = report.summary.loc[f"{name} gross"], report.summary.loc[f"{name} net"]
        assert net["cost_drag"] == pytest.approx(gross["annual_return"] - net["annual_return"], rel=1e-12)
        assert net["cost_drag"] > 0
    assert report.summary.loc["top5 net", "annual_return"] < report.summary.loc["top5 gross", "annual_return"]
    assert report.per_year["top5"].index.tolist() == [2022, 2023]
    assert report.signal.metrics["rank_ic"] > 0.3
    flat = report.metrics()
    assert flat["top5_drop1.net.ir_sp500"] == pytest.approx(report.summary.loc["top5_drop1 net", "ir_sp500"])
    assert "signal.rank_icir" in flat and "equal_weight.sharpe" in flat
    assert all(np.isfinite(v) for v in flat.values())
    assert all(re.fullmatch(r"[\w./ -]+", k) for k in flat)  # MLflow metric names
    text = report.markdown()
    assert "| top5_drop1 net |" in text and "rank_icir" in text
    assert "| top5_drop1 beta_neutral |" in text and "alpha_t_sp500" in text and "cost_drag" in text


def test_the_beta_neutral_book_is_the_primary_book_short_its_ex_ante_beta(report):
    assert report.primary == "top5_drop1" and report.beta_neutral_name == "top5_drop1 beta_neutral"
    book, hedged, index = report.portfolios["top5_drop1"].daily, report.beta_neutral, report.benchmarks["sp500"]
    np.testing.assert_allclose(hedged["hedge_ratio"].iloc[:20], 1.0)  # fewer than 20 earlier days: beta 1
    np.testing.assert_allclose(hedged["net"], book["net"] - hedged["hedge_ratio"] * index, rtol=0, atol=1e-15)
    row = report.summary.loc["top5_drop1 beta_neutral"]
    assert row["annual_return"] == pytest.approx(hedged["net"].mean() * 252, rel=1e-12)
    assert row["cost_drag"] == report.summary.loc["top5_drop1 net", "cost_drag"]
    assert row["hedge_ratio"] == pytest.approx(hedged["hedge_ratio"].mean()) and np.isnan(row["excess_sp500"])
    table = report.per_year["top5_drop1 beta_neutral"]
    assert {"return", "gross_return", "cost_drag", "beta_sp500", "alpha_t_sp500"} <= set(table.columns)
    assert report.metrics()["top5_drop1.beta_neutral.alpha_t_sp500"] == pytest.approx(row["alpha_t_sp500"])


def test_per_year_tables_carry_alpha_beta_and_cost_drag(report):
    table = report.per_year["top5"]
    for column in (
        "cost_drag",
        "beta_sp500",
        "alpha_sp500",
        "alpha_t_sp500",
        "gross_alpha_sp500",
        "alpha_equal_weight",
    ):
        assert table[column].notna().all(), column
    assert (table["gross_alpha_sp500"] > table["alpha_sp500"]).all()  # costs only take
    assert "excess_sp500" not in report.per_year["long_short3"] and "beta_sp500" in report.per_year["long_short3"]


def test_a_report_without_an_index_has_no_beta_neutral_book(market):
    pred, returns, _, strategies = market
    report = build_report(pred, returns, strategies=strategies)
    assert report.beta_neutral is None and not any("beta_neutral" in row for row in report.summary.index)
    assert set(report.per_year) == {"top5_drop1", "top5", "long_short3"}
    assert np.isfinite(report.summary.loc["long_short3 net", "alpha_t_equal_weight"])
    assert len(report.figures()) == 3


def test_an_index_file_that_ends_early_is_noted(market):
    pred, returns, index_close, strategies = market
    report = build_report(pred, returns, strategies=strategies, index_close=index_close.iloc[:40], index_name="sp500")
    assert "the sp500 closes end on 2023-01-24, before 2023-02-22" in report.notes
    assert (report.benchmarks["sp500"].loc["2023-01-25":] == 0.0).all()  # the last close carried


def test_report_figures_and_html(report, tmp_path):
    figures = report.figures()
    assert set(figures) == {"cumulative_return", "ic", "drawdown"}
    assert all(isinstance(f, Figure) and f.axes for f in figures.values())
    assert len(figures["cumulative_return"].axes) == 2  # cumulative return; excess over the index
    path = tmp_path / "report.html"
    page = report.to_html(path)
    assert path.read_text(encoding="utf-8") == page
    assert page.startswith("<!DOCTYPE html>") and page.rstrip().endswith("</html>")
    assert page.count('src="data:image/png;base64,') == 3
    assert page.count("<table") == 3 + len(report.per_year)  # signal, signal by year, summary, one per strategy
    for text in ("Signal metrics", "top5_drop1 net", "long_short3", "equal_weight", "sp500", "2023"):
        assert text in page
    # the beta-neutral book's summary column and per-year table; per-year alpha, beta and cost drag of every book
    assert "<th>top5_drop1 beta_neutral</th>" in page and "<h3>top5_drop1 beta_neutral: by year" in page
    for figure in ("cost_drag", "beta_sp500", "alpha_sp500", "alpha_t_sp500", "beta_equal_weight"):
        assert page.count(f"<th>{figure}</th>") == 1 + len(report.per_year), figure  # the summary's row, a column each
    assert page.count("<th>gross_alpha_sp500</th>") == len(report.per_year)
    alpha_t = report.summary.loc["top5 net", "alpha_t_sp500"]
    assert f"<td>{alpha_t:.4f}</td>" in page or f"<td>{alpha_t:.3f}</td>" in page  # a t-statistic, not a percentage
    assert f"<td>{report.summary.loc['top5 net', 'cost_drag']:.2%}</td>" in page


def test_html_escapes_what_comes_from_data(report):
    hostile = dataclasses.replace(report, title="<script>alert(1)</script> & co", notes=['ticker "<b>X</b>"'])
    page = hostile.to_html()
    assert "<script>" not in page and "<b>" not in page
    assert "<h1>&lt;script&gt;alert(1)&lt;/script&gt; &amp; co</h1>" in page
    assert "<title>&lt;script&gt;alert(1)&lt;/script&gt; &amp; co</title>" in page
    assert '<p class="note">ticker &#34;&lt;b&gt;X&lt;/b&gt;&#34;</p>' in page
