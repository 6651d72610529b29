"""The daily drift report: each trading day's features, the champion's live predictions and the data's freshness,
against the reference the champion was trained on (`stockpred_core.monitoring` has the statistics and the rules)."""

import dataclasses

import dagster as dg
import numpy as np
import pandas as pd

from stockpred_assets.monitoring.automation import FOLLOWS_THE_DAY
from stockpred_assets.monitoring.canary import canary_live_ic  # noqa: F401 (this group's asset, loaded from here)
from stockpred_assets.monitoring.live_performance import live_figures
from stockpred_assets.monitoring.metrics import drift_gauges, push_metrics
from stockpred_assets.monitoring.reference import champion_facts, load_reference
from stockpred_assets.monitoring.report_metadata import report_metadata
from stockpred_assets.monitoring.summary import day_summary, write_report
from stockpred_assets.partitions import partition_days, trading_days
from stockpred_core.data import calendar
from stockpred_core.features.batch import FEATURE_COLUMNS
from stockpred_core.features.catalog import REQUIRED_FEATURES
from stockpred_core.monitoring.daily_drift import COUNT_COLUMNS, classify, date_counts, window_drift_from_counts
from stockpred_core.monitoring.freshness import freshness
from stockpred_core.monitoring.statistics import PSI_ALERT, PSI_WARN
from stockpred_core.monitoring.verdict import NO_SESSION, NOT_AVAILABLE, DriftThresholds
from stockpred_resources.lake import DuckDBResource, LakeResource
from stockpred_resources.monitoring import MonitoringResource
from stockpred_resources.tracking import MLflowResource

WINDOW_SESSIONS = 40
IC_WINDOW_SESSIONS = 60
# Upstream weekday partitions a day's report reads: its feature window, and the bars and predictions of its IC window.
FEATURE_PARTITIONS = WINDOW_SESSIONS + WINDOW_SESSIONS // 10 + 5
LABEL_PARTITIONS = IC_WINDOW_SESSIONS + 20


class DriftConfig(dg.Config):
    window_sessions: int = WINDOW_SESSIONS  # the current window: the latest sessions up to the day
    psi_warn: float = PSI_WARN
    psi_alert: float = PSI_ALERT
    ordinary_factor: float = 1.5  # a feature drifts past max(psi_alert, this x its reference's own largest PSI)
    alert_share: float = 0.3  # the drift alert: at least this share of the features drift
    warn_share: float = 0.1  # a warning: at least this share of them
    ic_window_sessions: int = IC_WINDOW_SESSIONS  # labelled sessions of live predictions in the realized IC
    ic_t_warn: float = -2.0  # live rank IC below the champion's test rank IC, in standard errors: warn
    error_margin: float = 0.1  # live MSE vs naive this far above the champion's test figure: warn
    min_ic_dates: int = 20
    min_coverage: float = 0.9  # share of the universe a fresh day has feature rows for

    def thresholds(self) -> DriftThresholds:
        names = {f.name for f in dataclasses.fields(DriftThresholds)}
        return DriftThresholds(**self.model_dump(include=names))


def _window(partitions: int) -> dg.TimeWindowPartitionMapping:
    return dg.TimeWindowPartitionMapping(start_offset=-partitions)


@dg.asset(
    partitions_def=trading_days,
    backfill_policy=dg.BackfillPolicy.single_run(),
    deps=[
        dg.AssetDep("features", partition_mapping=_window(FEATURE_PARTITIONS)),
        dg.AssetDep("validated_bars", partition_mapping=_window(LABEL_PARTITIONS)),
        dg.AssetDep("predictions", partition_mapping=_window(LABEL_PARTITIONS)),
    ],
    # follows the daily chain: once a day's features are in and its run is over, report on it
    automation_condition=FOLLOWS_THE_DAY,
    kinds={"pandas", "parquet", "matplotlib"},
)
def drift_report(
    context: dg.AssetExecutionContext,
    config: DriftConfig,
    lake: LakeResource,
    duckdb: DuckDBResource,
    mlflow_resource: MLflowResource,
    monitoring: MonitoringResource,
) -> dg.MaterializeResult:
    """PSI (fixed bins of the champion's training window) and KS per feature over the latest sessions, the drift of
    the champion's live predictions, their realized IC and error against its test figures, and data freshness.
    When the newest day is current, its figures go to the Prometheus Pushgateway (job `stockpred-drift`)."""
    days = partition_days(context)
    champion = champion_facts(mlflow_resource)
    window_start = calendar.lookback_start(days[0], config.window_sessions)
    if champion is None:
        features = lake.read_range("features", "features", window_start, days[-1], columns=["date"])
        rows_per_date = features.groupby("date").size() if len(features) else pd.Series(dtype=int)
        fresh = freshness(rows_per_date, days, config.min_coverage)
        status = np.where(fresh["fresh"] == NO_SESSION, NO_SESSION, NOT_AVAILABLE)
        summary = fresh.assign(status=status, reasons="no champion yet").rename_axis("date").reset_index()
        write_report(lake, duckdb, summary, pd.DataFrame(columns=["date", "feature"]), days)
        # an empty push still says the checks ran (the Pushgateway's push_time_seconds)
        pushed = push_metrics(monitoring, days[-1], [])
        return dg.MaterializeResult(
            metadata={
                "drift_status": NOT_AVAILABLE,
                "note": "no champion yet: nothing to compare against",
                "metrics_push": pushed,
            }
        )
    thresholds = config.thresholds()
    reference = load_reference(lake, duckdb, mlflow_resource, champion, config.window_sessions, context.log)
    sessions = [d for d in days if calendar.is_session(d)]
    counts, summary_rows, read = session_counts(lake, champion.reference_table, reference, window_start, days[-1])
    fresh = freshness(summary_rows["rows"], days, config.min_coverage)
    per_feature = classify(
        window_drift_from_counts(counts, reference, sessions, config.window_sessions, FEATURE_COLUMNS),
        reference,
        thresholds,
    )
    live, note = live_figures(
        lake, champion, reference, sessions, config.window_sessions, config.ic_window_sessions, thresholds
    )
    summary = day_summary(days, champion, reference, per_feature, live, fresh, thresholds)
    write_report(lake, duckdb, summary, per_feature, days)
    versions = set(",".join(summary_rows["versions"]).split(",")) - {""}
    metadata = report_metadata(summary, per_feature, champion, reference, note, lake, versions)
    metadata["feature_sessions_read"] = dg.MetadataValue.int(read)  # the others' counts were kept from earlier runs
    gauges = drift_gauges(summary, per_feature, champion)
    metadata["metrics_push"] = push_metrics(monitoring, pd.Timestamp(metadata["status_date"]), gauges)
    return dg.MaterializeResult(metadata=metadata)


COUNTS_TABLE = "drift_counts"  # per session: each feature's rows per bin of the champion's reference
ROWS_LINE = "rows"  # the line of a session's partition that holds its feature rows and versions


def session_counts(
    lake: LakeResource, reference_key: str, reference, start: pd.Timestamp, end: pd.Timestamp
) -> tuple[pd.DataFrame, pd.DataFrame, int]:
    """The bin counts of every session of the window (`date_counts` of the rows a model sees), per session its
    feature rows and feature-set versions (indexed by date), and how many sessions' features were read. Each
    session's counts are kept in `monitoring/drift_counts` (with a `rows` line and the write time of the features
    partition they were counted from) and computed again when that partition has been written since, or for another
    champion: a daily report reads one new day of features, not the window's 40 (which cost 5.0 s and ~900 MB of a
    10,000-ticker report)."""
    store = lake.lake()
    features_at = store.written_at("features", "features", start, end)  # listed before any features are read
    counted = sorted(store.written_at("monitoring", COUNTS_TABLE, start, end))
    cached = lake.read_range("monitoring", COUNTS_TABLE, counted[0], counted[-1]) if counted else pd.DataFrame()
    if len(cached) and "features_written_at" not in cached:  # counted by an earlier release: count again
        cached = cached.iloc[:0]
    if len(cached):  # kept: counted for this champion from the features partition as it is now
        source = cached["date"].map(features_at)
        cached = cached[(cached["reference"] == reference_key) & (cached["features_written_at"] == source)]
    todo = sorted(set(features_at) - set(cached["date"] if len(cached) else ()))
    parts = [cached] if len(cached) else []
    if todo:
        rows = lake.read_range(
            "features", "features", todo[0], todo[-1], columns=["date", *FEATURE_COLUMNS, "feature_set_version"]
        )
        rows = rows[rows["date"].isin(todo)]
        per_day = rows.groupby("date")["feature_set_version"].agg(
            rows="size", versions=lambda v: ",".join(sorted(set(v.dropna())))
        )
        per_day = per_day.reindex(pd.DatetimeIndex(todo, name="date")).fillna({"rows": 0, "versions": ""})
        summary = per_day.reset_index().assign(feature="", kind=ROWS_LINE, counts=[np.zeros(0)] * len(per_day))
        # the rows a model sees (`feature_matrix`'s rule) without indexing them by (date, ticker)
        counted = date_counts(rows.dropna(subset=REQUIRED_FEATURES), reference, FEATURE_COLUMNS)
        fresh = pd.concat([summary, counted.assign(rows=0, versions="")], ignore_index=True)
        fresh = fresh.assign(
            reference=reference_key,
            rows=fresh["rows"].astype("int64"),
            features_written_at=fresh["date"].map(features_at).astype("float64"),
        )
        columns = [*COUNT_COLUMNS, "reference", "rows", "versions", "features_written_at"]
        lake.write_partitions("monitoring", COUNTS_TABLE, fresh[columns], todo)
        parts.append(fresh)
    if not parts:
        empty = pd.DataFrame({"rows": pd.Series(dtype="int64"), "versions": []})
        return pd.DataFrame(columns=COUNT_COLUMNS), empty, 0
    every = pd.concat(parts, ignore_index=True)
    lines = every["kind"] == ROWS_LINE
    per_date = every.loc[lines].set_index("date")[["rows", "versions"]].sort_index()
    return every.loc[~lines, COUNT_COLUMNS], per_date, len(todo)
