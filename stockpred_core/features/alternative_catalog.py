"""The alternative feature set: news, social, filings and macro columns, by family, with their own version.

The technical feature set (`catalog.py`, `FEATURE_SET_VERSION`) is computed from bars alone and is always there. The
alternative set is a separate table (`features/alt_features` in the lake, one row per (date, ticker)) that training
joins on when the recipe asks for some of its FAMILIES. A model's feature set version names both:
`feature_set_version(families)` is the technical version alone for a bars-only model, and
`<technical>+alt-<alt version>` otherwise, so a model trained on the alternative columns is never served vectors
without them (the serving side checks `covers`).

Missing coverage is never a zero: each family has a `<family>_covered` mask (1 where the source covers the ticker on
that day, else 0) and its values are NaN where it does not cover them.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass

from stockpred_core.features.catalog import FEATURE_SET_VERSION

FAMILIES = ("news", "social", "filings", "macro")
TECHNICAL = "technical"


@dataclass(frozen=True)
class AltFeatureSpec:
    name: str
    family: str
    definition: str
    version: int = 1


def _specs() -> list[AltFeatureSpec]:
    s = AltFeatureSpec
    specs = []
    for family, what in (("news", "news items"), ("social", "posts")):
        specs += [
            s(f"{family}_sentiment", family, f"mean sentiment in [-1, 1] of the day's {what} (NaN with none)"),
            s(f"{family}_sentiment_std", family, f"standard deviation of the day's {what}' sentiment (NaN under 2)"),
            s(f"{family}_sentiment_5", family, f"mean sentiment of the {what} of the last 5 sessions"),
            s(f"{family}_count", family, f"log(1 + number of the day's {what})"),
            s(
                f"{family}_volume_surprise",
                family,
                f"log((1 + the day's {what}) / (1 + their mean over the 21 sessions before))",
            ),
            s(f"{family}_covered", family, "1 where the source covers the ticker that day, else 0 (the mask)"),
        ]
    specs += [
        s("filings_days_since_8k", "filings", "sessions since the last 8-K accepted before the close (NaN: none)"),
        s("filings_days_since_10q", "filings", "sessions since the last 10-Q accepted before the close"),
        s("filings_days_since_10k", "filings", "sessions since the last 10-K accepted before the close"),
        s(
            "filings_insider_net_buy_90",
            "filings",
            "(open-market purchases - sales) / (purchases + sales) of Form 4 transactions accepted in the 90 "
            "calendar days before the close (NaN with none)",
        ),
        s("filings_covered", "filings", "1 where EDGAR filings of the ticker are held for that day, else 0"),
        s("macro_vix", "macro", "VIXCLS, the latest close published before the session's close"),
        s("macro_vix_change_5", "macro", "macro_vix minus its value 5 sessions earlier"),
        s("macro_dgs10", "macro", "10-year Treasury yield (%), latest published"),
        s("macro_dgs10_change_20", "macro", "macro_dgs10 minus its value 20 sessions earlier"),
        s("macro_ted", "macro", "TED spread (%), latest published"),
        s("macro_cpi_yoy", "macro", "CPIAUCSL / its value 12 months earlier - 1, latest published month"),
        s("macro_unrate_change", "macro", "UNRATE minus its value 3 months earlier, latest published month"),
        s("macro_covered", "macro", "share of the macro series above known on the day (0..1)"),
    ]
    return specs


ALT_REGISTRY: list[AltFeatureSpec] = _specs()
ALT_COLUMNS: list[str] = [spec.name for spec in ALT_REGISTRY]
ALT_FEATURE_SET_VERSION: str = hashlib.sha256(
    json.dumps([asdict(spec) for spec in ALT_REGISTRY], sort_keys=True).encode()
).hexdigest()[:12]


def check_families(families) -> list[str]:
    """The alternative families of a recipe, validated and in canonical order ("technical" is implied and dropped)."""
    unknown = sorted(set(families) - set(FAMILIES) - {TECHNICAL})
    if unknown:
        raise ValueError(f"unknown feature families {unknown}: choose among {[TECHNICAL, *FAMILIES]}")
    return [f for f in FAMILIES if f in set(families)]


def columns_for(families) -> list[str]:
    """The alternative columns of `families` (their masks included), in registry order."""
    wanted = set(check_families(families))
    return [spec.name for spec in ALT_REGISTRY if spec.family in wanted]


def feature_set_version(families=()) -> str:
    """The version a model trained on the technical set plus `families` records."""
    if not check_families(families):
        return FEATURE_SET_VERSION
    return f"{FEATURE_SET_VERSION}+alt-{ALT_FEATURE_SET_VERSION}"


def covers(available: str | None, needed: str | None) -> bool:
    """True when vectors of version `available` hold every column a model of version `needed` uses: the same
    version, or the combined version when the model needs only the technical one."""
    if not needed or available == needed:
        return True
    return bool(available) and available.split("+", 1)[0] == needed and "+" not in needed
