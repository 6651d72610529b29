"""The PyTorch family beyond the shared contract: device choice, global state, early stopping."""

import json

import pandas as pd
import pytest
from support.model_data import dated_split

torch = pytest.importorskip("torch", reason="PyTorch is an optional extra (make install TORCH=cpu)")

from stockpred_core.models.families import load_model  # noqa: E402
from stockpred_core.models.neural import TorchMLPForecaster, select_device  # noqa: E402


@pytest.fixture(scope="module")
def data() -> tuple[pd.DataFrame, pd.Series, pd.DataFrame, pd.Series]:
    """(X_train, y_train, X_valid, y_valid): the oldest 75% of dates to fit on, the rest to predict."""
    return dated_split(7, 20, "2021-01-04", "2022-12-30")


def test_device_selection_prefers_cuda_when_available(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert select_device("auto").type == "cuda" and select_device("cpu").type == "cpu"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert select_device("auto").type == "cpu"
    with pytest.raises(ValueError, match="no CUDA"):
        select_device("cuda")
    with pytest.raises(ValueError, match="device must be"):
        select_device("tpu")


def test_torch_runs_on_the_auto_device_and_leaves_global_torch_state_alone(data):
    X_train, y_train = data[0], data[1]
    rng, threads = torch.get_rng_state(), torch.get_num_threads()
    deterministic = torch.are_deterministic_algorithms_enabled()
    model = TorchMLPForecaster(epochs=1).fit(X_train, y_train)
    assert next(model.network.parameters()).device.type == select_device("auto").type
    assert torch.equal(torch.get_rng_state(), rng) and torch.get_num_threads() == threads
    assert torch.are_deterministic_algorithms_enabled() == deterministic


def test_torch_early_stopping_keeps_the_best_validation_epoch(data):
    X_train, y_train, X_valid, y_valid = data
    model = TorchMLPForecaster(epochs=30, patience=2, lr=1e-2, device="cpu").fit(X_train, y_train, X_valid, y_valid)
    assert 3 <= len(model.valid_losses) < 30
    scaled_mse = (((model.predict(X_valid) - y_valid) / model.target_std) ** 2).mean()
    assert scaled_mse == pytest.approx(min(model.valid_losses), rel=1e-4)


def test_a_model_trained_on_cuda_loads_and_scores_on_a_cpu_only_node(data, tmp_path, monkeypatch):
    """Found on a GPU machine: a model fitted with device='cuda' refused to load where torch sees no GPU."""
    X_train, y_train, X_valid, _ = data
    model = TorchMLPForecaster(epochs=1, device="cpu").fit(X_train, y_train)
    model.save(tmp_path)
    meta = json.loads((tmp_path / "model.json").read_text())
    meta["config"]["device"] = "cuda"  # what the GPU fit writes
    (tmp_path / "model.json").write_text(json.dumps(meta))
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    loaded = load_model(tmp_path)
    assert next(loaded.network.parameters()).device.type == "cpu"
    pd.testing.assert_series_equal(loaded.predict(X_valid), model.predict(X_valid), atol=1e-6)
