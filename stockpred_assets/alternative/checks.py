"""Checks on the alternative data: raw keys unique, every row dated by the point-in-time rule, macro values never
used before their release; the sentiment model beats always-neutral; uncovered features are NaN, never zero."""

import dagster as dg
import pandas as pd

from stockpred_assets.alternative.ingestion import TABLES
from stockpred_assets.alternative.sentiment import sentiment_model_name
from stockpred_assets.partitions import partition_days, trading_days
from stockpred_core.data import alternative as alt
from stockpred_core.data import macro_calendar
from stockpred_core.features.alternative_catalog import FAMILIES, columns_for
from stockpred_core.io.model_card import CHAMPION_ALIAS, alias_version
from stockpred_resources.lake import LakeResource
from stockpred_resources.tracking import MLflowResource


def _window(context: dg.AssetCheckExecutionContext, lake: LakeResource, table: str) -> pd.DataFrame:
    days = partition_days(context)
    return lake.read_range("raw", table, days[0], days[-1])


def _table(frame: pd.DataFrame, columns: list[str]) -> dg.MetadataValue:
    return dg.MetadataValue.md(frame[columns].head(10).astype(str).to_markdown(index=False) if len(frame) else "none")


def misdated(frame: pd.DataFrame) -> pd.DataFrame:
    """Rows whose `date` is not the session their `public_at` first counts for."""
    if frame.empty:
        return frame
    expected = alt.session_for(pd.to_datetime(frame["public_at"])).to_numpy()
    return frame[pd.to_datetime(frame["date"]).to_numpy() != expected]


def before_release(macro: pd.DataFrame) -> pd.DataFrame:
    """Macro rows dated before the session their value's publication (macro_calendar) first counts for."""
    late = []
    for series, rows in macro.groupby("series"):
        released = alt.session_for(macro_calendar.published_at(str(series), rows["observed_on"])).to_numpy()
        late.append(rows[pd.to_datetime(rows["date"]).to_numpy() < released])
    return pd.concat(late) if late else macro.iloc[:0]


def raw_checks(asset: dg.AssetsDefinition) -> list[dg.AssetChecksDefinition]:
    """The checks of one raw asset, over each table it writes."""
    tables = TABLES[asset.key.path[-1]]

    @dg.asset_check(asset=asset, name="keys_unique", partitions_def=trading_days, blocking=True)
    def keys_unique(context: dg.AssetCheckExecutionContext, lake: LakeResource) -> dg.AssetCheckResult:
        """No two rows of a raw table share the kind's keys (validation keeps the first copy)."""
        counts = {}
        for kind, table in tables.items():
            frame = _window(context, lake, table)
            counts[table] = int(frame.duplicated(alt.KEYS[kind]).sum()) if len(frame) else 0
        return dg.AssetCheckResult(
            passed=not any(counts.values()), severity=dg.AssetCheckSeverity.ERROR,
            metadata={"duplicates": dg.MetadataValue.json(counts)},
        )  # fmt: skip

    @dg.asset_check(asset=asset, name="dated_point_in_time", partitions_def=trading_days, blocking=True)
    def dated_point_in_time(context: dg.AssetCheckExecutionContext, lake: LakeResource) -> dg.AssetCheckResult:
        """Every row is dated on the first session whose close comes after it was public (and macro values no
        earlier than their series' release rule allows)."""
        wrong, examples, rows = {}, [], 0
        for kind, table in tables.items():
            frame = _window(context, lake, table)
            rows += len(frame)
            bad = misdated(frame)
            if kind == "macro" and len(frame):
                bad = pd.concat([bad, before_release(frame)]).drop_duplicates(["series", "observed_on"])
            wrong[table] = len(bad)
            examples.append(bad.assign(table=table))
        found = pd.concat(examples)
        return dg.AssetCheckResult(
            passed=not any(wrong.values()),
            severity=dg.AssetCheckSeverity.ERROR,
            metadata={"rows": rows, "misdated": dg.MetadataValue.json(wrong),
                      "examples": _table(found, ["table", "date", "public_at"])},
        )  # fmt: skip

    return [keys_unique, dated_point_in_time]


@dg.asset_check(asset="sentiment_model", blocking=True)
def sentiment_model_beats_neutral(mlflow_resource: MLflowResource) -> dg.AssetCheckResult:
    """The newest sentiment version's hold-out accuracy beats always answering neutral, and it holds the champion
    alias (what alt_features scores with)."""
    client, name = mlflow_resource.client(), sentiment_model_name(mlflow_resource)
    versions = client.search_model_versions(f"name = '{name}'")
    if not versions:
        return dg.AssetCheckResult(passed=False, metadata={"reason": f"{name} has no version"})
    newest = max(versions, key=lambda v: int(v.version))
    metrics = client.get_run(newest.run_id).data.metrics
    champion = alias_version(client, name, CHAMPION_ALIAS)
    accuracy, baseline = metrics.get("holdout_accuracy", float("nan")), metrics.get("neutral_baseline_accuracy", 1.0)
    return dg.AssetCheckResult(
        passed=bool(accuracy > baseline) and champion is not None and champion.version == newest.version,
        severity=dg.AssetCheckSeverity.ERROR,
        metadata={
            "version": newest.version,
            "champion_version": champion.version if champion is not None else "-",
            "holdout_accuracy": float(accuracy),
            "neutral_baseline_accuracy": float(baseline),
        },
    )


@dg.asset_check(asset="alt_features", partitions_def=trading_days, blocking=True)
def alt_features_uncovered_are_missing(
    context: dg.AssetCheckExecutionContext, lake: LakeResource
) -> dg.AssetCheckResult:
    """Where a family's mask says the source does not cover a (date, ticker), its values are NaN, never a number
    (a silent zero would read as "no news" or "no filing")."""
    days = partition_days(context)
    table = lake.read_range("features", "alt_features", days[0], days[-1])
    filled = {}
    for family in FAMILIES:
        values = [c for c in columns_for([family]) if c != f"{family}_covered"]
        uncovered = table[table[f"{family}_covered"].fillna(0) == 0] if len(table) else table
        filled[family] = int(uncovered[values].notna().any(axis=1).sum()) if len(uncovered) else 0
    return dg.AssetCheckResult(
        passed=not any(filled.values()),
        severity=dg.AssetCheckSeverity.ERROR,
        metadata={"rows": len(table), "uncovered_rows_with_values": dg.MetadataValue.json(filled)},
    )
