"""`stockpred evaluate` as a user runs it: the console script on a folder of real per-ticker files that starts before
the default calendar, families side by side, and clear errors for bad input."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from support import ROOT, SHARED_DATA
from support.doc_commands import doc_commands

from stockpred_assets.cli import data_dates, parser, refit_count
from stockpred_core.features.catalog import FEATURE_SET_VERSION

FNSPID = SHARED_DATA / "alternative" / "news" / "fnspid_daily_sentiment"
INDEX = SHARED_DATA / "market" / "GSPC.csv"
SCRIPT = Path(sys.executable).parent / "stockpred"
FIGURES = ("rank_ic", "rank_ic_t", "alpha_index", "alpha_t_index", "beta_index", "excess_return_index",
           "excess_return_equal_weight", "alpha_equal_weight", "cost_drag", "long_short_alpha_t_index")  # fmt: skip


def _env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("STOCKPRED_")}


def _run(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    return subprocess.run([str(SCRIPT), *args], env=_env(), cwd=cwd, capture_output=True, text=True, timeout=900)


def test_every_documented_evaluate_command_parses():
    """The commands docs/results.md shows (they take minutes on the S&P file): the parser takes each as written,
    and the files they name exist."""
    for command in doc_commands(r"^\.venv/bin/stockpred evaluate "):
        _, *args = shlex.split(command)
        parsed = parser().parse_args(args)
        assert parsed.command == "evaluate" and (ROOT / parsed.bars).exists(), command
        assert parsed.index is None or (ROOT / parsed.index).exists(), command


def test_the_data_ends_at_its_last_past_date_whatever_the_offsets(tmp_path):
    """A future-dated row (rejected at ingestion) does not move the end; offsets keep each bar's own day."""
    folder = tmp_path / "bars"
    folder.mkdir()
    (folder / "a.csv").write_text(
        "Date,Close\n2023-03-10 00:00:00-05:00,1\n2023-03-13 00:00:00-04:00,1\n2099-01-02,1\n"
    )
    (folder / "b.txt").write_text("date,close\n2023-03-09T00:00:00+08:00,1\n")
    assert data_dates(folder) == (pd.Timestamp("2023-03-09"), pd.Timestamp("2023-03-13"))


def test_refits_tile_the_out_of_sample_period():
    start, end = pd.Timestamp("2017-01-01"), pd.Timestamp("2018-02-07")
    assert refit_count(start, end, "monthly") == 14  # Jan 2017 .. Feb 2018
    assert refit_count(pd.Timestamp("2017-01-15"), end, "monthly") == 14  # the first, partial month counts
    assert refit_count(start, end, "quarterly") == 5
    assert refit_count(start, end, "3") == 3


def test_bad_input_is_refused_with_a_clear_message(tmp_path):
    missing = _run("evaluate", "--bars", str(tmp_path / "nothing.csv"), "--oos-start", "2015-01-01")
    assert missing.returncode != 0 and "nothing.csv does not exist" in missing.stderr
    bars = tmp_path / "bars.csv"
    bars.write_text("Date,Open,High,Low,Close,Volume\n2014-01-02,1,1,1,1,10\n2014-01-03,1,1,1,1,10\n")
    late = _run("evaluate", "--bars", str(bars), "--oos-start", "2016-01-01", "--families", "momentum")
    assert late.returncode != 0 and "--oos-start must fall after the first date 2014-01-02" in late.stderr
    reuse = _run("evaluate", "--bars", str(bars), "--oos-start", "2014-01-03", "--reuse-data")
    assert reuse.returncode != 0 and "--reuse-data needs the --data-dir" in reuse.stderr
    gru = _run("evaluate", "--bars", str(bars), "--oos-start", "2014-01-03", "--families", "gru")
    assert gru.returncode != 0 and "gru family reads the last 30 sessions' prices and volume: add --features seq30" in (
        gru.stderr
    )
    empty = _run(
        "evaluate", "--bars", str(bars), "--oos-start", "2014-01-03", "--reuse-data", "--data-dir", str(tmp_path)
    )
    assert empty.returncode != 0 and "does not hold features of these bars, index and VIX" in empty.stderr
    today = pd.Timestamp.now(tz="America/New_York").tz_localize(None).normalize()
    recent = pd.bdate_range(end=today, periods=30)  # data through this week: its backtest week has not begun
    fresh = tmp_path / "fresh.csv"
    fresh.write_text("Date,Open,High,Low,Close,Volume\n" + "".join(f"{d:%Y-%m-%d},1,1,1,1,10\n" for d in recent))
    early = _run("evaluate", "--bars", str(fresh), "--oos-start", f"{recent[20]:%Y-%m-%d}", "--families", "momentum")
    assert early.returncode != 0 and "which has not begun: pass --end" in early.stderr
    undated = tmp_path / "undated.csv"
    undated.write_text("Open,Close\n1,1\n")
    assert "need a date (or timestamp) column" in _run("evaluate", "--bars", str(undated), "--oos-start", "x").stderr


@pytest.mark.slow
def test_families_are_evaluated_side_by_side_on_real_files_older_than_the_default_calendar(tmp_path):
    """Five real FNSPID stocks, 2011-07..2012-06 (before the default first session, 2013-01-02), one as a .txt:
    the data's first date starts the calendar, each family writes its own report, and the figures carry the
    signal, alpha and beta to the index, excess against the equal-weighted universe and the cost drag."""
    if not FNSPID.is_dir():
        pytest.skip(f"{FNSPID} is not here (../shared/data)")
    bars = tmp_path / "bars"
    bars.mkdir()
    for name, suffix in (("KO", ".csv"), ("pep", ".csv"), ("mrk", ".txt"), ("gsk", ".csv"), ("orcl", ".csv")):
        text = pd.read_csv(FNSPID / f"{name}.csv", dtype=str)
        kept = text["Date"].str[:10].between("2011-07-01", "2012-06-29")
        text[kept].to_csv(bars / f"{name.lower()}{suffix}", index=False)
    data, out = tmp_path / "data", tmp_path / "out"
    done = _run(
        "evaluate", "--bars", str(bars), "--index", str(INDEX), "--oos-start", "2012-01-01", "--end", "2012-06-29",
        "--families", "momentum", "linear:rank", "--refit", "quarterly", "--data-dir", str(data), "--out", str(out),
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "2011-07-01..2012-06-29 ingested" in done.stdout
    result = json.loads((out / "evaluation.json").read_text())
    rows = {row["recipe"]: row for row in result["families"]}
    assert set(rows) == {"momentum-return-h1", "linear-rank-h1"}
    for recipe, row in rows.items():
        assert row["oos_range"].startswith("2012-01-03") and row["tickers"] == 5 and row["folds"] == 2
        for key in FIGURES:
            assert isinstance(row[key], float) and pd.notna(row[key]), (recipe, key)
        assert Path(row["report_html"]).name == f"2012-07-02_{recipe}.html" and Path(row["report_html"]).is_file()
        assert (Path(row["report_html"]).parent / f"2012-07-02_{recipe}_predictions.parquet").is_file()
    table = (out / "evaluation.md").read_text()
    assert "momentum-return-h1" in table and "linear-rank-h1" in table and "stockpred evaluate --bars" in table
    reuse = ["evaluate", "--bars", str(bars), "--oos-start", "2012-01-01", "--end", "2012-06-29", "--families",
             "linear:rank", "--features", "alpha158", "--refit", "2", "--data-dir", str(data),
             "--reuse-data"]  # fmt: skip
    other = _run(*reuse)  # without the index its features were computed with: refused
    assert other.returncode != 0 and "does not hold features of these bars, index and VIX" in other.stderr
    manifest = data / "evaluate-data.json"
    held = json.loads(manifest.read_text())
    manifest.write_text(json.dumps({**held, "feature_set_version": "0ld"}))  # features of an older feature set
    stale = _run(*reuse, "--index", str(INDEX))
    assert stale.returncode != 0 and f"in feature set {FEATURE_SET_VERSION}" in stale.stderr
    manifest.write_text(json.dumps(held))
    again = _run(*reuse, "--index", str(INDEX), "--out", str(tmp_path / "again"))
    assert again.returncode == 0 and "reusing the features" in again.stdout, again.stderr[-3000:]
    # the Alpha158-like library beside the technical set: its own report, 48 + 157 model inputs
    (alpha,) = json.loads((tmp_path / "again" / "evaluation.json").read_text())["families"]
    assert alpha["recipe"] == "linear-rank-h1-alpha158" and alpha["feature_columns"] == 48 + 157
    assert rows["linear-rank-h1"]["feature_columns"] == 48 and pd.notna(alpha["rank_ic_t"])
    reports = sorted(p.name for p in (data / "lake" / "reports" / "backtest_report").glob("*.html"))
    recipes = ("linear-rank-h1", "linear-rank-h1-alpha158", "momentum-return-h1")
    assert reports == sorted(f"2012-07-02_{r}.html" for r in recipes)
    days = sorted(p.name for p in (data / "lake" / "raw" / "bars_files").glob("date=*"))
    assert days[0] == "date=2011-07-01" and days[-1] == "date=2012-06-29"  # kept, not rejected as before 2013
