"""When each macroeconomic series' value becomes public: the publication lag per series.

FRED files and the `series/observations` API index a value by its OBSERVATION period (the month of a CPI print, the
day of a VIX close) and hold the latest revision. A value for period P is used only from the moment it was
published, never from P itself. The rules below are the release schedules of the agencies, taken on the late side
where a schedule varies, so a feature never sees a value before it was out:

- daily series (VIXCLS, DGS10, TEDRATE, DFF): the day's value is known after the day ends: from the next session;
- UNRATE (BLS Employment Situation): 08:30 ET on the 15th of M+1. The release is the first or second Friday of M+1
  (the third Friday after the week holding the 12th: the 7th to the 14th), so the 15th is never early; it is late by
  up to a week, the price of never using a value before it was out. Releases a government shutdown delayed are in
  LATE_RELEASES;
- CPIAUCSL (BLS CPI): 00:00 ET on the 1st of M+2. The release is between the 10th and the 26th of M+1 in 2013-2023
  (January's CPI came out on 26 February 2015; September 2013's, in the shutdown, on 30 October);
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
        SeriesSpec("UNRATE", "monthly", "Unemployment rate (%)", "08:30 ET on the 15th of M+1 (or its late release)"),
        SeriesSpec("CPIAUCSL", "monthly", "CPI, all urban consumers (index)", "the 1st of M+2, 00:00 ET"),
        SeriesSpec("FEDFUNDS", "monthly", "Federal funds rate, monthly average (%)", "the 2nd of M+1, 00:00 ET"),
        SeriesSpec("MICH", "monthly", "Michigan 1-year inflation expectations (%)", "the 1st of M+1, 00:00 ET"),
        SeriesSpec("CPALTT01USM657N", "monthly", "OECD CPI growth, month on month (%)", "the 1st of M+2, 00:00 ET"),
        SeriesSpec("IRLTLT01USM156N", "monthly", "OECD long-term interest rate (%)", "the 1st of M+2, 00:00 ET"),
        SeriesSpec("GDP", "quarterly", "Gross domestic product (bn USD, latest revision)", "the 1st of Q+4 months"),
    ]
}


# Releases later than their series' rule, as the agency published them: (series, observation month) -> Eastern time.
LATE_RELEASES: dict[tuple[str, str], str] = {
    ("UNRATE", "2013-09"): "2013-10-22 08:30",  # the October 2013 shutdown
    ("UNRATE", "2025-09"): "2025-11-20 08:30",  # the October-November 2025 shutdown
    ("UNRATE", "2025-11"): "2025-12-16 08:30",
}


class UnknownSeriesError(KeyError):
    pass


def _eastern_to_utc(local: pd.Series) -> pd.Series:
    return local.dt.tz_localize(EASTERN).dt.tz_convert("UTC").dt.tz_localize(None)


def _month_start(observed: pd.Series, months: int) -> pd.Series:
    return observed.dt.to_period("M").dt.to_timestamp() + pd.DateOffset(months=months)


def published_at(series: str, observed_on: pd.Series) -> pd.Series:
    """The tz-naive UTC moment each observation of `series` became public (see the module's rules)."""
    if series not in SERIES:
        raise UnknownSeriesError(f"{series}: no publication lag is known for this series (add it to SERIES)")
    observed = pd.to_datetime(pd.Series(observed_on)).dt.normalize()
    spec = SERIES[series]
    if spec.frequency == "daily":
        local = observed + pd.Timedelta(days=1)
    elif series == "UNRATE":
        local = _month_start(observed, 1) + pd.Timedelta(days=14, hours=8, minutes=30)
    elif series == "CPIAUCSL":
        local = _month_start(observed, 2)
    elif series == "FEDFUNDS":
        local = _month_start(observed, 1) + pd.Timedelta(days=1)
    elif series == "MICH":
        local = _month_start(observed, 1)
    elif spec.frequency == "monthly":  # OECD
        local = _month_start(observed, 2)
    else:  # quarterly GDP: the observation is the quarter's first day
        local = _month_start(observed, 4)
    late = [
        (i, pd.Timestamp(at))
        for i, m in enumerate(observed.dt.strftime("%Y-%m"))
        if (at := LATE_RELEASES.get((series, m)))
    ]
    if late:
        local = local.copy()
        for i, at in late:
            local.iloc[i] = max(local.iloc[i], at)
    return _eastern_to_utc(local)
