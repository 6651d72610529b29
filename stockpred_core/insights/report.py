"""The day's insights from the day's predictions, the champion's facts, the drift summary and the alerts fired, and
their renderings: an HTML email (jinja2, inline CSS, no external assets), a Markdown preview and a plain text.

Pure: the `insights` asset (stockpred_assets/insights) reads the lake, MLflow and Redis and passes plain values in.
An interval is the prediction plus the model version's conformal residual quantiles (q05, q95 of its test
residuals), as the service answers it; None when the version's card is not available.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import jinja2
import pandas as pd
import redis

from stockpred_core.insights.template import HTML_TEMPLATE
from stockpred_core.io.stream_events import ALERT, ALERTS_KEY, parse_event

UNKNOWN_SECTOR = "unknown"


@dataclass(frozen=True)
class Signal:
    ticker: str
    sector: str
    prediction: float
    low: float | None = None
    high: float | None = None


@dataclass(frozen=True)
class SectorView:
    sector: str
    mean_prediction: float
    tickers: int


@dataclass(frozen=True)
class ModelHealth:
    """The champion (version, family), its live rank IC against its test figure, and the day's drift verdict."""

    version: str | None = None
    family: str | None = None
    live_rank_ic: float | None = None
    baseline_rank_ic: float | None = None
    drift_status: str | None = None  # None: no drift report for the day
    drift_reasons: str = ""
    drift_share: float | None = None
    max_psi_feature: str | None = None


@dataclass(frozen=True)
class DailyInsights:
    day: pd.Timestamp
    tickers: int
    top: list[Signal]
    bottom: list[Signal]
    sectors: list[SectorView]
    health: ModelHealth
    alerts: list[dict] = field(default_factory=list)
    model_versions: list[str] = field(default_factory=list)

    @property
    def title(self) -> str:
        return f"stockpred daily insights, {self.day:%Y-%m-%d}"


def build_insights(
    day: pd.Timestamp,
    predictions: pd.DataFrame,
    sectors: Mapping[str, str],
    intervals: Mapping[str, tuple[float, float]],
    health: ModelHealth,
    alerts: Sequence[Mapping] = (),
    top_n: int = 10,
) -> DailyInsights:
    """`predictions`: the day's rows (ticker, prediction, model_version); `intervals`: model version -> (q05, q95)
    residual quantiles; the top and bottom `top_n` by prediction (ties by ticker), a ticker in both only once."""
    frame = predictions.dropna(subset=["prediction"]).copy()
    frame["sector"] = [sectors.get(t, UNKNOWN_SECTOR) for t in frame["ticker"]]
    ranked = frame.sort_values(["prediction", "ticker"], ascending=[False, True])
    top = ranked.head(top_n)
    bottom = ranked[~ranked["ticker"].isin(top["ticker"])].tail(top_n).iloc[::-1]
    by_sector = frame.groupby("sector")["prediction"].agg(["mean", "size"]).sort_values("mean", ascending=False)
    return DailyInsights(
        day=pd.Timestamp(day),
        tickers=len(frame),
        top=[_signal(row, intervals) for row in top.itertuples()],
        bottom=[_signal(row, intervals) for row in bottom.itertuples()],
        sectors=[SectorView(str(s), float(r["mean"]), int(r["size"])) for s, r in by_sector.iterrows()],
        health=health,
        alerts=sorted((dict(a) for a in alerts), key=lambda a: str(a.get("id", ""))),
        model_versions=sorted({str(v) for v in frame.get("model_version", pd.Series(dtype=object)).dropna()}),
    )


def _signal(row, intervals: Mapping[str, tuple[float, float]]) -> Signal:
    quantiles = intervals.get(str(getattr(row, "model_version", "")))
    prediction = float(row.prediction)
    if quantiles is None:
        return Signal(row.ticker, row.sector, prediction)
    return Signal(row.ticker, row.sector, prediction, prediction + quantiles[0], prediction + quantiles[1])


def health_from(
    version: str | None, family: str | None, drift: pd.DataFrame | None, baseline_rank_ic: float | None = None
) -> ModelHealth:
    """Model health from the champion's facts and the day's drift summary row (monitoring/drift_summary), if any."""
    row = drift.iloc[-1] if drift is not None and len(drift) else None

    def value(name: str):
        if row is None or name not in row.index or pd.isna(row[name]):
            return None
        return row[name]

    live = value("live_rank_ic")
    baseline = value("baseline_rank_ic") if value("baseline_rank_ic") is not None else baseline_rank_ic
    share = value("drift_share")
    return ModelHealth(
        version=version,
        family=family,
        live_rank_ic=None if live is None else float(live),
        baseline_rank_ic=None if baseline is None or not math.isfinite(baseline) else float(baseline),
        drift_status=None if value("status") is None else str(value("status")),
        drift_reasons=str(value("reasons") or ""),
        drift_share=None if share is None else float(share),
        max_psi_feature=None if value("max_psi_feature") is None else str(value("max_psi_feature")),
    )


def alerts_fired(
    client: redis.Redis, day: pd.Timestamp, timezone: str = "America/New_York", key: str = ALERTS_KEY
) -> list[dict]:
    """The alerts of the alerts stream whose entries were added on `day` (midnight to midnight in `timezone`), each
    with its entry `id`. The stream is capped (stockpred_core/io/stream_events.py): older entries are gone."""
    from zoneinfo import ZoneInfo

    start = dt.datetime.combine(pd.Timestamp(day).date(), dt.time(), ZoneInfo(timezone))
    end = start + dt.timedelta(days=1)
    lo, hi = int(start.timestamp() * 1000), int(end.timestamp() * 1000) - 1
    out = []
    for entry_id, fields in client.xrange(key, f"{lo}-0", f"{hi}-18446744073709551615"):
        kind, _, data = parse_event(fields)
        if kind == ALERT:
            out.append({**data, "id": entry_id.decode()})
    return out


# --- rendering ----------------------------------------------------------------------------------------------------


def _pct(value: float | None) -> str:
    return "-" if value is None or not math.isfinite(value) else f"{value * 100:+.2f}%"


def _num(value: float | None, digits: int = 3) -> str:
    return "-" if value is None or not math.isfinite(value) else f"{value:.{digits}f}"


def _interval(signal: Signal) -> str:
    return "-" if signal.low is None else f"[{_pct(signal.low)}, {_pct(signal.high)}]"


def render_html(insights: DailyInsights, note: str = "") -> str:
    """The report as one self-contained HTML page for an email: inline styles, no scripts, images or links out."""
    env = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined)
    env.filters.update(pct=_pct, num=_num, interval=_interval)
    return env.from_string(HTML_TEMPLATE).render(r=insights, h=insights.health, note=note)


def render_text(insights: DailyInsights) -> str:
    """The plain-text part of the email."""
    h = insights.health
    lines = [insights.title, "", f"{insights.tickers} tickers scored by model version(s) {_versions(insights)}", ""]
    for caption, signals in (("Top signals:", insights.top), ("Bottom signals:", insights.bottom)):
        lines += [caption] + [f"  {s.ticker:<8} {_pct(s.prediction):>8} {_interval(s)} {s.sector}" for s in signals]
    lines += ["", f"Champion: v{h.version or '-'} ({h.family or '-'}); live rank IC {_num(h.live_rank_ic)}"]
    lines += [f"Drift: {h.drift_status or 'no report'} {h.drift_reasons}".rstrip()]
    lines += ["", f"Alerts fired: {len(insights.alerts)}"]
    lines += [f"  {a.get('subscriber')}: {a.get('message')}" for a in insights.alerts[:50]]
    return "\n".join(lines) + "\n"


def render_markdown(insights: DailyInsights) -> str:
    """A short preview for the Dagster UI: the headline, the top and bottom signals, health and alerts."""
    h = insights.health

    def table(signals: Iterable[Signal]) -> list[str]:
        rows = ["| ticker | sector | prediction | interval |", "|---|---|---|---|"]
        return rows + [f"| {s.ticker} | {s.sector} | {_pct(s.prediction)} | {_interval(s)} |" for s in signals]

    parts = [
        f"**{insights.title}**: {insights.tickers} tickers, model version(s) {_versions(insights)}",
        "",
        "Top signals",
        "",
        *table(insights.top),
        "",
        "Bottom signals",
        "",
        *table(insights.bottom),
        "",
        f"Champion v{h.version or '-'} ({h.family or '-'}), live rank IC {_num(h.live_rank_ic)} "
        f"(test {_num(h.baseline_rank_ic)}); drift: {h.drift_status or 'no report'}; "
        f"alerts fired: {len(insights.alerts)}",
    ]
    return "\n".join(parts)


def _versions(insights: DailyInsights) -> str:
    return ", ".join(insights.model_versions) or "-"
