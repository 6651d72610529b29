"""Risk and return figures of daily return series: annualized return and volatility, Sharpe, information ratio
against a benchmark, beta and alpha, maximum drawdown, cost drag, a beta-hedged book and a per-year breakdown. Each
figure has its one definition here; the report, the HTML page, Dagster metadata and MLflow all read these.

Conventions (252 sessions a year, a zero risk-free rate):
- `annual_return` = mean daily return x 252 (arithmetic, what Qlib's risk_analysis reports); `cagr` compounds:
  (prod(1 + r)) ^ (252 / days) - 1.
- `annual_vol` = std(ddof=1) x sqrt(252); `sharpe` = mean / std x sqrt(252).
- Excess returns are daily differences r - b; `information_ratio` = mean / std of them x sqrt(252),
  `tracking_error` = their std x sqrt(252).
- `beta` and `alpha` against a benchmark: the least-squares fit r = alpha_d + beta x b of the daily returns on the
  dates both have; `alpha` = alpha_d x 252 and `alpha_t` its t-statistic (ordinary standard errors).
- `cost_drag` = mean daily cost (gross - net return) x 252, arithmetic like `annual_return`: on the same dates it is
  exactly annual_return(gross) - annual_return(net). Per year the same, over the year's sessions.
- The beta-hedged book (`beta_hedged`): r_t - beta_t x b_t with beta_t the ex-ante beta (`ex_ante_beta`), the
  regression beta over the previous 60 common sessions, never using day t itself.
- `max_drawdown` is the worst fall of cumulative wealth prod(1 + r) from its running peak, the starting wealth 1
  counting as a peak (a first-day loss is a drawdown). `max_drawdown(..., compound=False)` is Qlib's version on the
  running sum of returns instead (`excess_max_drawdown_sum`: what Qlib's risk_analysis reports for excess returns).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

PERIODS_PER_YEAR = 252
HEDGE_WINDOW = 60  # sessions of the ex-ante beta's regression
HEDGE_MIN_PERIODS = 20  # fewer prior sessions than this: beta 1.0


def wealth(returns: pd.Series) -> pd.Series:
    """Cumulative growth of 1."""
    return (1.0 + returns.fillna(0.0)).cumprod()


def drawdown(returns: pd.Series, compound: bool = True) -> pd.Series:
    """The fall from the running peak on each date: of wealth prod(1 + r) (a fraction of the peak), or with
    compound=False of the running sum of returns (Qlib's)."""
    if compound:
        growth = wealth(returns)
        return growth / growth.cummax().clip(lower=1.0) - 1.0
    total = returns.fillna(0.0).cumsum()
    return total - total.cummax().clip(lower=0.0)


def max_drawdown(returns: pd.Series, compound: bool = True) -> float:
    return float(drawdown(returns, compound).min()) if len(returns) else float("nan")


def _ratio(mean: float, std: float, periods: int) -> float:
    return float(mean / std * np.sqrt(periods)) if std > 0 else float("nan")


def risk_metrics(
    returns: pd.Series, benchmark: pd.Series | None = None, periods: int = PERIODS_PER_YEAR
) -> dict[str, float]:
    """Annualized figures of daily returns, and with a benchmark (aligned on the dates both have) of the excess."""
    r = returns.dropna()
    n = len(r)
    mean, std = (float(r.mean()), float(r.std())) if n > 1 else (float("nan"), float("nan"))
    total = float((1.0 + r).prod() - 1.0) if n else float("nan")
    metrics = {
        "days": float(n),
        "total_return": total,
        "annual_return": mean * periods,
        "cagr": float((1.0 + total) ** (periods / n) - 1.0) if n and total > -1 else float("nan"),
        "annual_vol": std * np.sqrt(periods),
        "sharpe": _ratio(mean, std, periods),
        "max_drawdown": max_drawdown(r),
    }
    if benchmark is not None:
        excess = (r - benchmark.reindex(r.index)).dropna()
        e_mean, e_std = (float(excess.mean()), float(excess.std())) if len(excess) > 1 else (np.nan, np.nan)
        metrics |= {
            "excess_annual_return": e_mean * periods,
            "tracking_error": e_std * np.sqrt(periods),
            "information_ratio": _ratio(e_mean, e_std, periods),
            "excess_max_drawdown": max_drawdown(excess),
            "excess_max_drawdown_sum": max_drawdown(excess, compound=False),
            **beta_alpha(r, benchmark, periods),
        }
    return metrics


def beta_alpha(returns: pd.Series, benchmark: pd.Series, periods: int = PERIODS_PER_YEAR) -> dict[str, float]:
    """Beta, annualized alpha and alpha's t-statistic of the daily returns regressed on the benchmark's."""
    both = pd.concat([returns, benchmark.reindex(returns.index)], axis=1).dropna().to_numpy()
    nan = {"beta": float("nan"), "alpha": float("nan"), "alpha_t": float("nan")}
    if len(both) < 3 or both[:, 1].std() == 0:
        return nan
    y, x = both[:, 0], both[:, 1]
    design = np.column_stack([np.ones_like(x), x])
    coef, *_ = np.linalg.lstsq(design, y, rcond=None)
    resid = y - design @ coef
    sigma2 = float(resid @ resid) / (len(y) - 2)
    se_alpha = float(np.sqrt(sigma2 * np.linalg.inv(design.T @ design)[0, 0]))
    return {
        "beta": float(coef[1]),
        "alpha": float(coef[0]) * periods,
        "alpha_t": float(coef[0]) / se_alpha if se_alpha > 0 else float("nan"),
    }


def cost_drag(gross: pd.Series, net: pd.Series, periods: int = PERIODS_PER_YEAR) -> float:
    """The annualized cost: mean daily (gross - net) x 252 (see the module docstring)."""
    cost = (gross - net).dropna()
    return float(cost.mean()) * periods if len(cost) else float("nan")


def ex_ante_beta(
    returns: pd.Series, benchmark: pd.Series, window: int = HEDGE_WINDOW, min_periods: int = HEDGE_MIN_PERIODS
) -> pd.Series:
    """On each date both series have, the regression beta of `returns` on `benchmark` over the previous `window` such
    dates (expanding until there are `window`), known before the day: 1.0, the market's own beta, until `min_periods`
    prior dates exist or while the benchmark does not move."""
    both = pd.concat([returns, benchmark], axis=1, join="inner").dropna()
    r, b = both.iloc[:, 0], both.iloc[:, 1]
    beta = r.rolling(window, min_periods=min_periods).cov(b) / b.rolling(window, min_periods=min_periods).var()
    return beta.replace([np.inf, -np.inf], np.nan).shift(1).fillna(1.0).rename("hedge_ratio")


def beta_hedged(daily: pd.DataFrame, benchmark: pd.Series) -> pd.DataFrame:
    """A book's `gross` and `net` daily returns short `hedge_ratio` of the benchmark, on the dates both have:
    r_t - beta_t x b_t, with beta_t the ex-ante beta of the net returns (the hedge reset to beta_t of the account at
    each close). The hedge's own trading is not charged: it stands for an index future at about 1 bp of the notional
    traded, and the ratio moves little (`hedge_turnover` in the report, the mean |beta_t - beta_t-1|: about 0.01 a
    day for a top-50 book of the S&P 500, a few bp a year)."""
    beta = ex_ante_beta(daily["net"], benchmark)
    bench = benchmark.reindex(beta.index)
    hedged = {kind: daily[kind].reindex(beta.index) - beta * bench for kind in ("gross", "net")}
    return pd.DataFrame(hedged | {"hedge_ratio": beta})


def _by_year(series: pd.Series) -> pd.api.typing.SeriesGroupBy:
    return series.groupby(pd.DatetimeIndex(series.index).year)


def _fit_by_year(returns: pd.Series, benchmark: pd.Series, periods: int) -> pd.DataFrame:
    """`beta_alpha` within each calendar year (rows: years; columns beta, alpha, alpha_t)."""
    fits = {year: beta_alpha(r, benchmark, periods) for year, r in _by_year(returns)}
    return pd.DataFrame.from_dict(fits, orient="index", columns=["beta", "alpha", "alpha_t"])


def per_year(
    net: pd.Series,
    benchmarks: pd.DataFrame | None = None,
    gross: pd.Series | None = None,
    turnover: pd.Series | None = None,
    periods: int = PERIODS_PER_YEAR,
    excess: bool = True,
) -> pd.DataFrame:
    """One row per calendar year: the compounded return of the year (net, and gross when given), Sharpe and max
    drawdown (within the year), mean daily turnover, cost drag (with gross), and for each benchmark column: its
    compounded return, the difference of the two and the information ratio of the daily excess (unless
    excess=False: a long-short or hedged book is no bet on beating the benchmark), then beta, alpha and alpha_t of
    the net returns on it and alpha of the gross ones (`gross_alpha_<benchmark>`)."""

    def compounded(s: pd.Series) -> pd.Series:
        return _by_year(s).apply(lambda x: float((1.0 + x.dropna()).prod() - 1.0))

    table = pd.DataFrame({"days": _by_year(net).count().astype(float), "return": compounded(net)})
    if gross is not None:
        table["gross_return"] = compounded(gross)
    table["sharpe"] = _by_year(net).apply(lambda x: _ratio(x.mean(), x.std(), periods))
    table["max_drawdown"] = _by_year(net).apply(max_drawdown)
    if turnover is not None:
        table["turnover"] = _by_year(turnover).mean()
    if gross is not None:
        table["cost_drag"] = pd.Series(
            {year: cost_drag(g, net.reindex(g.index), periods) for year, g in _by_year(gross)}
        )
    for name, bench in (benchmarks if benchmarks is not None else pd.DataFrame()).items():
        bench = bench.reindex(net.index)
        if excess:
            table[f"{name}_return"] = compounded(bench)
            table[f"excess_{name}"] = table["return"] - table[f"{name}_return"]
            table[f"ir_{name}"] = _by_year(net - bench).apply(lambda x: _ratio(x.mean(), x.std(), periods))
        fit = _fit_by_year(net, bench, periods)
        for column in ("beta", "alpha", "alpha_t"):
            table[f"{column}_{name}"] = fit[column]
        if gross is not None:
            table[f"gross_alpha_{name}"] = _fit_by_year(gross, bench, periods)["alpha"]
    table.index.name = "year"
    return table


def signal_by_year(ic: pd.Series, rank_ic: pd.Series) -> pd.DataFrame:
    """Mean IC and rank IC of each calendar year with the rank ICIR (mean / std of the daily rank IC)."""
    table = pd.DataFrame(
        {
            "days": _by_year(rank_ic).count().astype(float),
            "ic": _by_year(ic).mean(),
            "rank_ic": _by_year(rank_ic).mean(),
            "rank_icir": _by_year(rank_ic).mean() / _by_year(rank_ic).std(),
        }
    )
    table.index.name = "year"
    return table
