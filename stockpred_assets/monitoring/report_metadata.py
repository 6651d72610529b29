"""What the drift report shows in the Dagster UI: the latest session's verdict and figures, every alert of the run,
the per-feature table, and a plot of the day's PSI beside the drift share and live rank IC of the recent reports."""

import dagster as dg
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from stockpred_assets.metadata import optional_float, png_markdown
from stockpred_assets.monitoring.reference import LAYER, ChampionFacts
from stockpred_core.dataset.training_set import split_version
from stockpred_core.features.batch import FEATURE_SET_VERSION
from stockpred_core.monitoring.reference import DriftReference
from stockpred_core.monitoring.statistics import PSI_ALERT, PSI_WARN
from stockpred_core.monitoring.verdict import ALERT, NO_SESSION, NOT_AVAILABLE
from stockpred_resources.lake import LakeResource

HISTORY_DAYS = 180  # calendar days of earlier reports drawn beside the run's own


def report_metadata(
    summary: pd.DataFrame,
    per_feature: pd.DataFrame,
    champion: ChampionFacts,
    reference: DriftReference,
    note: str,
    lake: LakeResource,
    versions: set[str],
) -> dict:
    """The latest session's verdict and figures, every alert of the run, the per-feature table and the plot;
    `versions`: the feature-set versions of the window's feature rows."""
    sessions = summary[summary["status"] != NO_SESSION]
    latest = (sessions if len(sessions) else summary).iloc[-1]
    alerts = [f"{d:%Y-%m-%d}" for d in summary.loc[summary["status"] == ALERT, "date"]]
    day_rows = per_feature[per_feature["date"] == latest["date"]].sort_values("psi", ascending=False)
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
        "decay_status": str(latest.get("decay_status", NOT_AVAILABLE)),
        "live_predictions": note,
        "sessions_behind": int(latest["sessions_behind"]) if pd.notna(latest.get("sessions_behind")) else -1,
        "per_feature": _feature_table(day_rows),
        "plot": png_markdown(_figure(day_rows, _history(lake, summary), latest)),
        **{
            k: dg.MetadataValue.float(v)
            for k, v in ((k, optional_float(v)) for k, v in figures.items())
            if v is not None
        },
    }
    technical, _ = split_version(champion.card.feature_set_version)  # the features table holds the technical set
    if technical and versions - {technical}:
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
    return frame[frame["status"] != NO_SESSION].set_index("date").sort_index()


def _figure(day_rows: pd.DataFrame, history: pd.DataFrame, latest: pd.Series):
    fig, (left, right) = plt.subplots(1, 2, figsize=(13, 5.5), gridspec_kw={"width_ratios": [1, 1.4]})
    top = day_rows.dropna(subset=["psi"]).head(20).iloc[::-1]
    colors = np.where(top["drifting"], "tab:red", np.where(top["psi"] >= PSI_WARN, "tab:orange", "tab:blue"))
    left.barh(top["feature"], top["psi"], color=colors)
    left.scatter(top["limit"], top["feature"], marker="|", color="black", s=120, label="drift limit")
    for level, style in ((PSI_WARN, ":"), (PSI_ALERT, "--")):
        left.axvline(level, color="grey", linestyle=style, linewidth=0.8)
    left.set_xscale("symlog", linthresh=PSI_ALERT)  # linear to the alert level, logarithmic past it
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
