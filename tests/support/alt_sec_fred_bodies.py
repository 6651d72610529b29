"""Bodies the EDGAR and FRED provider tests serve (not tests themselves), built from the real recordings in
../shared/data: FRED's JSON observations from its CSV downloads, EDGAR submissions re-paginated or re-keyed.

FRED's JSON shapes are those of https://fred.stlouisfed.org/docs/api/fred/series_observations.html and
https://fred.stlouisfed.org/docs/api/fred/errors.html.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pandas as pd

# FRED's error bodies (HTTP 400 / 429), as its error page documents them.
FRED_BAD_SERIES = json.dumps({"error_code": 400, "error_message": "Bad Request.  The series does not exist."})
FRED_BAD_KEY = json.dumps(
    {
        "error_code": 400,
        "error_message": "Bad Request.  The value for variable api_key is not registered.  Read "
        "https://fred.stlouisfed.org/docs/api/api_key.html for more information.",
    }
)
FRED_TOO_MANY = json.dumps({"error_code": 429, "error_message": "Too Many Requests.  Exceeded Rate Limit"})


def fred_csv(path: Path) -> pd.DataFrame:
    """A FRED CSV download as text: date (YYYY-MM-DD, whatever the file wrote) and value (FRED's text, "." kept)."""
    frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    dates = pd.to_datetime(frame.iloc[:, 0], format="mixed")
    return pd.DataFrame({"date": dates.dt.strftime("%Y-%m-%d"), "value": frame.iloc[:, 1].str.strip()})


def fred_observations(path: Path, start: str, end: str, *, offset: int = 0, limit: int = 100_000) -> str:
    """The series/observations JSON FRED answers for the CSV's series between `start` and `end` (inclusive)."""
    frame = fred_csv(path)
    frame = frame[(frame["date"] >= start) & (frame["date"] <= end)]
    page = frame.iloc[offset : offset + limit]
    today = "2024-01-01"
    return json.dumps(
        {
            "realtime_start": today,
            "realtime_end": today,
            "observation_start": start,
            "observation_end": end,
            "units": "lin",
            "output_type": 1,
            "file_type": "json",
            "order_by": "observation_date",
            "sort_order": "asc",
            "count": len(frame),
            "offset": offset,
            "limit": limit,
            "observations": [
                {"realtime_start": today, "realtime_end": today, "date": d, "value": v}
                for d, v in zip(page["date"], page["value"], strict=True)
            ],
        }
    )


def split_submissions(body: dict, before: str) -> tuple[dict, dict, str]:
    """The real submissions body re-paginated as EDGAR pages a long history: (the body whose filings.recent keeps
    the filings dated `before` or later, the older page holding the rest, that page's file name)."""
    recent = body["filings"]["recent"]
    keep = [i for i, day in enumerate(recent["filingDate"]) if day >= before]
    older = [i for i, day in enumerate(recent["filingDate"]) if day < before]
    name = f"CIK{int(body['cik']):010d}-submissions-000.json"
    page = {key: [values[i] for i in older] for key, values in recent.items()}
    newer = copy.deepcopy(body)
    newer["filings"]["recent"] = {key: [values[i] for i in keep] for key, values in recent.items()}
    dates = sorted(page["filingDate"])
    entry = {"name": name, "filingCount": len(older), "filingFrom": dates[0], "filingTo": dates[-1]}
    newer["filings"]["files"] = [entry, *body["filings"]["files"]]
    return newer, page, name


# A Form 4 filing of Snowflake's for form4.snow.xml. No recording of Snowflake's submissions exists, so this entry is
# CONSTRUCTED: the accession is made up (filer id 0000000000) and the times are those of a timely filing (signed
# 2022-12-14, accepted that evening); only the document itself is real.
SNOW_FORM4 = {
    "accessionNumber": "0000000000-22-000001",
    "filingDate": "2022-12-14",
    "reportDate": "2022-12-13",
    "acceptanceDateTime": "2022-12-14T18:31:05.000Z",
    "act": "",
    "form": "4",
    "fileNumber": "",
    "filmNumber": "",
    "items": "",
    "size": 21803,
    "isXBRL": 0,
    "isInlineXBRL": 0,
    "primaryDocument": "xslF345X03/form4.snow.xml",
    "primaryDocDescription": "FORM 4",
}


def snow_submissions(tesla: dict) -> dict:
    """A submissions body for Snowflake (CIK 1640147) in the real body's shape, holding SNOW_FORM4 only."""
    body = copy.deepcopy(tesla)
    body.update(cik="1640147", name="Snowflake Inc.", tickers=["SNOW"], exchanges=["NYSE"])
    body["filings"] = {"recent": {key: [value] for key, value in SNOW_FORM4.items()}, "files": []}
    return body
