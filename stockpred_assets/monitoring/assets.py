"""The daily drift report: each trading day's features, the champion's live predictions and the data's freshness,
against the reference the champion was trained on (`core/drift.py` has the statistics and the rules)."""

import dataclasses

import dagster as dg
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from stockpred_assets.metadata import png_markdown
from stockpred_assets.monitoring.reference import LAYER, ChampionFacts, champion_facts, load_reference
from stockpred_assets.partitions import partition_days, trading_days
from stockpred_core.data import calendar
from stockpred_core.data.adjustments import adjust
from stockpred_core.dataset.labels import forward_returns
from stockpred_core.dataset.training_set import feature_matrix
from stockpred_core.features.batch import FEATURE_COLUMNS, FEATURE_SET_VERSION
from stockpred_core.monitoring import drift
from stockpred_resources.lake import DuckDBResource, LakeResource
from stockpred_resources.monitoring import MonitoringResource
from stockpred_resources.tracking import MLflowResource

WINDOW_SESSIONS = 40
IC_WINDOW_SESSIONS = 60
HISTORY_DAYS = 180  # calendar days of earlier reports drawn beside the run's own
# Upstream weekday partitions a day's report reads: its feature window, and the bars and predictions of its IC window.
FEATURE_PARTITIONS = WINDOW_SESSIONS + WINDOW_SESSIONS // 10 + 5
LABEL_PARTITIONS = IC_WINDOW_SESSIONS + 20
NO_PREDICTIONS = "no live predictions yet"


class DriftConfig(dg.Config):
    window_sessions: int = WINDOW_SESSIONS  # the current window: the latest sessions up to the day
    psi_warn: float = drift.PSI_WARN
    psi_alert: float = drift.PSI_ALERT
    ordinary_factor: float = 1.5  # a feature drifts past max(psi_alert, this x its reference's own largest PSI)
    alert_share: float = 0.3  # the drift alert: at least this share of the features drift
    warn_share: float = 0.1  # a warning: at least this share of them
    ic_window_sessions: int = IC_WINDOW_SESSIONS  # labelled sessions of live predictions in the realized IC
    ic_t_warn: float = -2.0  # live rank IC below the champion's test rank IC, in standard errors: warn
    error_margin: float = 0.1  # live MSE vs naive this far above the champion's test figure: warn
    min_ic_dates: int = 20
    min_coverage: float = 0.9  # share of the universe a fresh day has feature rows for

    def thresholds(self) -> drift.DriftThresholds:
        names = {f.name for f in dataclasses.fields(drift.DriftThresholds)}
        return drift.DriftThresholds(**self.model_dump(include=names))


def _window(partitions: int) -> dg.TimeWindowPartitionMapping:
    return dg.TimeWindowPartitionMapping(start_offset=-partitions)


# `eager()` waits for every upstream partition of the look-back windows, and the daily schedule never materializes a
# holiday's: only the day's own features and bars must exist (an older gap shows in the report's freshness instead).
DAY_DEPS_MISSING = dg.AutomationCondition.any_deps_match(
    dg.AutomationCondition.missing()
    & dg.AutomationCondition.in_latest_time_window()
    & ~dg.AutomationCondition.will_be_requested()
).with_label("the day's upstream partitions missing")
FOLLOWS_THE_DAY = (
    dg.AutomationCondition.eager()
    .replace("any_deps_missing", DAY_DEPS_MISSING)
    # predictions are read when present and never awaited (there are none before the first champion)
    .ignore(dg.AssetSelection.assets("predictions"))
)


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
    features = lake.read_range(
        "features", "features", calendar.lookback_start(days[0], config.window_sessions), days[-1]
    )
    fresh = drift.freshness(
        features.groupby("date").size() if len(features) else pd.Series(dtype=int), days, config.min_coverage
    )
    if champion is None:
        status = np.where(fresh["fresh"] == drift.NO_SESSION, drift.NO_SESSION, drift.NOT_AVAILABLE)
        summary = fresh.assign(status=status, reasons="no champion yet").rename_axis("date").reset_index()
        _write(lake, duckdb, summary, pd.DataFrame(columns=["date", "feature"]), days)
        # an empty push still says the checks ran (the Pushgateway's push_time_seconds)
        pushed = _push_metrics(monitoring, days[-1], [])
        return dg.MaterializeResult(
            metadata={
                "drift_status": drift.NOT_AVAILABLE,
                "note": "no champion yet: nothing to compare against",
                "metrics_push": pushed,
            }
        )
    thresholds = config.thresholds()
    reference = load_reference(lake, duckdb, mlflow_resource, champion, config.window_sessions, context.log)
    sessions = [d for d in days if calendar.is_session(d)]
    current = feature_matrix(features).reset_index() if len(features) else pd.DataFrame(columns=["date"])
    per_feature = drift.classify(
        drift.window_drift(current, reference, sessions, config.window_sessions, FEATURE_COLUMNS), reference, thresholds
    )
    live, note = _live(lake, champion, reference, sessions, config, thresholds)
    summary = _summary(days, champion, reference, per_feature, live, fresh, thresholds)
    _write(lake, duckdb, summary, per_feature, days)
    metadata = _metadata(summary, per_feature, champion, reference, note, lake, features)
    gauges = drift_gauges(summary, per_feature, champion)
    metadata["metrics_push"] = _push_metrics(monitoring, pd.Timestamp(metadata["status_date"]), gauges)
    return dg.MaterializeResult(metadata=metadata)


def _push_metrics(monitoring: MonitoringResource, day: pd.Timestamp, gauges: list) -> str:
    """Push the report's gauges when it is about a current day; what happened, as text."""
    if not monitoring.is_recent(day):
        return f"not pushed: {day:%Y-%m-%d} is a past day (a backfill)"
    return monitoring.push_gauges(PUSH_JOB, gauges)


def drift_gauges(
    summary: pd.DataFrame, per_feature: pd.DataFrame, champion: ChampionFacts
) -> list[tuple[str, str, dict[str, str], float]]:
    """The newest session's figures as Prometheus gauges (what deploy/k8s's PrometheusRule alerts on): the day's
    verdict (`stockpred_drift_alert` 1 when drift_report raised its alert, the drifting share), PSI per feature and
    whether it is past its own limit, and the champion's live rank IC and live error relative to its test segment's."""
    sessions = summary[summary["status"] != drift.NO_SESSION]
    if sessions.empty:
        return []
    latest = sessions.iloc[-1]
    day = per_feature[(per_feature["date"] == latest["date"]) & per_feature["psi"].notna()]
    gauges = [
        ("stockpred_drift_alert", "1 when the day's drift verdict is alert", {}, float(latest["status"] == drift.ALERT))
    ]
    share = _number(latest.get("drift_share"))
    if share is not None:
        gauges.append(("stockpred_drift_share", "Share of features drifting past their limits", {}, share))
    for feature, psi, drifting in day[["feature", "psi", "drifting"]].itertuples(index=False):
        labels = {"feature": feature}
        gauges.append(("stockpred_feature_psi", "PSI against the champion's training window", labels, float(psi)))
        gauges.append(("stockpred_feature_drifting", "1 when PSI is past the feature's limit", labels, float(drifting)))
    model = {"model": champion.card.family, "version": champion.card.version}
    rank_ic = _number(latest.get("live_rank_ic"))
    if rank_ic is not None:
        gauges.append(("stockpred_model_rank_ic", "Rank IC of the champion's recent live predictions", model, rank_ic))
    live, backtest = _number(latest.get("live_mse_vs_naive")), champion.baseline.mse_vs_naive
    is_return = champion.baseline.label == "return"  # a rank model's squared error means nothing
    if is_return and live is not None and backtest is not None and np.isfinite(backtest) and backtest > 0:
        gauges.append(
            ("stockpred_model_error_ratio", "Live MSE vs naive over the test segment's", model, live / backtest)
        )
    return gauges


PUSH_JOB = "stockpred-drift"


def _live(
    lake: LakeResource,
    champion: ChampionFacts,
    reference: drift.DriftReference,
    sessions: list[pd.Timestamp],
    config: DriftConfig,
    thresholds: drift.DriftThresholds,
) -> tuple[pd.DataFrame | None, str]:
    """Per session: drift of the champion's live predictions and their realized performance; None and why when the
    champion has made none yet."""
    store = lake.lake()
    if not sessions or not store.partition_dates("evaluation", "predictions"):
        return None, NO_PREDICTIONS
    h = champion.baseline.horizon
    lookback = max(config.window_sessions, config.ic_window_sessions + h + 5)
    start = calendar.lookback_start(sessions[0], lookback)
    predictions = lake.read_range("evaluation", "predictions", start, sessions[-1])
    if len(predictions):
        predictions = predictions[predictions["model_version"].astype(str) == champion.card.version]
    if predictions.empty:
        return None, f"{NO_PREDICTIONS} by champion v{champion.card.version}"
    shifted = drift.window_drift(predictions, reference, sessions, config.window_sessions, [drift.PREDICTION])
    shifted = drift.classify(shifted, reference, thresholds).set_index("date")
    first = pd.Timestamp(predictions["date"].min())
    bars = lake.read_range("validated", "bars", first, sessions[-1])
    events = lake.read_range("validated", "events", first, sessions[-1])
    realized = forward_returns(adjust(bars, events), h) if len(bars) else pd.Series(dtype=float)
    pred = predictions.set_index(["date", "ticker"])["prediction"].astype(float)
    performance = drift.live_performance(
        pred, realized, sessions, champion.baseline, config.ic_window_sessions, thresholds
    )
    live = performance.join(
        shifted[["psi", "ks", "drifting"]].rename(
            columns={"psi": "prediction_psi", "ks": "prediction_ks", "drifting": "prediction_drifting"}
        )
    )
    live["prediction_status"] = np.where(
        live["prediction_psi"].isna(), drift.NOT_AVAILABLE, np.where(live["prediction_drifting"], drift.WARN, drift.OK)
    )
    n = len(predictions)
    return live, f"{n} live predictions of champion v{champion.card.version} read"


def _summary(
    days: list[pd.Timestamp],
    champion: ChampionFacts,
    reference: drift.DriftReference,
    per_feature: pd.DataFrame,
    live: pd.DataFrame | None,
    fresh: pd.DataFrame,
    thresholds: drift.DriftThresholds,
) -> pd.DataFrame:
    """One row per day of the run: the verdict, its reasons and the figures behind it."""
    table = fresh.join(drift.feature_summary(per_feature, thresholds))
    if live is not None:
        table = table.join(live.drop(columns=["prediction_drifting"]))
    windows = per_feature.groupby("date")[["window_start", "window_end"]].first() if len(per_feature) else None
    if windows is not None:
        table = table.join(windows)
    rows = []
    for _, row in table.iterrows():
        if row["fresh"] == drift.NO_SESSION:
            rows.append({"status": drift.NO_SESSION, "reasons": "not an NYSE session"})
            continue
        if pd.isna(row.get("feature_status")):
            rows.append({"status": drift.NO_DATA, "reasons": "no feature rows in the window"})
            continue
        verdict = drift.verdict(
            row["feature_status"],
            row.get("prediction_status", drift.NOT_AVAILABLE),
            row.get("decay_status", drift.NOT_AVAILABLE),
            row["fresh"],
        )
        rows.append({"status": verdict.status, "reasons": "; ".join(verdict.reasons)})
    out = table.assign(**pd.DataFrame(rows, index=table.index))
    out = out.assign(
        champion_version=champion.card.version,
        baseline_rank_ic=champion.baseline.rank_ic,
        baseline_mse_vs_naive=champion.baseline.mse_vs_naive,
        reference_start=reference.start,
        reference_end=reference.end,
        alert_share=thresholds.alert_share,
    )
    return out.rename_axis("date").reset_index()


def _write(lake: LakeResource, duckdb: DuckDBResource, summary: pd.DataFrame, per_feature: pd.DataFrame, days) -> None:
    lake.write_partitions(LAYER, "drift_summary", summary, days)
    lake.write_partitions(LAYER, "drift_features", per_feature, days)
    duckdb.register_view(lake.lake(), LAYER, "drift_summary", view="drift_summary")


def _number(value) -> float | None:
    return float(value) if value is not None and pd.notna(value) else None


def _metadata(
    summary: pd.DataFrame,
    per_feature: pd.DataFrame,
    champion: ChampionFacts,
    reference: drift.DriftReference,
    note: str,
    lake: LakeResource,
    features: pd.DataFrame,
) -> dict:
    """The latest session's verdict and figures, every alert of the run, the per-feature table and the plot."""
    sessions = summary[summary["status"] != drift.NO_SESSION]
    latest = (sessions if len(sessions) else summary).iloc[-1]
    alerts = [f"{d:%Y-%m-%d}" for d in summary.loc[summary["status"] == drift.ALERT, "date"]]
    day_rows = per_feature[per_feature["date"] == latest["date"]].sort_values("psi", ascending=False)
    versions = set(features["feature_set_version"].dropna()) if "feature_set_version" in features else set()
    figures = {
        "drift_share": latest.get("drift_share"),
        "max_psi": latest.get("max_psi"),
        "prediction_psi": latest.get("prediction_psi"),
        "live_rank_ic": latest.get("live_rank_ic"),
        "baseline_rank_ic": champion.baseline.rank_ic,
        "ic_gap_t": latest.get("ic_gap_t"),
        "live_mse_vs_naive": latest.get("live_mse_vs_naive"),
        "coverage": latest.get("coverage"),
    }
    meta = {
        "drift_status": str(latest["status"]),
        "status_date": f"{latest['date']:%Y-%m-%d}",
        "reasons": str(latest.get("reasons") or "-"),
        "alert_dates": dg.MetadataValue.json(alerts),
        "last_alert_date": alerts[-1] if alerts else "-",
        "champion_version": champion.card.version,
        "reference": f"v{champion.card.version}'s training window {reference.start:%Y-%m-%d}..{reference.end:%Y-%m-%d} "
        f"({reference.sessions} sessions)",
        "features_drifting": int(latest.get("drifting", 0) or 0),
        "max_psi_feature": str(latest.get("max_psi_feature", "-")),
        "decay_status": str(latest.get("decay_status", drift.NOT_AVAILABLE)),
        "live_predictions": note,
        "sessions_behind": int(latest["sessions_behind"]) if pd.notna(latest.get("sessions_behind")) else -1,
        "per_feature": _feature_table(day_rows),
        "plot": png_markdown(_figure(day_rows, _history(lake, summary), latest)),
        **{k: dg.MetadataValue.float(v) for k, v in ((k, _number(v)) for k, v in figures.items()) if v is not None},
    }
    if champion.card.feature_set_version and versions - {champion.card.feature_set_version}:
        meta["feature_set_mismatch"] = (
            f"features {sorted(versions)} vs champion's {champion.card.feature_set_version}: drift is expected"
        )
    elif versions and FEATURE_SET_VERSION not in versions:
        meta["feature_set_mismatch"] = f"features {sorted(versions)} vs this code's {FEATURE_SET_VERSION}"
    return meta


def _feature_table(rows: pd.DataFrame) -> dg.MetadataValue:
    columns = ["feature", "psi", "ks", "limit", "status", "drifting"]
    schema = dg.TableSchema(
        columns=[
            dg.TableColumn("feature", "string"),
            dg.TableColumn("psi", "float", description="vs the reference's fixed bins"),
            dg.TableColumn("ks", "float", description="largest CDF gap on the reference's percentiles"),
            dg.TableColumn("limit", "float", description="PSI past which the feature drifts"),
            dg.TableColumn("status", "string", description="ok / warn (PSI >= 0.1) / alert (PSI >= 0.25)"),
            dg.TableColumn("drifting", "bool"),
        ]
    )
    records = [
        dg.TableRecord(
            {
                "feature": str(r.feature),
                "psi": round(float(r.psi), 4),
                "ks": round(float(r.ks), 4),
                "limit": round(float(r.limit), 4),
                "status": str(r.status),
                "drifting": bool(r.drifting),
            }
        )
        for r in rows[columns].dropna(subset=["psi", "ks"]).itertuples()
    ]
    return dg.MetadataValue.table(records=records, schema=schema)


def _history(lake: LakeResource, summary: pd.DataFrame) -> pd.DataFrame:
    """Earlier reports (the last HISTORY_DAYS) with this run's, newest wins."""
    first = summary["date"].min()
    earlier = lake.read_range(LAYER, "drift_summary", first - pd.Timedelta(days=HISTORY_DAYS), first)
    earlier = earlier[earlier["date"] < first] if len(earlier) else earlier
    frame = pd.concat([earlier, summary], ignore_index=True) if len(earlier) else summary
    return frame[frame["status"] != drift.NO_SESSION].set_index("date").sort_index()


def _figure(day_rows: pd.DataFrame, history: pd.DataFrame, latest: pd.Series):
    fig, (left, right) = plt.subplots(1, 2, figsize=(13, 5.5), gridspec_kw={"width_ratios": [1, 1.4]})
    top = day_rows.dropna(subset=["psi"]).head(20).iloc[::-1]
    colors = np.where(top["drifting"], "tab:red", np.where(top["psi"] >= drift.PSI_WARN, "tab:orange", "tab:blue"))
    left.barh(top["feature"], top["psi"], color=colors)
    left.scatter(top["limit"], top["feature"], marker="|", color="black", s=120, label="drift limit")
    for level, style in ((drift.PSI_WARN, ":"), (drift.PSI_ALERT, "--")):
        left.axvline(level, color="grey", linestyle=style, linewidth=0.8)
    left.set_xscale("symlog", linthresh=drift.PSI_ALERT)  # linear to the alert level, logarithmic past it
    left.set_title(f"PSI by feature on {latest['date']:%Y-%m-%d} (top 20; red: drifting)")
    left.legend(loc="lower right")
    if "drift_share" in history and history["drift_share"].notna().any():
        history["drift_share"].plot(ax=right, color="tab:red", label="share of features drifting")
        right.axhline(float(latest.get("alert_share", 0.3)), color="tab:red", linestyle="--", linewidth=0.8)
    if "live_rank_ic" in history and history["live_rank_ic"].notna().any():
        history["live_rank_ic"].plot(ax=right, color="tab:green", label="live rank IC")
        history["baseline_rank_ic"].plot(ax=right, color="tab:green", linestyle=":", label="test rank IC")
    right.axhline(0.0, color="grey", linewidth=0.6)
    right.set_title("Drift share and live rank IC by day")
    if right.lines[:-1]:  # more than the zero line
        right.legend(loc="upper left")
    fig.tight_layout()
    plt.close(fig)
    return fig
