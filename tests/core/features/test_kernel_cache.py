"""numba's cache of the indicator kernels is dropped when any kernel source changes (numba alone only notices an
edit to the file that defines the cached function, and panel.py calls kernels defined in the other files)."""

from stockpred_core.features.kernels import HERE, STAMP, cache_dirs, drop_stale_cache


def test_an_edited_kernel_drops_the_compiled_cache(tmp_path, monkeypatch):
    monkeypatch.delenv("NUMBA_CACHE_DIR", raising=False)
    (tmp_path / "trend.py").write_text("def sma(): pass\n")
    (tmp_path / "panel.py").write_text("from trend import sma\n")
    cache = tmp_path / "__pycache__"
    cache.mkdir()
    compiled = [cache / "panel._one-45.py311.nbi", cache / "panel._one-45.py311.1.nbc"]
    for path in compiled:
        path.write_bytes(b"compiled")

    assert drop_stale_cache(tmp_path)  # no stamp yet: what is there may be from other sources
    assert not any(path.exists() for path in compiled) and (cache / STAMP).is_file()
    for path in compiled:
        path.write_bytes(b"compiled")
    assert not drop_stale_cache(tmp_path)  # same sources: the cache stays
    assert all(path.exists() for path in compiled)

    (tmp_path / "trend.py").write_text("def sma(): return 1\n")  # a kernel edited in another file than panel.py
    assert drop_stale_cache(tmp_path)
    assert not any(path.exists() for path in compiled)


def test_the_cache_under_numba_cache_dir_is_the_one_checked(tmp_path, monkeypatch):
    sources = tmp_path / "src" / "kernels"
    sources.mkdir(parents=True)
    (sources / "panel.py").write_text("x = 1\n")
    monkeypatch.setenv("NUMBA_CACHE_DIR", str(tmp_path / "numba"))
    [mirrored] = cache_dirs(sources)
    mirrored.mkdir(parents=True)
    (mirrored / "panel.f-1.py311.nbi").write_bytes(b"compiled")
    assert drop_stale_cache(sources) and not (mirrored / "panel.f-1.py311.nbi").exists()
    assert (mirrored / STAMP).is_file() and not (sources / "__pycache__").exists()


def test_the_numba_cache_dir_named_is_where_numba_writes(tmp_path, monkeypatch):
    """The kernels compiled in a fresh interpreter with NUMBA_CACHE_DIR land in the folder cache_dirs() names."""
    import os
    import subprocess
    import sys

    code = "import numpy as np\nfrom stockpred_core.features.kernels.volume import obv\n"
    code += "y = np.full(5, np.nan)\nobv(np.arange(5.0), np.ones(5), y)\n"
    env = {**os.environ, "NUMBA_CACHE_DIR": str(tmp_path)}
    subprocess.run([sys.executable, "-c", code], check=True, env=env, timeout=300)
    monkeypatch.setenv("NUMBA_CACHE_DIR", str(tmp_path))
    [folder] = cache_dirs(HERE)
    assert any(folder.glob("volume.obv-*.nbi")) and (folder / STAMP).is_file()
