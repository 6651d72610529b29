"""The canary's live performance: the rank IC of each variant's served predictions (bento.canary writes them to the
served log in Redis while a canary runs) against the realized forward returns of the validated bars, per feature
date, once the returns are known. Materialize it by hand or let the daily sensor follow the bars."""

import dagster as dg
import numpy as np
import pandas as pd

from stockpred_core.data.adjustments import adjust
from stockpred_core.dataset.labels import forward_returns
from stockpred_core.evaluation.backtest import daily_ic
from stockpred_core.io.served_log import SERVED_KEY, read_served, read_state
from stockpred_resources.lake import LakeResource
from stockpred_resources.redis import RedisResource

TABLE = ("monitoring", "canary_live_ic")
MIN_TICKERS = 10  # a feature date whose variant answered fewer distinct tickers has no IC: a handful is noise


def variant_ic(served: pd.DataFrame, bars: pd.DataFrame, events: pd.DataFrame) -> pd.DataFrame:
    """Per (variant, model_version, horizon, date) with a realized return: the rank IC and the tickers it covers.
    Each variant's IC is over the tickers its own clients asked for (at least MIN_TICKERS a date)."""
    adjusted = adjust(bars, events)
    frames = []
    for (variant, version, horizon), rows in served.groupby(["variant", "model_version", "horizon"]):
        realized = forward_returns(adjusted, int(horizon))
        pred = rows.set_index(["date", "ticker"])["prediction"].astype(float)
        known = pred.index.intersection(realized.index)
        ic = daily_ic(pred, realized, "spearman", min_names=MIN_TICKERS)
        names = pd.Series(1, index=known).groupby(level="date").sum()
        frames.append(
            pd.DataFrame({"rank_ic": ic, "tickers": names.reindex(ic.index)}).assign(
                variant=variant, model_version=version, horizon=int(horizon)
            )
        )
    columns = ["variant", "model_version", "horizon", "date", "rank_ic", "tickers"]
    if not frames:
        return pd.DataFrame(columns=columns)
    return pd.concat(frames).rename_axis("date").reset_index()[columns]


def summary(per_date: pd.DataFrame) -> pd.DataFrame:
    """Per variant: dates, mean rank IC and its t statistic over non-overlapping dates (every `horizon`-th)."""
    rows = []
    for (variant, version, horizon), group in per_date.groupby(["variant", "model_version", "horizon"]):
        ic = group.sort_values("date")["rank_ic"]
        spaced = ic.iloc[::-1].iloc[:: int(horizon)]
        std = float(spaced.std()) if len(spaced) > 1 else np.nan
        t = float(spaced.mean() / (std / np.sqrt(len(spaced)))) if std and np.isfinite(std) and std > 0 else np.nan
        rows.append(
            {
                "variant": variant,
                "model_version": version,
                "dates": len(ic),
                "mean_rank_ic": round(float(ic.mean()), 4),
                "t_stat": round(t, 2) if np.isfinite(t) else None,
                "tickers_per_date": round(float(group["tickers"].mean()), 1),
            }
        )
    return pd.DataFrame(rows)


@dg.asset(
    deps=["validated_bars"],
    kinds={"redis", "parquet"},
    description="Each canary variant's live rank IC: its served predictions against the realized forward returns.",
)
def canary_live_ic(context: dg.AssetExecutionContext, lake: LakeResource, redis: RedisResource) -> dg.MaterializeResult:
    if not redis.enabled:
        return dg.MaterializeResult(metadata={"status": "no Redis configured: no canary has served predictions"})
    client = redis.client()
    state = read_state(client)  # a rollback the service recorded shows here too
    served = read_served(client)
    if served.empty:
        status = f"no canary has served predictions yet ({SERVED_KEY} is empty)"
        return dg.MaterializeResult(metadata={"status": status})
    store = lake.lake()
    days = store.partition_dates("validated", "bars")
    first, last = served["date"].min(), days[-1] if days else served["date"].max()
    bars = lake.read_range("validated", "bars", first, last)
    events = lake.read_range("validated", "events", first, last)
    per_date = variant_ic(served, bars, events) if len(bars) else variant_ic(served.iloc[:0], bars, events)
    lake.write_table(*TABLE, per_date)
    table = summary(per_date)
    context.log.info(f"canary live rank IC over {len(per_date)} variant-dates: {table.to_dict('records')}")
    metadata = {
        "canary_state": dg.MetadataValue.json({k: v for k, v in state.items() if not k.startswith("claimed:")}),
        "served_predictions": dg.MetadataValue.int(len(served)),
        "feature_dates": dg.MetadataValue.int(int(served["date"].nunique())),
        "dates_with_returns": dg.MetadataValue.int(int(per_date["date"].nunique()) if len(per_date) else 0),
        "variants": dg.MetadataValue.md(
            table.to_markdown(index=False) if len(table) else "no served prediction has a realized return yet"
        ),
        "table": dg.MetadataValue.path(store.table_url(*TABLE)),
    }
    if state.get("rolled_back"):
        metadata["rolled_back_version"] = dg.MetadataValue.text(state["rolled_back"])
        metadata["rollback_reason"] = dg.MetadataValue.text(state.get("reason", ""))
    for row in table.to_dict("records"):
        metadata[f"{row['variant']}_v{row['model_version']}_rank_ic"] = dg.MetadataValue.float(row["mean_rank_ic"])
    return dg.MaterializeResult(metadata=metadata)
