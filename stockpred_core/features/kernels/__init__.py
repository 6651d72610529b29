"""TA-Lib's algorithms compiled with numba on one ticker's contiguous rows, one module per indicator family (trend,
momentum, volatility, volume), and `panel.py`, which runs them for every ticker of a wide frame.

A kernel reads its inputs (x) and parameters and fills a NaN-filled output (y) from its first complete row. The
compiled code is cached on disk after the first call. numba's cache does not see an edit to a kernel called from
another file, and panel.py calls them all: after editing a kernel, delete this folder's __pycache__ (or the
NUMBA_CACHE_DIR in use) so that panel.py compiles again.
"""
