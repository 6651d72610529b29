"""Risk and return figures of daily return series: annualized return and volatility, Sharpe, information ratio
against a benchmark, maximum drawdown, and a per-year breakdown.

Conventions (252 sessions a year, a zero risk-free rate):
- `annual_return` = mean daily return x 252 (arithmetic, what Qlib's risk_analysis reports); `cagr` compounds:
  (prod(1 + r)) ^ (252 / days) - 1.
- `annual_vol` = std(ddof=1) x sqrt(252); `sharpe` = mean / std x sqrt(252).
- Excess returns are daily differences r - b; `information_ratio` = mean / std of them x sqrt(252),
  `tracking_error` = their std x sqrt(252).
- `beta` and `alpha` against a benchmark: the least-squares fit r = alpha_d + beta x b of the daily returns on the
  dates both have; `alpha` = alpha_d x 252 and `alpha_t` its t-statistic (ordinary standard errors).
- `max_drawdown` is the worst fall of cumulative wealth prod(1 + r) from its running peak, the starting wealth 1
  counting as a peak (a first-day loss is a drawdown). `max_drawdown(..., compound=False)` is Qlib's version on the
  running sum of returns instead (`excess_max_drawdown_sum`: what Qlib's risk_analysis reports for excess returns).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

PERIODS_PER_YEAR = 252


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


def _by_year(series: pd.Series) -> pd.api.typing.SeriesGroupBy:
    return series.groupby(pd.DatetimeIndex(series.index).year)


def per_year(
    net: pd.Series,
    benchmarks: pd.DataFrame | None = None,
    gross: pd.Series | None = None,
    turnover: pd.Series | None = None,
    periods: int = PERIODS_PER_YEAR,
) -> pd.DataFrame:
    """One row per calendar year: the compounded return of the year (net, and gross when given), Sharpe and max
    drawdown (within the year), mean daily turnover, and for each benchmark column its compounded return, the
    difference of the two and the information ratio of the daily excess."""

    def compounded(s: pd.Series) -> pd.Series:
        return _by_year(s).apply(lambda x: float((1.0 + x.dropna()).prod() - 1.0))

    table = pd.DataFrame({"days": _by_year(net).count().astype(float), "return": compounded(net)})
    if gross is not None:
        table["gross_return"] = compounded(gross)
    table["sharpe"] = _by_year(net).apply(lambda x: _ratio(x.mean(), x.std(), periods))
    table["max_drawdown"] = _by_year(net).apply(max_drawdown)
    if turnover is not None:
        table["turnover"] = _by_year(turnover).mean()
    for name, bench in (benchmarks if benchmarks is not None else pd.DataFrame()).items():
        bench = bench.reindex(net.index)
        table[f"{name}_return"] = compounded(bench)
        table[f"excess_{name}"] = table["return"] - table[f"{name}_return"]
        excess = net - bench
        table[f"ir_{name}"] = _by_year(excess).apply(lambda x: _ratio(x.mean(), x.std(), periods))
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
