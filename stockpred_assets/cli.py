"""`stockpred evaluate`: the platform's own assets, run into a scratch instance, judge model families on any data.

    stockpred evaluate --bars <file or folder> [--index GSPC.csv] [--vix VIX.csv] [--start DATE] --oos-start DATE
                       [--end DATE] [--horizon 1] [--families lightgbm torch_mlp:rank ...] [--refit monthly]
                       [--features technical alpha158 seq30] [--update-every N]

It ingests the bars with the `files` provider (a CSV/.txt/Parquet file or a folder of them, the ticker from a column
or the file name), validates and featurizes them (`daily_data_job` over the whole range, one run), then materializes
`backtest_report` once per family for the week after `--end`: expanding-window refits with default parameters whose
test blocks tile --oos-start..--end (with `--refit monthly` as many equal runs of sessions as months), each trained
only on dates before its block minus a purge of the horizon. Each family writes its own HTML report and predictions
beside the others (`<data dir>/lake/reports/backtest_report/<week>_<family>-<label>-h<horizon>.html`); the figures of
every family are printed side by side and written to `<out>/evaluation.md` and `evaluation.json`. The calendar starts
at the data's first date (or --start), so any history the data has is used. Nothing about the out-of-sample period
chooses anything: the parameters are the families' defaults.

The Dagster instance lives in `<data dir>/dagster`: with DAGSTER_HOME set there, `dagster-webserver -w workspace.yaml`
shows its runs and each backtest's metadata in the UI.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import tempfile
import time
import warnings
from pathlib import Path

import pandas as pd

from stockpred_core.data.dates import local_days
from stockpred_core.features.catalog import FEATURE_SET_VERSION

EARLIEST = "1990-01-02"  # STOCKPRED_FIRST_SESSION's lower bound (stockpred_core.settings.CalendarSettings)
QUIET = {"loggers": {"console": {"config": {"log_level": "ERROR"}}}}
REFITS = {"monthly": "MS", "weekly": "W-MON", "quarterly": "QS"}
DATE_NAMES = ("date", "timestamp")
SUFFIXES = (".csv", ".csv.gz", ".txt", ".txt.gz", ".parquet", ".pq")
# (metadata key, column heading, format) of the printed table, in order
COLUMNS = (
    ("recipe", "recipe", "{}"),
    ("oos_range", "out of sample", "{}"),
    ("rank_ic", "rank IC", "{:.4f}"),
    ("rank_ic_t", "t", "{:.2f}"),
    ("ic", "IC", "{:.4f}"),
    ("alpha_index", "alpha/yr", "{:+.1%}"),
    ("alpha_t_index", "alpha t", "{:.2f}"),
    ("beta_index", "beta", "{:.2f}"),
    ("excess_return_index", "excess vs index", "{:+.1%}"),
    ("excess_return_equal_weight", "excess vs EW", "{:+.1%}"),
    ("alpha_equal_weight", "alpha vs EW", "{:+.1%}"),
    ("alpha_t_equal_weight", "t", "{:.2f}"),
    ("annual_return", "book/yr", "{:+.1%}"),
    ("annual_return_gross", "gross/yr", "{:+.1%}"),
    ("turnover", "turnover/day", "{:.1%}"),
    ("cost_drag", "cost drag/yr", "{:.1%}"),
    ("beta_neutral_annual_return", "beta-neutral/yr", "{:+.1%}"),
    ("beta_neutral_alpha_t_index", "t", "{:.2f}"),
    ("long_short_annual_return", "long-short/yr", "{:+.1%}"),
    ("long_short_alpha_t_index", "t", "{:.2f}"),
)


def _date_column(columns) -> str | None:
    return next((c for c in columns if str(c).strip().lower() in DATE_NAMES), None)


def data_dates(path: Path) -> tuple[pd.Timestamp, pd.Timestamp]:
    """The first and last date of a bars file or folder, read before the platform is imported (the calendar's
    first session is set from it)."""
    files = sorted(p for p in path.iterdir() if p.name.endswith(SUFFIXES)) if path.is_dir() else [path]
    if not files or not files[0].exists():
        sys.exit(f"no bars at {path}: give a .csv/.txt (optionally .gz) or .parquet file, or a folder of them")
    first, last = [], []
    today = pd.Timestamp.now(tz="America/New_York").tz_localize(None).normalize()
    for file in files:
        if file.name.endswith((".parquet", ".pq")):
            frame = pd.read_parquet(file)
            column = _date_column(frame.columns)
            values = frame[column] if column else None
        else:
            header = pd.read_csv(file, nrows=0).columns
            column = _date_column(header)
            values = pd.read_csv(file, usecols=[column], dtype=str)[column] if column else None
        if values is None:
            continue
        dates = local_days(pd.Series(values)).dropna()
        dates = dates[dates <= today]  # a future-dated row is rejected at ingestion: it does not end the data
        if len(dates):
            first.append(dates.min())
            last.append(dates.max())
    if not first:
        sys.exit(f"no dated rows in {path}: the files need a date (or timestamp) column")
    return min(first), max(last)


def refit_count(oos_start: pd.Timestamp, end: pd.Timestamp, refit: str) -> int:
    """Test blocks over oos_start..end: one per month / week / quarter, or a number."""
    if refit.isdigit():
        return max(1, int(refit))
    if refit not in REFITS:
        sys.exit(f"--refit takes {', '.join(REFITS)} or a number of refits, not {refit!r}")
    starts = pd.date_range(oos_start, end, freq=REFITS[refit])
    return max(1, len(starts) + (0 if len(starts) and starts[0] == oos_start else 1))


def _portfolio_options(parser: argparse.ArgumentParser) -> list[str]:
    """One option per PortfolioConfig field (--top-k, --n-drop, ...), with its default and description."""
    from stockpred_assets.evaluation.reporting import PortfolioConfig

    group = parser.add_argument_group("portfolio (every backtest book; the definitions: docs/pipeline.md)")
    names = []
    for name, field in PortfolioConfig.model_fields.items():
        kind = field.annotation if field.annotation in (int, float) else float
        group.add_argument(f"--{name.replace('_', '-')}", type=kind, default=field.default, help=field.description)
        names.append(name)
    return names


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="stockpred", description="stockpred command line")
    commands = top.add_subparsers(dest="command", required=True)
    p = commands.add_parser("evaluate", help="walk-forward evaluation of model families on a bars file or folder")
    p.add_argument("--bars", required=True, type=Path, help="a .csv/.txt(.gz)/.parquet file or a folder of them")
    p.add_argument("--index", type=Path, help="market index closes (Date, Close / Adj Close), e.g. ^GSPC")
    p.add_argument("--vix", type=Path, help="VIX closes (default: 100 x the index's 20-session realized volatility)")
    p.add_argument("--start", help="first date used (default: the data's first date)")
    p.add_argument("--oos-start", required=True, help="first out-of-sample date")
    p.add_argument("--end", help="last out-of-sample date (default: the data's last date)")
    p.add_argument("--horizon", type=int, default=1, help="label horizon in sessions")
    p.add_argument(
        "--families",
        nargs="+",
        default=["lightgbm", "torch_mlp", "linear", "momentum"],
        help="family[:label] each (families: lightgbm torch_mlp linear momentum ensemble gru; labels: return rank)",
    )
    p.add_argument("--label", default="return", help="label of the families given without one: return | rank")
    p.add_argument(
        "--features",
        nargs="+",
        choices=["technical", "alpha158", "seq30"],
        default=["technical"],
        help="the model inputs: the technical set (always in), the Alpha158-like library stored beside it (alpha158) "
        "and the last 30 sessions' price/volume path computed from the bars (seq30, what the gru family reads)",
    )
    p.add_argument("--refit", default="monthly", help="monthly | weekly | quarterly | a number of refits")
    p.add_argument(
        "--update-every",
        type=int,
        default=0,
        help="lightgbm: also update each refit's model every n sessions between refits (continued training; 1: daily)",
    )
    p.add_argument("--epochs", type=int, default=10, help="torch_mlp: epochs; gru: at most (it stops early)")
    p.add_argument("--update-rounds", type=int, default=10, help="boosting rounds each update adds")
    p.add_argument("--update-window", type=int, default=20, help="sessions of the newest labelled rows an update reads")
    p.add_argument("--tickers", nargs="+", help="restrict the universe to these tickers")
    p.add_argument("--data-dir", type=Path, help="scratch data folder (default: a new temporary folder)")
    p.add_argument(
        "--reuse-data",
        action="store_true",
        help="--data-dir already holds this range's features (an earlier evaluate of the same bars): skip the data",
    )
    p.add_argument("--out", type=Path, help="where evaluation.md/json go (default: a new folder in the data folder)")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(portfolio=_portfolio_options(p))
    return top


def _configure(args: argparse.Namespace, first: pd.Timestamp, data_dir: Path) -> None:
    """The settings of the scratch instance, set before the platform is imported (the calendar reads its first
    session then)."""
    os.environ.update(
        {
            "STOCKPRED_DATA_DIR": str(data_dir),
            "STOCKPRED_PROVIDERS": "files",
            "STOCKPRED_FILES_PATH": str(args.bars.resolve()),
            "STOCKPRED_FIRST_SESSION": f"{first:%Y-%m-%d}",
        }
    )
    for name, path in (("STOCKPRED_INDEX_FILE", args.index), ("STOCKPRED_VIX_FILE", args.vix)):
        if path is not None:
            os.environ[name] = str(path.resolve())


def _prepare_data(defs, instance, days: pd.DatetimeIndex, bars: Path, data_dir: Path) -> None:
    """raw_bars_files -> validated_bars -> features over `days` as one run (a single-run backfill)."""
    import dagster as dg

    daily = defs.resolve_job_def("daily_data_job").execute_in_process(
        instance=instance,
        run_config=QUIET,
        tags={
            "dagster/asset_partition_range_start": f"{days[0]:%Y-%m-%d}",
            "dagster/asset_partition_range_end": f"{days[-1]:%Y-%m-%d}",
        },
        asset_selection=[dg.AssetKey(k) for k in ("raw_bars_files", "validated_bars", "features")],
        raise_on_error=False,
    )
    if not daily.success:
        sys.exit(f"ingesting, validating or featurizing {bars} failed: see the run in {data_dir / 'dagster'}")


def evaluate(args: argparse.Namespace, dates: tuple[pd.Timestamp, pd.Timestamp]) -> list[dict]:
    """The evaluation of `args` over the data's (first, last) dates; the metadata of each family's backtest."""
    data_first, data_last = dates
    first = max(pd.Timestamp(args.start), data_first) if args.start else data_first
    end = min(pd.Timestamp(args.end), data_last) if args.end else data_last
    oos_start = pd.Timestamp(args.oos_start)
    if not first < oos_start <= end:
        sys.exit(f"--oos-start must fall after the first date {first:%Y-%m-%d} and on or before {end:%Y-%m-%d}")
    if args.reuse_data and args.data_dir is None:
        sys.exit("--reuse-data needs the --data-dir an earlier evaluate of the same bars wrote")
    if "gru" in {spec.partition(":")[0] for spec in args.families} and "seq30" not in args.features:
        sys.exit("the gru family reads the last 30 sessions' prices and volume: add --features seq30")
    for path in (args.index, args.vix):
        if path is not None and not path.exists():
            sys.exit(f"{path} does not exist")
    data_dir = (args.data_dir or Path(tempfile.mkdtemp(prefix="stockpred-evaluate-"))).resolve()
    out = (args.out or data_dir / f"evaluation-{pd.Timestamp.now():%Y%m%d-%H%M%S}").resolve()
    out.mkdir(parents=True, exist_ok=True)
    (data_dir / "dagster").mkdir(parents=True, exist_ok=True)
    _configure(args, first, data_dir)
    warnings.filterwarnings("ignore")
    import dagster as dg

    from stockpred_assets.definitions import build_definitions
    from stockpred_core.data import calendar

    defs = build_definitions()
    instance = dg.DagsterInstance.local_temp(tempdir=str(data_dir / "dagster"))
    days = calendar.sessions(first, end)
    week = end + pd.offsets.Week(weekday=0)  # the Monday after the last date: its backtest sees all of it
    from stockpred_assets.partitions import weeks

    if not weeks.has_partition_key(f"{week:%Y-%m-%d}"):  # the week after the data has not begun
        last = weeks.get_last_partition_key()
        sys.exit(
            f"data ending {end:%Y-%m-%d} is backtested in the week of {week:%Y-%m-%d}, which has not begun: "
            f"pass --end {pd.Timestamp(last) - pd.Timedelta(days=1):%Y-%m-%d} or earlier"
            if last
            else f"data ending {end:%Y-%m-%d} is backtested in the week of {week:%Y-%m-%d}, which has not begun"
        )
    made = {
        "bars": str(args.bars.resolve()),
        **{name: str(path.resolve()) if path else None for name, path in (("index", args.index), ("vix", args.vix))},
        "first": f"{days[0]:%Y-%m-%d}",
        "feature_set_version": FEATURE_SET_VERSION,  # features computed by other code are not reused
    }
    manifest = data_dir / "evaluate-data.json"
    began = time.monotonic()
    if args.reuse_data:
        held = json.loads(manifest.read_text()) if manifest.is_file() else None
        if held is None or {k: held.get(k) for k in made} != made or held.get("last", "") < f"{days[-1]:%Y-%m-%d}":
            sys.exit(
                f"--reuse-data: {data_dir} does not hold features of these bars, index and VIX from "
                f"{days[0]:%Y-%m-%d} to {days[-1]:%Y-%m-%d} in feature set {FEATURE_SET_VERSION} (it holds "
                f"{held or 'none'}): run without it first"
            )
        print(f"{args.bars}: reusing the features in {data_dir}", flush=True)
    else:
        _prepare_data(defs, instance, days, args.bars, data_dir)
        manifest.write_text(json.dumps({**made, "last": f"{days[-1]:%Y-%m-%d}"}, indent=2))
        print(f"{args.bars}: {days[0]:%Y-%m-%d}..{days[-1]:%Y-%m-%d} ingested, validated and featurized in "
              f"{time.monotonic() - began:.0f} s (data in {data_dir})", flush=True)  # fmt: skip
    folds = refit_count(oos_start, end, args.refit)
    update = {f"update_{k}": getattr(args, f"update_{k}") for k in ("every", "rounds", "window")}
    if args.update_every <= 0:  # rounds and window mean nothing without updates
        update = {}
    rows = []
    for spec in args.families:
        family, _, label = spec.partition(":")
        config = {
            "family": family,
            "label": label or args.label,
            "horizon": args.horizon,
            "train_weeks": math.ceil((week - first).days / 7) + 1,
            "oos_start": f"{oos_start:%Y-%m-%d}",
            "oos_end": f"{end:%Y-%m-%d}",
            "n_folds": folds,
            "seed": args.seed,
            **({"epochs": args.epochs} if family in ("torch_mlp", "gru") else {}),
            **(update if family == "lightgbm" else {}),  # the other families do not update
            "feature_families": ["technical", *(f for f in args.features if f != "technical")],
            **{name: getattr(args, name) for name in args.portfolio},
            **({"tickers": args.tickers} if args.tickers else {}),
        }
        began = time.monotonic()
        result = defs.resolve_job_def("weekly_training_job").execute_in_process(
            instance=instance,
            run_config={**QUIET, "ops": {"backtest_report": {"config": config}}},
            partition_key=f"{week:%Y-%m-%d}",
            asset_selection=[dg.AssetKey("backtest_report")],
            raise_on_error=False,
        )
        if not result.success:
            failure = next((e for e in result.all_events if e.is_step_failure), None)
            why = failure.step_failure_data.error.message.strip() if failure is not None else "see the run"
            print(f"{spec}: the backtest failed: {why}", file=sys.stderr, flush=True)
            continue
        meta = {k: v.value for k, v in result.asset_materializations_for_node("backtest_report")[0].metadata.items()}
        row = {k: v for k, v in meta.items() if isinstance(v, int | float | str)} | {
            "seconds": round(time.monotonic() - began)
        }
        rows.append(row)
        print(_line(row), flush=True)
        _write(out, rows, args.argv)  # after each family: an interrupted run keeps what it measured
    if rows:
        print(f"\nfigures in {out / 'evaluation.md'} and {out / 'evaluation.json'}", flush=True)
    return rows


def _cells(row: dict) -> list[str]:
    cells = []
    for key, _, fmt in COLUMNS:
        value = row.get(key)
        missing = value is None or (isinstance(value, float) and not math.isfinite(value))
        cells.append("-" if missing else fmt.format(value))
    return cells


def _line(row: dict) -> str:
    return " | ".join(f"{heading} {cell}" for (_, heading, _), cell in zip(COLUMNS, _cells(row), strict=True))


def table(rows: list[dict]) -> pd.DataFrame:
    """The figures of every family, one row each, formatted (the headings of COLUMNS; each "t" is the figure's
    before it)."""
    return pd.DataFrame([_cells(row) for row in rows], columns=[heading for _, heading, _ in COLUMNS])


def _write(out: Path, rows: list[dict], argv: list[str]) -> None:
    command = "stockpred " + " ".join(argv)
    (out / "evaluation.json").write_text(json.dumps({"command": command, "families": rows}, indent=2, default=str))
    text = f"```console\n$ {command}\n```\n\n" + (
        table(rows).to_markdown(index=False, disable_numparse=True) if rows else "no family ran"
    )
    reports = "\n".join(f"- {row['recipe']}: {row.get('report_html', '-')}" for row in rows)
    (out / "evaluation.md").write_text(text + "\n\nReports:\n" + reports + "\n")


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    # The calendar's first session is read when the platform is imported, and the full parser imports it (the
    # portfolio options): the data's dates are read first, from --bars and --start alone.
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("command", nargs="?")
    pre.add_argument("--bars", type=Path)
    pre.add_argument("--start")
    known, _ = pre.parse_known_args(argv)
    dates = None
    if known.command == "evaluate" and known.bars is not None and "-h" not in argv and "--help" not in argv:
        if not known.bars.exists():
            sys.exit(f"{known.bars} does not exist")
        # A scratch instance: none of the shell's settings (a lake, an MLflow server, a universe) reach it.
        for name in [n for n in os.environ if n.startswith("STOCKPRED_")]:
            del os.environ[name]
        dates = data_dates(known.bars)
        first = max(pd.Timestamp(known.start), dates[0]) if known.start else dates[0]
        # the calendar's earliest first session: older rows are rejected at ingestion, with that reason
        first = max(first, pd.Timestamp(EARLIEST))
        dates = (first, dates[1])
        os.environ["STOCKPRED_FIRST_SESSION"] = f"{first:%Y-%m-%d}"
    args = parser().parse_args(argv)
    args.argv = argv
    if args.command == "evaluate":
        if not evaluate(args, dates):
            sys.exit("no family could be evaluated")
