"""The PyTorch families' one trainer: device-resident batches, precision, early stopping, the GPU batch knob."""

import numpy as np
import pandas as pd
import pytest
from support.model_data import dated_split

torch = pytest.importorskip("torch", reason="PyTorch is an optional extra (make install TORCH=cpu)")

from stockpred_core.models.neural import TorchMLPForecaster  # noqa: E402
from stockpred_core.models.sequence import GRUForecaster  # noqa: E402
from stockpred_core.models.trainer import DeviceBatches, TrainConfig, fit_network, resolve_precision  # noqa: E402

CPU = torch.device("cpu")


def test_each_epoch_is_one_permutation_gathered_once_and_the_batches_are_views_of_it():
    X, y = torch.arange(10.0).reshape(10, 1), torch.arange(10.0)
    batches = DeviceBatches((X, y), batch_size=4, seed=3)
    first, second = list(batches), list(batches)
    assert len(batches) == 3 and [len(xb) for xb, _ in first] == [4, 4, 2]
    for epoch in (first, second):
        rows = torch.cat([xb[:, 0] for xb, _ in epoch])
        assert sorted(rows.tolist()) == list(range(10))  # every row exactly once
        assert all(torch.equal(xb[:, 0], yb) for xb, yb in epoch)  # features and targets stay paired
        bases = {xb.untyped_storage().data_ptr() for xb, _ in epoch}
        assert len(bases) == 1  # slices of one gathered tensor: no per-batch copy
    assert not torch.equal(torch.cat([b[1] for b in first]), torch.cat([b[1] for b in second]))  # reshuffled
    again = list(DeviceBatches((X, y), batch_size=4, seed=3))
    assert all(torch.equal(a[1], b[1]) for a, b in zip(first, again, strict=True))  # seeded: the same on any device


def test_precision_is_float32_on_the_cpu_and_mixed_on_a_gpu(monkeypatch):
    assert resolve_precision("auto", CPU) == "32"
    assert resolve_precision("bf16-mixed", CPU) == "bf16-mixed"
    cuda = torch.device("cuda")
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda including_emulation=True: True)
    assert resolve_precision("auto", cuda) == "bf16-mixed"
    # cuDNN's recurrent kernels run in float16 under any autocast: float16 with loss scaling for them
    assert resolve_precision("auto", cuda, recurrent=True) == "16-mixed"
    # a pre-Ampere GPU emulates bfloat16 (slowly): float16 with loss scaling
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda including_emulation=True: including_emulation)
    assert resolve_precision("auto", cuda) == "16-mixed"
    with pytest.raises(ValueError, match="needs a CUDA device"):
        resolve_precision("16-mixed", CPU)
    with pytest.raises(ValueError, match="precision must be one of"):
        resolve_precision("fp8", CPU)
    with pytest.raises(ValueError, match="batch_size must be at least 1"):
        TrainConfig(epochs=1, patience=1, batch_size=0, lr=1e-3, weight_decay=0.0, seed=0)


def test_early_stopping_keeps_the_best_epoch_and_stops_after_patience():
    """A learning rate far too high: the validation loss climbs after the first epochs, the trainer stops `patience`
    epochs after its minimum and leaves the network with that epoch's weights."""
    generator = torch.Generator().manual_seed(0)
    X = torch.randn(2000, 8, generator=generator)
    y = X @ torch.randn(8, generator=generator) + 0.5 * torch.randn(2000, generator=generator)
    net = torch.nn.Sequential(torch.nn.Linear(8, 32), torch.nn.ReLU(), torch.nn.Linear(32, 1), torch.nn.Flatten(0))
    config = TrainConfig(epochs=40, patience=2, batch_size=64, lr=0.3, weight_decay=0.0, seed=0)
    losses = fit_network(net, (X[:1500], y[:1500]), (X[1500:], y[1500:]), config)
    best = int(np.argmin(losses))
    assert len(losses) == best + 1 + 2 < 40
    with torch.no_grad():
        kept = torch.nn.functional.mse_loss(net(X[1500:]), y[1500:]).item()
    assert kept == pytest.approx(losses[best], rel=1e-6)


class FailsLater(torch.nn.Module):
    """A linear model whose evaluation outputs turn NaN after `healthy` evaluations (a run that diverges)."""

    def __init__(self, healthy: int) -> None:
        super().__init__()
        self.linear, self.healthy, self.evaluations = torch.nn.Linear(4, 1), healthy, 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.linear(x).reshape(-1)
        if not self.training:
            self.evaluations += 1
            if self.evaluations > self.healthy:
                out = out * float("nan")
        return out


def test_a_diverged_fit_stops_with_the_best_weights_or_says_so():
    generator = torch.Generator().manual_seed(1)
    X, y = torch.randn(256, 4, generator=generator), torch.randn(256, generator=generator)
    config = TrainConfig(epochs=10, patience=5, batch_size=64, lr=1e-2, weight_decay=0.0, seed=0)
    net = FailsLater(healthy=2)
    losses = fit_network(net, (X, y), (X, y), config)
    assert len(losses) == 3 and np.isnan(losses[-1]) and np.isfinite(losses[:2]).all()  # stopped at the NaN
    with pytest.raises(ValueError, match=r"training diverged: the validation loss is nan after epoch 1"):
        fit_network(FailsLater(healthy=0), (X, y), (X, y), config)


@pytest.fixture(scope="module")
def data() -> tuple[pd.DataFrame, pd.Series, pd.DataFrame, pd.Series]:
    return dated_split(5, 12, "2021-01-04", "2022-06-30", sequence=True)


@pytest.mark.parametrize("family", [TorchMLPForecaster, GRUForecaster])
def test_bfloat16_autocast_trains_both_families_close_to_the_float32_fit(family, data):
    """The mixed-precision path, run on the CPU (which has bfloat16 autocast): the same code a GPU fit runs."""
    X, y, X_test, _ = data
    config = {"epochs": 3, "device": "cpu", "num_threads": 1, "batch_size": 256}
    if family is GRUForecaster:
        config |= {"hidden_size": 8, "num_layers": 1}
    exact = family(**config).fit(X, y).predict(X_test)
    model = family(**config, precision="bf16-mixed").fit(X, y)
    mixed = model.predict(X_test)
    assert np.isfinite(mixed).all() and mixed.std() > 0
    assert np.corrcoef(exact, mixed)[0, 1] > 0.9  # bfloat16 rounds: close to, not equal to, the float32 fit
    assert not np.allclose(exact, mixed, rtol=0, atol=1e-6)  # ... it did run in bfloat16
    assert all(p.dtype == torch.float32 for p in model.network.parameters())  # weights stay float32


def test_the_gpu_batch_applies_on_a_gpu_only(data):
    X, y, X_test, _ = data
    plain = TorchMLPForecaster(epochs=2, device="cpu").fit(X, y).predict(X_test)
    knob = TorchMLPForecaster(epochs=2, device="cpu", cuda_batch_size=8192).fit(X, y).predict(X_test)
    pd.testing.assert_series_equal(plain, knob)  # on the CPU batch_size rules: the same fit, bit for bit


def test_the_device_explanations_equal_the_generic_occlusion(data):
    """contributions_matrix builds the blanked copies on the network's device; Forecaster.contributions builds them
    as a DataFrame with NaN and predicts through the median imputation: the same numbers."""
    X, y, X_test, _ = data
    for model in (
        TorchMLPForecaster(epochs=1, device="cpu").fit(X, y),
        GRUForecaster(epochs=1, hidden_size=8, num_layers=1, device="cpu").fit(X, y),
    ):
        rows = X_test[model.feature_names].iloc[:7].to_numpy(dtype=float)
        rows[0, 3] = np.nan  # a missing input is imputed the same way on both paths
        generic = super(type(model), model).contributions(pd.DataFrame(rows, columns=model.feature_names))
        np.testing.assert_allclose(model.contributions_matrix(rows), generic.to_numpy(), atol=1e-6)
