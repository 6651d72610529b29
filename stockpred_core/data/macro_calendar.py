"""When each macroeconomic series' value becomes public: the publication lag per series.

FRED files and the `series/observations` API index a value by its OBSERVATION period (the month of a CPI print, the
day of a VIX close) and hold the latest revision. A value for period P is used only from the moment it was
published, never from P itself. The rules below are the release schedules of the agencies, taken on the late side
where a schedule varies, so a feature never sees a value before it was out:

- daily series (VIXCLS, DGS10, TEDRATE, DFF): the day's value is known after the day ends: from the next session;
- UNRATE (BLS Employment Situation): 08:30 ET on the third Friday after the reference week (the week holding the
  12th of month M), which is the first Friday of M+1 in most months and the second in some (a government shutdown
  delays it further: September 2013 came out on 22 October);
- CPIAUCSL (BLS CPI): 08:30 ET on the 21st of M+1 (the release is between the 10th and the 20th in 2013-2023,
  except the October 2013 shutdown: the 30th);
- FEDFUNDS (monthly average of the daily rate): the 2nd of M+1;
- MICH (Michigan inflation expectations, final): the 1st of M+1;
- OECD monthly series (CPALTT01USM657N, IRLTLT01USM156N): the 1st of M+2;
- GDP (quarterly, BEA): the advance estimate about a month after the quarter, later revised: the 1st of the
  quarter's fourth month + 1 (values are latest-revised: a production system uses ALFRED vintages instead).

A series without a rule here is refused (no silent default lag).
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

EASTERN = "America/New_York"


@dataclass(frozen=True)
class SeriesSpec:
    series: str
    frequency: str  # daily | monthly | quarterly
    title: str
    rule: str  # how the publication moment is derived (documentation, shown in the UI)


SERIES: dict[str, SeriesSpec] = {
    s.series: s
    for s in [
        SeriesSpec("VIXCLS", "daily", "CBOE Volatility Index close", "the next day, 00:00 ET"),
        SeriesSpec("DGS10", "daily", "10-year Treasury constant maturity yield (%)", "the next day, 00:00 ET"),
        SeriesSpec("TEDRATE", "daily", "TED spread (%)", "the next day, 00:00 ET"),
        SeriesSpec("DFF", "daily", "Effective federal funds rate (%)", "the next day, 00:00 ET"),
        SeriesSpec(
            "UNRATE", "monthly", "Unemployment rate (%)", "08:30 ET, third Friday after the week holding the 12th"
        ),
        SeriesSpec("CPIAUCSL", "monthly", "CPI, all urban consumers (index)", "08:30 ET on the 21st of M+1"),
        SeriesSpec("FEDFUNDS", "monthly", "Federal funds rate, monthly average (%)", "the 2nd of M+1, 00:00 ET"),
        SeriesSpec("MICH", "monthly", "Michigan 1-year inflation expectations (%)", "the 1st of M+1, 00:00 ET"),
        SeriesSpec("CPALTT01USM657N", "monthly", "OECD CPI growth, month on month (%)", "the 1st of M+2, 00:00 ET"),
        SeriesSpec("IRLTLT01USM156N", "monthly", "OECD long-term interest rate (%)", "the 1st of M+2, 00:00 ET"),
        SeriesSpec("GDP", "quarterly", "Gross domestic product (bn USD, latest revision)", "the 1st of Q+4 months"),
    ]
}


class UnknownSeriesError(KeyError):
    pass


def _eastern_to_utc(local: pd.Series) -> pd.Series:
    return local.dt.tz_localize(EASTERN).dt.tz_convert("UTC").dt.tz_localize(None)


def _month_start(observed: pd.Series, months: int) -> pd.Series:
    return observed.dt.to_period("M").dt.to_timestamp() + pd.DateOffset(months=months)


def _unrate_release(observed: pd.Series) -> pd.Series:
    """BLS: the Employment Situation comes out on the third Friday after the reference week (Sunday to Saturday,
    holding the 12th)."""
    twelfth = observed.dt.to_period("M").dt.to_timestamp() + pd.Timedelta(days=11)
    saturday = twelfth + pd.to_timedelta((5 - twelfth.dt.weekday) % 7, unit="D")  # end of the reference week
    first_friday = saturday + pd.Timedelta(days=6)
    return first_friday + pd.Timedelta(days=14) + pd.Timedelta(hours=8, minutes=30)


def published_at(series: str, observed_on: pd.Series) -> pd.Series:
    """The tz-naive UTC moment each observation of `series` became public (see the module's rules)."""
    if series not in SERIES:
        raise UnknownSeriesError(f"{series}: no publication lag is known for this series (add it to SERIES)")
    observed = pd.to_datetime(pd.Series(observed_on)).dt.normalize()
    spec = SERIES[series]
    if spec.frequency == "daily":
        local = observed + pd.Timedelta(days=1)
    elif series == "UNRATE":
        local = _unrate_release(observed)
    elif series == "CPIAUCSL":
        local = _month_start(observed, 1) + pd.Timedelta(days=20, hours=8, minutes=30)
    elif series == "FEDFUNDS":
        local = _month_start(observed, 1) + pd.Timedelta(days=1)
    elif series == "MICH":
        local = _month_start(observed, 1)
    elif spec.frequency == "monthly":  # OECD
        local = _month_start(observed, 2)
    else:  # quarterly GDP: the observation is the quarter's first day
        local = _month_start(observed, 4)
    return _eastern_to_utc(local)
