"""TA-Lib's algorithms compiled with numba on one ticker's contiguous rows, one module per indicator family (trend,
momentum, volatility, volume), and `panel.py`, which runs them for every ticker of a wide frame.

A kernel reads its inputs (x) and parameters and fills a NaN-filled output (y) from its first complete row. The
compiled code is cached on disk after the first call. numba's cache only checks the file a function is defined in,
and panel.py calls kernels of the other files: an edited kernel would keep running its old compiled code there.
So the cache of this folder is dropped whenever the folder's sources change (`drop_stale_cache`, run on import).
"""

import hashlib
import os
from pathlib import Path

HERE = Path(__file__).resolve().parent
STAMP = "stockpred-kernels.sha256"


def cache_dirs(folder: Path = HERE) -> list[Path]:
    """Where numba caches this folder's functions: beside the sources, or under NUMBA_CACHE_DIR in a folder named
    `<folder name>_<sha1 of the folder's path>` (numba.core.caching's get_suitable_cache_subpath)."""
    custom = os.environ.get("NUMBA_CACHE_DIR")
    if custom:
        return [Path(custom) / f"{folder.name}_{hashlib.sha1(str(folder).encode()).hexdigest()}"]
    return [folder / "__pycache__"]


def drop_stale_cache(folder: Path = HERE, also: tuple[Path, ...] = ()) -> bool:
    """Delete the numba cache of `folder` when its sources (and the files `also` names, which its code compiles in)
    differ from those it was compiled from; True if deleted."""
    sources = [*sorted(folder.glob("*.py")), *also]
    digest = hashlib.sha256(b"".join(p.read_bytes() for p in sources)).hexdigest()
    dropped = False
    for cache in cache_dirs(folder):
        stamp = cache / STAMP
        try:
            if stamp.read_text() == digest:
                continue
        except OSError:
            pass
        for compiled in cache.glob("*.nb[ic]"):
            compiled.unlink(missing_ok=True)
            dropped = True
        try:
            cache.mkdir(parents=True, exist_ok=True)
            stamp.write_text(digest)
        except OSError:  # a read-only install: numba cannot cache there either
            pass
    return dropped


drop_stale_cache()
