"""The standard indicator set, incrementally: the batch kernels' algorithms (`features/kernels/`) advanced one bar
at a time per ticker, vectorized over a fixed universe, so a stream updates each ticker in O(1) per bar and gets the
values `indicators.indicator_set` would compute on all of the ticker's bars so far.

One module per indicator family, as in `kernels/` (trend, momentum, volatility, volume); `standard.py` lays out the
per-ticker state and steps the whole set; `state.py` holds `IncrementalIndicators`, the numpy state and its API.
The steps call each other across files (and `kernels/jit.py`), so numba's cache is dropped when any of them changes.
"""

from stockpred_core.features.kernels import HERE as KERNELS
from stockpred_core.features.kernels import drop_stale_cache

drop_stale_cache(KERNELS.parent / "incremental", also=(KERNELS / "jit.py",))

from stockpred_core.features.incremental.state import IncrementalIndicators  # noqa: E402

__all__ = ["IncrementalIndicators"]
