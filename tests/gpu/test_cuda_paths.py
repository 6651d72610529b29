"""The CUDA paths, run where torch sees a GPU (the lent GPU machine: scripts/gpu-check.sh), skipped elsewhere with the
reason: training on the GPU forecasts as well as on the CPU, a GPU-trained model scores on a CPU-only node, and the
service's scoring path (the model call, request batching, explanations) answers the same on CUDA as on the CPU.

Self-contained on purpose: no fixtures from tests/conftest.py and no MLflow, BentoML or Redis, which the GPU machine
lacks (it has PyTorch, numpy and pandas; the check carries orjson); models load through their class, not
`families.load_model`, which imports LightGBM."""

from __future__ import annotations

import asyncio

import numpy as np
import orjson
import pandas as pd
import pytest

torch = pytest.importorskip("torch", reason="PyTorch is an optional extra (make install TORCH=cpu)")

from bento.scoring import ModelRunner, max_batch  # noqa: E402
from stockpred_core.data.synthetic import simulate_signal  # noqa: E402
from stockpred_core.features.sequence import SEQUENCE_COLUMNS  # noqa: E402
from stockpred_core.io.model_card import ModelCard  # noqa: E402
from stockpred_core.models.neural import TorchMLPForecaster  # noqa: E402
from stockpred_core.models.sequence import GRUForecaster  # noqa: E402
from stockpred_core.serving.answers import score  # noqa: E402
from stockpred_core.serving.model import ServedModel, place  # noqa: E402
from stockpred_core.serving.rows import FeatureRow  # noqa: E402

CUDA = torch.cuda.is_available()
NO_GPU = "no CUDA GPU here: runs on the lent GPU machine (scripts/gpu-check.sh)"
needs_gpu = pytest.mark.skipif(not CUDA, reason=NO_GPU)
DEVICES = ["cpu", pytest.param("cuda", marks=needs_gpu)]


FEATURES = [f"f{i}" for i in range(60)]
FAMILIES = {
    "torch_mlp": (lambda **kw: TorchMLPForecaster(hidden_sizes=(128, 64), batch_size=1024, **kw), FEATURES, 80_000),
    "gru": (lambda **kw: GRUForecaster(hidden_size=32, num_layers=2, batch_size=1024, **kw), SEQUENCE_COLUMNS, 20_000),
}


@needs_gpu
@pytest.mark.parametrize("family", FAMILIES)
def test_training_on_the_gpu_forecasts_as_well_as_on_the_cpu(family):
    build, columns, rows = FAMILIES[family]
    X, y, Xv, yv, Xt, yt = simulate_signal(rows, columns, 0)
    ics = {}
    for device in ("cpu", "cuda"):
        # to the plateau (early-stopped): there the CPU fits of seeds 0, 1, 2 agree within 0.003 of IC (measured)
        model = build(epochs=15, patience=3, device=device, num_threads=None).fit(X, y, Xv, yv)
        assert model.network_device.type == device and 2 <= len(model.valid_losses) <= 15
        ics[device] = model.predict(Xt).rank().corr(yt.rank())  # rank IC
    assert ics["cpu"] > 0.3, ics  # the data has a signal the CPU fit finds (0.47 for the MLP, 0.48 for the GRU)
    assert abs(ics["cuda"] - ics["cpu"]) < 0.02, ics  # mixed precision and GPU kernels: the same forecast quality


@needs_gpu
def test_a_model_trained_on_the_gpu_scores_the_same_on_the_cpu(tmp_path):
    build, columns, _ = FAMILIES["torch_mlp"]
    X, y, Xv, yv, Xt, _ = simulate_signal(20_000, columns, 0)
    model = build(epochs=2, device="cuda").fit(X, y, Xv, yv)
    on_gpu = model.predict(Xt)
    model.save(tmp_path)
    loaded = TorchMLPForecaster.load(tmp_path).to_device("cpu")
    assert loaded.network_device.type == "cpu"
    np.testing.assert_allclose(loaded.predict(Xt), on_gpu, rtol=0, atol=1e-5 * float(on_gpu.abs().max()))


@pytest.fixture(scope="module")
def saved_model(tmp_path_factory):
    """An MLP fitted on the CPU and saved, as the registry holds a champion."""
    X, y, Xv, yv, Xt, _ = simulate_signal(20_000, FEATURES, 0)
    path = tmp_path_factory.mktemp("champion")
    TorchMLPForecaster(hidden_sizes=(64, 32), epochs=2, device="cpu").fit(X, y, Xv, yv).save(path)
    return path, Xt


def served_on(path, device: str) -> ServedModel:
    card = ModelCard(name="stockpred", version="7", run_id="r", family="torch_mlp")
    return place(ServedModel(card, TorchMLPForecaster.load(path)), device)


def feature_rows(X: pd.DataFrame, count: int) -> list[FeatureRow]:
    values = X.to_numpy(dtype=float)
    return [
        FeatureRow(f"T{i:05d}", "2026-12-04", 100.0 + i, "v1", values[i], tuple(FEATURES), "redis")
        for i in range(count)
    ]


LARGE = 200  # rows of one request, scored as it is
SINGLES = 600  # one-ticker requests at once, batched by the runner up to its cap (512 rows on the CPU, 8,192 on CUDA)


async def through_the_runner(served: ServedModel, rows: list[FeatureRow], batches: list[int]) -> list[bytes]:
    """What the service does: one large request, then many concurrent one-ticker requests."""
    runner = ModelRunner(on_batch=batches.append)
    await runner.start()
    large = await runner.run(served, rows[:LARGE], True)
    singles = await asyncio.gather(*(runner.run(served, [row], True) for row in rows[LARGE:]))
    runner.executor.shutdown()
    return large + [doc for docs in singles for doc in docs]


@pytest.mark.parametrize("device", DEVICES)
def test_the_service_scoring_path_answers_the_same_on_each_device(device, saved_model):
    path, Xt = saved_model
    reference = served_on(path, "cpu")
    served = served_on(path, device)
    assert served.describe()["device"].startswith(device)  # what /readyz and /metrics report
    rows = feature_rows(Xt, LARGE + SINGLES)
    batches: list[int] = []
    answers = [orjson.loads(doc) for doc in asyncio.run(through_the_runner(served, rows, batches))]
    expected = [orjson.loads(doc) for doc in score(reference, rows, True)]
    cap = max_batch(served)
    assert cap == (8192 if device == "cuda" else 512)
    # the large request alone, then the singles in as few model calls as the device's cap allows
    assert batches == [LARGE, *([cap] * (SINGLES // cap)), *([SINGLES % cap] if SINGLES % cap else [])], batches
    scale = max(abs(e["prediction"]) for e in expected)
    for got, want in zip(answers, expected, strict=True):
        assert got["ticker"] == want["ticker"]
        assert got["prediction"] == pytest.approx(want["prediction"], abs=1e-5 * scale)
        got_top = {c["feature"]: c["contribution"] for c in got["top_contributions"]}
        want_top = {c["feature"]: c["contribution"] for c in want["top_contributions"]}
        shared = got_top.keys() & want_top.keys()
        assert len(shared) >= len(want_top) - 1  # a near-tie at the fifth place may swap on another device
        assert all(got_top[f] == pytest.approx(want_top[f], abs=1e-5 * scale) for f in shared)


@pytest.mark.skipif(CUDA, reason="this machine has a GPU: the refusal is for machines without one")
def test_scoring_on_cuda_where_there_is_none_is_refused_saying_so(saved_model):
    with pytest.raises(ValueError, match="torch sees no CUDA GPU"):
        served_on(saved_model[0], "cuda")
