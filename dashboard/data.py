"""What the dashboard reads: the lake through DuckDB, the online store and the events stream in Redis, model facts
from MLflow. Every reader answers something a page can draw when its source is missing (an empty frame, None)."""

from __future__ import annotations

import json
import logging
import threading
import time
from dataclasses import dataclass, field

import duckdb
import numpy as np
import pandas as pd
import redis

from stockpred_core import alerts
from stockpred_core.evaluation.backtest import daily_ic
from stockpred_core.evaluation.performance import drawdown, wealth
from stockpred_core.evaluation.returns import forward_returns_from_returns, returns_from_bars
from stockpred_core.io import online_store, stream_events
from stockpred_core.io.lake import Lake
from stockpred_core.settings import Settings

logger = logging.getLogger("stockpred.dashboard")

REPORTS = "reports"  # <lake>/reports/backtest_report/<week>_predictions.parquet: a backtest's out-of-sample predictions
NO_SECTOR = "unknown"
FEED_LENGTH = 50  # alerts shown in the feed
LONG_SHORT_FRACTION = 0.2  # the backtest page's book: the top fifth long, the bottom fifth short, equal weights


def confidence(prediction: pd.Series, low: pd.Series, high: pd.Series) -> pd.Series:
    """How far the prediction stands from zero in half-widths of its interval, capped at 1: 1 when the interval
    excludes zero, near 0 when the prediction is small against its uncertainty."""
    half = ((high - low) / 2.0).where(lambda w: w > 0)
    return (prediction.abs() / half).clip(upper=1.0).fillna(1.0)


@dataclass
class Sources:
    """Where the dashboard reads from (built once from the settings)."""

    lake: Lake
    redis: redis.Redis | None
    mlflow_uri: str | None
    model_name: str
    _mlflow: object = field(default=None, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @classmethod
    def from_settings(cls, settings: Settings) -> Sources:
        client = redis.Redis.from_url(settings.redis_url, socket_timeout=2.0) if settings.redis_url else None
        return cls(Lake(settings.lake_url), client, settings.mlflow_tracking_uri, settings.registered_model)

    def registry(self):
        """The MLflow client (created at first use: importing mlflow costs a second), None without a tracking URI."""
        if self.mlflow_uri is None:
            return None
        with self._lock:
            if self._mlflow is None:
                from stockpred_core.io.model_registry import use_registry

                self._mlflow = use_registry(self.mlflow_uri)
        return self._mlflow


def _written(info: dict) -> float:
    """A listed file's modification time in seconds (local listings give `mtime`, S3's a `LastModified` datetime)."""
    value = info.get("mtime", info.get("LastModified", 0))
    return value.timestamp() if hasattr(value, "timestamp") else float(value)


class Data:
    """The readers the pages call. Lake reads go through an in-memory DuckDB over the partitions' Parquet files."""

    def __init__(self, sources: Sources) -> None:
        self.sources = sources
        self.lake = sources.lake
        self._duck = duckdb.connect()
        if not self.lake.local:
            self._duck.register_filesystem(self.lake.fs)
        self._duck_lock = threading.Lock()
        self._cache: dict = {}

    # --- the lake -------------------------------------------------------------------------------------------------
    def _url(self, path: str) -> str:
        """What DuckDB opens for a lake path (through the lake's fsspec filesystem when it is not local)."""
        if self.lake.local:
            return path
        protocol = self.lake.fs.protocol
        return f"{protocol[0] if isinstance(protocol, tuple) else protocol}://{path}"

    def query(
        self, layer: str, table: str, days: list[pd.Timestamp], sql: str = "SELECT * FROM t", **params
    ) -> pd.DataFrame:
        """`sql` over the partitions `days` of a table, seen as `t`; an empty frame when there are none."""
        base = self.lake.table_path(layer, table)
        paths = [f"{base}/date={d:%Y-%m-%d}/part-0.parquet" for d in days]
        files = [self._url(p) for p in paths if self.lake.fs.exists(p)]
        if not files:
            return pd.DataFrame()
        with self._duck_lock:
            relation = self._duck.read_parquet(files, union_by_name=True)
            return _run(self._duck, relation, sql, params)

    def latest_dates(self, layer: str, table: str, n: int = 1) -> list[pd.Timestamp]:
        return self.lake.partition_dates(layer, table)[-n:]

    def sectors(self) -> dict[str, str]:
        """Ticker -> sector, from what the providers recorded at ingestion (`reference/sectors_<provider>`)."""
        out: dict[str, str] = {}
        base = f"{self.lake.root}/reference"
        if not self.lake.fs.exists(base):
            return out
        for path in sorted(self.lake.fs.ls(base, detail=False)):
            name = path.rstrip("/").rsplit("/", 1)[-1]
            if name.startswith("sectors_"):
                try:
                    frame = self.lake.read_table("reference", name)
                except FileNotFoundError:
                    continue
                out.update(frame.set_index("ticker")["sector"].astype(str).to_dict())
        return out

    # --- signals --------------------------------------------------------------------------------------------------
    def signals(self) -> pd.DataFrame:
        """The latest day's predictions for the universe, ranked, with interval, confidence and sector; refreshed
        intraday answers from the events stream replace a ticker's lake row."""
        days = self.latest_dates("evaluation", "predictions")
        table = self.query("evaluation", "predictions", days)
        if table.empty:
            table = pd.DataFrame(columns=["date", "ticker", "prediction", "model_version"])
        low_q, high_q = self.residual_quantiles()
        table = table.assign(
            interval_low=table["prediction"] + low_q,
            interval_high=table["prediction"] + high_q,
            top_contributions="",
            source="lake",
        )
        live = self.live_answers()
        if not live.empty:
            table = pd.concat([table[~table["ticker"].isin(live["ticker"])], live], ignore_index=True)
        sectors = self.sectors()
        table["sector"] = table["ticker"].map(sectors).fillna(NO_SECTOR)
        table["confidence"] = confidence(table["prediction"], table["interval_low"], table["interval_high"])
        table = table.sort_values("prediction", ascending=False, ignore_index=True)
        table.insert(0, "rank", np.arange(1, len(table) + 1))
        table["date"] = pd.to_datetime(table["date"]).dt.strftime("%Y-%m-%d")
        return table[
            ["rank", "ticker", "sector", "prediction", "interval_low", "interval_high", "confidence",
             "top_contributions", "model_version", "date", "source"]
        ]  # fmt: skip

    def residual_quantiles(self) -> tuple[float, float]:
        """The champion's held-out residual quantiles (its 90% interval around a prediction); (0, 0) without one."""
        card = self.champion()
        return (card.residual_q05, card.residual_q95) if card is not None else (0.0, 0.0)

    def live_answers(self, count: int = 2000) -> pd.DataFrame:
        """The newest refreshed answer per ticker among the last `count` predictions entries of the events stream."""
        rows: dict[str, dict] = {}
        for _, fields in self._events(count):
            kind, _, data = stream_events.parse_event(fields)
            if kind != stream_events.PREDICTIONS:
                continue
            for answer in data.get("predictions", []):
                rows.setdefault(answer["ticker"], _answer_row(answer, data))
        return pd.DataFrame(list(rows.values()))

    def _events(self, count: int, key: str = stream_events.EVENTS_KEY) -> list[tuple[bytes, dict]]:
        """The newest `count` entries of the events stream (or of `key`), newest first."""
        if self.sources.redis is None:
            return []
        try:
            return self.sources.redis.xrevrange(key, count=count)
        except redis.RedisError as exc:
            logger.warning("cannot read %s: %s", key, exc)
            return []

    def last_event_id(self) -> str:
        """The events stream's newest entry id ("0" when empty): what the live polling compares."""
        entries = self._events(1)
        return entries[0][0].decode() if entries else "0"

    # --- a ticker -------------------------------------------------------------------------------------------------
    def tickers(self) -> list[str]:
        days = self.latest_dates("features", "features")
        frame = self.query("features", "features", days, "SELECT DISTINCT ticker FROM t ORDER BY ticker")
        return frame["ticker"].tolist() if len(frame) else []

    def ticker_history(self, ticker: str, sessions: int = 250) -> pd.DataFrame:
        """Close, SMAs and Bollinger bands of `ticker` over its last `sessions` feature rows."""
        days = self.latest_dates("features", "features", sessions)
        sql = "SELECT * FROM t WHERE ticker = $ticker ORDER BY date"
        return self.query("features", "features", days, sql, ticker=ticker)

    def prediction_history(self, ticker: str, sessions: int = 250) -> pd.DataFrame:
        """`ticker`'s predictions with their interval and the return realized over the horizon (NaN until known)."""
        days = self.latest_dates("evaluation", "predictions", sessions)
        pred = self.query("evaluation", "predictions", days, "SELECT * FROM t WHERE ticker = $ticker ORDER BY date",
                          ticker=ticker)  # fmt: skip
        if pred.empty:
            return pred
        prices = self.ticker_history(ticker, sessions + 30)
        if prices.empty or "adj_close" not in prices:
            pred["realized"] = np.nan
        else:
            horizon = int(pred["horizon"].iloc[-1]) if "horizon" in pred else 1
            bars = prices[["date", "ticker", "adj_close"]]
            forward = forward_returns_from_returns(returns_from_bars(bars), horizon)
            pred["realized"] = forward.xs(ticker, level="ticker").reindex(pd.to_datetime(pred["date"])).to_numpy()
        low_q, high_q = self.residual_quantiles()
        return pred.assign(interval_low=pred["prediction"] + low_q, interval_high=pred["prediction"] + high_q)

    def online_vector(self, ticker: str) -> dict | None:
        """`ticker`'s vector in the online store (an intraday one carries `as_of`), None without Redis or a vector."""
        if self.sources.redis is None:
            return None
        try:
            return online_store.fetch_vector(self.sources.redis, ticker)
        except (redis.RedisError, ValueError) as exc:
            logger.warning("cannot read the online vector of %s: %s", ticker, exc)
            return None

    # --- model health ---------------------------------------------------------------------------------------------
    def champion(self):
        """The champion's model card, None without a registry or a champion (cached for a minute)."""
        return self._cached("champion", 60.0, self._read_champion)

    def _read_champion(self):
        client = self.sources.registry()
        if client is None:
            return None
        from stockpred_core.io.model_card import CHAMPION_ALIAS, read_model_card

        try:
            return read_model_card(client, self.sources.model_name, CHAMPION_ALIAS)
        except Exception as exc:  # the registry down or a version without its run: the page says so
            logger.warning("cannot read the champion: %s", exc)
            return None

    def versions(self) -> pd.DataFrame:
        """Every registered version: number, family, creation time, aliases, champion_from."""
        client = self.sources.registry()
        if client is None:
            return pd.DataFrame()
        try:
            found = client.search_model_versions(f"name='{self.sources.model_name}'")
        except Exception as exc:
            logger.warning("cannot list the model versions: %s", exc)
            return pd.DataFrame()
        rows = [
            {
                "version": int(v.version),
                "family": v.tags.get("model_family", ""),
                "created": pd.Timestamp(v.creation_timestamp, unit="ms").strftime("%Y-%m-%d %H:%M"),
                "aliases": ", ".join(getattr(v, "aliases", []) or []),
                "champion_from": v.tags.get("champion_from", ""),
            }
            for v in found
        ]
        return pd.DataFrame(rows).sort_values("version", ascending=False) if rows else pd.DataFrame()

    def drift(self) -> pd.DataFrame:
        """The latest drift report's rows per feature (PSI, KS, status)."""
        return self.query("monitoring", "drift_features", self.latest_dates("monitoring", "drift_features"),
                          "SELECT * FROM t ORDER BY psi DESC NULLS LAST")  # fmt: skip

    def drift_days(self, sessions: int = 120) -> pd.DataFrame:
        """The drift summary per day (its verdict, the live rank IC beside the backtest's, where recorded)."""
        return self.query("monitoring", "drift_summary", self.latest_dates("monitoring", "drift_summary", sessions),
                          "SELECT * FROM t ORDER BY date")  # fmt: skip

    def freshness(self) -> pd.DataFrame:
        """The newest partition of each table the dashboard shows, and the online store's and stream's times."""
        rows = [
            {"source": f"{layer}/{table}", "latest": _day(self.latest_dates(layer, table))}
            for layer, table in [
                ("validated", "bars"), ("features", "features"), ("evaluation", "predictions"),
                ("monitoring", "drift_summary"),
            ]
        ]  # fmt: skip
        if self.sources.redis is not None:
            try:
                meta = online_store.read_meta(self.sources.redis)
                status = stream_events.read_status(self.sources.redis)
            except redis.RedisError:
                meta, status = {}, {}
            rows.append({"source": "online store (close)", "latest": meta.get("latest_date", "-")})
            rows.append({"source": "online store (intraday)", "latest": meta.get("intraday_as_of", "-")})
            lags = [s.get("lag_seconds") for k, s in status.items() if not k.startswith(stream_events.PERSISTED)]
            lags = [x for x in lags if isinstance(x, int | float)]
            rows.append({"source": "stream lag (s)", "latest": f"{max(lags):.1f}" if lags else "-"})
        return pd.DataFrame(rows)

    # --- backtest -------------------------------------------------------------------------------------------------
    def latest_backtest(self) -> str | None:
        """The newest backtest report's name, `<week>_<recipe>` (`reports/backtest_report/<week>_<recipe>_predictions
        .parquet`, e.g. 2018-02-12_lightgbm-return-h1): the latest week, and within it the recipe written last."""
        base = f"{self.lake.root}/{REPORTS}/backtest_report"
        if not self.lake.fs.exists(base):
            return None
        suffix = "_predictions.parquet"
        # one listing with the modification times (local: mtime, S3: LastModified), not a request per file
        files = [f for f in self.lake.fs.ls(base, detail=True) if f["name"].endswith(suffix)]
        if not files:
            return None
        name = lambda f: f["name"].rsplit("/", 1)[-1].removesuffix(suffix)  # noqa: E731
        return name(max(files, key=lambda f: (name(f).split("_", 1)[0], _written(f))))

    def backtest(self) -> dict | None:
        """The latest backtest's out-of-sample predictions scored against the realized next-session returns: the
        daily IC and rank IC, the long-short book's equity and drawdown, and a per-year table."""
        week = self.latest_backtest()
        if week is None:
            return None
        return self._cached(("backtest", week), 300.0, lambda: self._score_backtest(week))

    def _score_backtest(self, week: str) -> dict | None:
        path = f"{self.lake.root}/{REPORTS}/backtest_report/{week}_predictions.parquet"
        with self._duck_lock:
            pred = self._duck.read_parquet(self._url(path)).df()
        pred["date"] = pd.to_datetime(pred["date"])
        first, last = pred["date"].min(), pred["date"].max()
        days = [d for d in self.lake.partition_dates("validated", "bars") if first <= d <= last + pd.Timedelta(days=10)]
        bars = self.query("validated", "bars", days, "SELECT date, ticker, adj_close FROM t")
        if bars.empty:
            return None
        label = forward_returns_from_returns(returns_from_bars(bars), 1)
        signal = pred.set_index(["date", "ticker"])["prediction"]
        common = signal.index.intersection(label.dropna().index)
        signal, label = signal.loc[common].sort_index(), label.loc[common].sort_index()
        ic, rank_ic = daily_ic(signal, label), daily_ic(signal, label, "spearman")
        book = _long_short(signal, label)
        years = pd.DataFrame({"return": book, "ic": ic, "rank_ic": rank_ic}).groupby(lambda d: d.year).agg(
            **{"return": ("return", lambda r: float(wealth(r).iloc[-1] - 1)), "ic": ("ic", "mean"),
               "rank_ic": ("rank_ic", "mean"), "sessions": ("return", "size")}
        )  # fmt: skip
        return {
            "week": week,
            "ic": ic,
            "rank_ic": rank_ic,
            "equity": wealth(book),
            "drawdown": drawdown(book),
            "per_year": years.rename_axis("year").reset_index(),
        }

    # --- alerts ---------------------------------------------------------------------------------------------------
    def alert_feed(self, count: int = FEED_LENGTH) -> pd.DataFrame:
        """The newest alerts of the alerts stream (every alert, without the prediction events), newest first."""
        rows = []
        for entry_id, fields in self._events(count, stream_events.ALERTS_KEY):
            _, _, data = stream_events.parse_event(fields)
            rows.append({"id": entry_id.decode(), **{k: data.get(k) for k in _ALERT_FIELDS}})
        return pd.DataFrame(rows, columns=["id", *_ALERT_FIELDS])

    def subscriptions(self) -> list[alerts.Subscription]:
        if self.sources.redis is None:
            return []
        return alerts.read_subscriptions(self.sources.redis)

    def save_subscription(self, subscription: alerts.Subscription) -> None:
        if self.sources.redis is None:
            raise RuntimeError("no Redis configured (STOCKPRED_REDIS_URL): subscriptions live there")
        alerts.put_subscription(self.sources.redis, subscription)

    def delete_subscription(self, subscriber: str) -> None:
        if self.sources.redis is not None:
            alerts.delete_subscription(self.sources.redis, subscriber)

    # --- helpers --------------------------------------------------------------------------------------------------
    def _cached(self, key, ttl_s: float, compute):
        now = time.monotonic()
        hit = self._cache.get(key)
        if hit is not None and now - hit[0] < ttl_s:
            return hit[1]
        value = compute()
        self._cache[key] = (now, value)
        return value


_ALERT_FIELDS = ["as_of", "subscriber", "ticker", "rule", "value", "threshold", "message", "model_version"]


def _run(con: duckdb.DuckDBPyConnection, relation: duckdb.DuckDBPyRelation, sql: str, params: dict) -> pd.DataFrame:
    con.register("t", relation)
    try:
        return con.execute(sql, params).df() if params else con.execute(sql).df()
    finally:
        con.unregister("t")


def _day(days: list[pd.Timestamp]) -> str:
    return f"{days[-1]:%Y-%m-%d}" if days else "-"


def _answer_row(answer: dict, entry: dict) -> dict:
    contributions = answer.get("top_contributions") or []
    return {
        "date": answer.get("feature_date"),
        "ticker": answer["ticker"],
        "prediction": answer.get("prediction"),
        "model_version": answer.get("model_version", entry.get("model_version")),
        "interval_low": answer.get("interval_low"),
        "interval_high": answer.get("interval_high"),
        "top_contributions": ", ".join(f"{c['feature']} {c['contribution']:+.4f}" for c in contributions[:3]),
        "source": f"live {answer.get('feature_time') or entry.get('as_of', '')}",
    }


def _long_short(signal: pd.Series, label: pd.Series, fraction: float = LONG_SHORT_FRACTION) -> pd.Series:
    """Daily return of the equal-weight book long the top `fraction` and short the bottom, before costs."""
    ranks = signal.groupby(level="date").rank(pct=True)
    weights = np.where(ranks > 1 - fraction, 1.0, np.where(ranks <= fraction, -1.0, 0.0))
    weighted = pd.Series(weights, index=signal.index)
    gross = (weighted * label).groupby(level="date").sum()
    return gross / weighted.abs().groupby(level="date").sum().replace(0.0, np.nan) * 2.0


def subscription_json(subscription: alerts.Subscription) -> str:
    return json.dumps(subscription.model_dump(mode="json", exclude_none=True))
