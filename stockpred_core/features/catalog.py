"""The feature registry: every column of the feature table with its definition, window, warm-up and version.

The registry's fingerprint (`FEATURE_SET_VERSION`) is written into every feature row and logged with every model,
so a model knows which feature set it was trained on and the service can refuse a mismatch.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass

import pandas as pd

from stockpred_core.features import alpha


@dataclass(frozen=True)
class FeatureSpec:
    name: str
    definition: str
    window: int  # sessions the value looks back over
    warmup: int  # sessions before the first non-NaN value
    version: int = 1
    model_input: bool = True  # scale-free, fed to models; False: a raw level kept for analysts
    family: str = "technical"  # "technical" (every model's inputs) or "alpha158" (for recipes that ask for it)


def _specs() -> list[FeatureSpec]:
    s = FeatureSpec
    specs = [
        s("ret_1", "adj_close / adj_close[-1] - 1", 1, 1),
        s("ret_5", "adj_close / adj_close[-5] - 1", 5, 5),
        s("ret_20", "adj_close / adj_close[-20] - 1", 20, 20),
        s("log_ret_1", "log(adj_close / adj_close[-1])", 1, 1),
        s("log_ret_5", "log(adj_close / adj_close[-5])", 5, 5),
        s("log_ret_20", "log(adj_close / adj_close[-20])", 20, 20),
        s("volatility_20", "std(log_ret_1, 20) * sqrt(252)", 20, 20),
        s("rsi_14", "Wilder RSI(14) of close (TA-Lib RSI)", 14, 14),
        s("macd_pct", "MACD(12, 26) line / close", 26, 33),
        s("macd_hist_pct", "MACD(12, 26, 9) histogram / close", 26, 33),
        s("stoch_k", "Stochastic slow %K (14, 3) (TA-Lib STOCH)", 16, 15),
        s("stoch_d", "Stochastic slow %D (14, 3, 3)", 18, 17),
        s("sma_10_gap", "close / SMA(close, 10) - 1", 10, 9),
        s("sma_20_gap", "close / SMA(close, 20) - 1", 20, 19),
        s("sma_50_gap", "close / SMA(close, 50) - 1", 50, 49),
        s("ema_12_gap", "close / EMA(close, 12) - 1", 12, 11),
        s("ema_26_gap", "close / EMA(close, 26) - 1", 26, 25),
        s("adx_14", "ADX(14) (TA-Lib ADX)", 28, 27),
        s("plus_di_14", "+DI(14)", 14, 14),
        s("minus_di_14", "-DI(14)", 14, 14),
        s("bb_pctb", "(close - lower) / (upper - lower), Bollinger(20, 2)", 20, 19),
        s("bb_width", "(upper - lower) / middle, Bollinger(20, 2)", 20, 19),
        s("atr_pct", "ATR(14) / close", 14, 14),
        s("obv_change_20", "(OBV - OBV[-20]) / sum(volume, 20)", 20, 20),
        s("cmf_20", "Chaikin Money Flow: sum(MFV, 20) / sum(volume, 20)", 20, 19),
        s("volume_ratio_20", "volume / SMA(volume, 20)", 20, 19),
        s("market_corr_60", "corr(log_ret_1, market log return, 60)", 60, 60),
        s("market_beta_60", "cov(log_ret_1, market) / var(market), 60 sessions", 60, 60),
        s("autocorr_20", "corr(log_ret_1, log_ret_1[-1]) over 20 sessions", 21, 21),
        s("sector_rel_20", "ret_20 - mean ret_20 of the ticker's sector that day", 20, 20),
        s("market_regime", "+1 bull / -1 bear / 0 sideways: index vs SMA(100) and its 20-session slope", 120, 119),
        s("vix", "VIX close (the real series when configured, else 100 x 20-session realized index vol)", 20, 20),
    ]
    ranked = ["ret_5", "ret_20", "rsi_14", "volatility_20", "volume_ratio_20", "cmf_20", "macd_hist_pct", "atr_pct"]
    for base in ranked:
        warm = next(x.warmup for x in specs if x.name == base)
        window = next(x.window for x in specs if x.name == base)
        specs.append(s(f"{base}_rank", f"cross-sectional percentile rank of {base} per date", window, warm))
        specs.append(s(f"{base}_z", f"cross-sectional z-score of {base} per date (clipped to +-5)", window, warm))
    raw = [
        "close",
        "adj_close",
        "sma_10",
        "sma_20",
        "sma_50",
        "ema_12",
        "ema_26",
        "macd",
        "macd_signal",
        "atr_14",
        "bb_middle",
        "bb_upper",
        "bb_lower",
        "obv",
    ]
    specs += [s(name, f"raw level of {name}", 0, 0, model_input=False) for name in raw]
    specs += [
        s(name, f"{definition}, robust-z-scored across the day's tickers", sessions, sessions - 1, family=alpha.FAMILY)
        for name, (definition, sessions) in alpha.ALPHA_SPECS.items()
    ]
    return specs


REGISTRY: list[FeatureSpec] = _specs()
FEATURE_COLUMNS: list[str] = [spec.name for spec in REGISTRY if spec.model_input and spec.family == "technical"]
RAW_COLUMNS: list[str] = [spec.name for spec in REGISTRY if not spec.model_input]
# The Alpha158-like library (`alpha.py`): stored and served beside the technical set, a model's inputs only when its
# recipe's feature families name "alpha158".
LIBRARY_COLUMNS: list[str] = [spec.name for spec in REGISTRY if spec.family == alpha.FAMILY]
MODEL_INPUTS: list[str] = [*FEATURE_COLUMNS, *LIBRARY_COLUMNS]  # every column of the table a model may take
LIBRARY_SET = frozenset(LIBRARY_COLUMNS)  # for membership tests
# A row is usable once its short-window features exist; longer warm-ups (regime, 60-session beta) may still be NaN,
# which tree models take as missing values.
REQUIRED_WARMUP = 20
REQUIRED_FEATURES: list[str] = [s.name for s in REGISTRY if s.name in FEATURE_COLUMNS and s.warmup <= REQUIRED_WARMUP]
# The fingerprint of the technical set and its raw levels, whose columns every model takes. The library is additive
# (a model that takes its columns finds them by name, and a table or vector without them is refused by name), so it
# leaves the fingerprint as it was: models and tables of the technical set stay valid where the library arrives.
FEATURE_SET_VERSION: str = hashlib.sha256(
    json.dumps(
        [{k: v for k, v in asdict(spec).items() if k != "family"} for spec in REGISTRY if spec.family == "technical"],
        sort_keys=True,
    ).encode()
).hexdigest()[:12]


def registry_frame() -> pd.DataFrame:
    """The registry as a table (what the lake stores beside the features)."""
    return pd.DataFrame([asdict(spec) for spec in REGISTRY]).assign(feature_set_version=FEATURE_SET_VERSION)
