"""The PyTorch families (optional: `make install TORCH=none` leaves PyTorch out): what they share (scaling, the
device, training through `trainer.fit_network`, scoring and explaining on the device) and the MLP forecaster. CUDA
with mixed precision when torch sees a GPU, deterministic on CPU."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

import numpy as np
import pandas as pd
import torch
from torch import nn

from stockpred_core.models.forecaster import FITTED, ColumnForecaster
from stockpred_core.models.standardizer import Standardizer
from stockpred_core.models.trainer import EVAL_CHUNK_BYTES, EVAL_CHUNK_ROWS, TrainConfig, fit_network, predict


def select_device(preference: str = "auto") -> torch.device:
    """ "auto": CUDA when torch sees a GPU, else CPU; "cuda" without a GPU is an error rather than a silent CPU run."""
    if preference not in ("auto", "cpu", "cuda"):
        raise ValueError(f"device must be 'auto', 'cpu' or 'cuda', not {preference!r}")
    cuda = torch.cuda.is_available()
    if preference == "cuda" and not cuda:
        raise ValueError("device='cuda' but torch sees no CUDA GPU")
    return torch.device("cuda" if preference == "cuda" or (preference == "auto" and cuda) else "cpu")


@contextlib.contextmanager
def cpu_threads(count: int | None) -> Iterator[None]:
    """Run with `count` intra-op CPU threads (None: torch's default), restoring the caller's setting afterwards."""
    previous = torch.get_num_threads()
    if count:
        torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


@contextlib.contextmanager
def seeded_torch(seed: int, device: torch.device) -> Iterator[None]:
    """Seed torch for one fit without disturbing the caller's RNG or determinism settings; deterministic on CPU."""
    devices = [device.index or 0] if device.type == "cuda" else []
    previous = (torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled())
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        # on CUDA deterministic kernels would need CUBLAS_WORKSPACE_CONFIG set before start-up: CPU only
        torch.use_deterministic_algorithms(device.type == "cpu" or previous[0], warn_only=previous[1])
        try:
            yield
        finally:
            torch.use_deterministic_algorithms(previous[0], warn_only=previous[1])


def build_mlp(n_inputs: int, hidden_sizes: list[int] | tuple[int, ...], dropout: float) -> nn.Sequential:
    """Linear -> ReLU -> Dropout per hidden layer, then one linear output, flattened to (batch,)."""
    layers: list[nn.Module] = []
    for width in hidden_sizes:
        layers += [nn.Linear(n_inputs, width), nn.ReLU(), nn.Dropout(dropout)]
        n_inputs = width
    layers += [nn.Linear(n_inputs, 1), nn.Flatten(0)]  # Flatten holds no weights: saved state dicts are unchanged
    return nn.Sequential(*layers)


@dataclass
class ScaledTorchForecaster(ColumnForecaster):
    """What the PyTorch families share: inputs standardized and the target scaled with the training rows' statistics,
    a network trained by `fit_network` (early-stopped on the validation set when given one), its validation losses;
    saved as weights.pt plus those statistics and restored onto the CPU (where it was trained binds nothing: a
    GPU-trained model serves on a CPU-only node); `to_device` moves it (the service: `serving.model.place`). Scoring
    and the occlusion explanations run on the network's device from a float matrix, without building a DataFrame."""

    weights_file: ClassVar[str] = "weights.pt"

    lr: float = 1e-3
    weight_decay: float = 1e-4
    batch_size: int = 512
    # the training batch on a GPU, which has room for many more rows per step than the CPU wants (None: batch_size);
    # a larger batch changes the fit (fewer, less noisy steps), so it is the recipe's choice, never switched silently
    cuda_batch_size: int | None = None
    epochs: int = 20
    patience: int = 3  # epochs without a lower validation loss before stopping
    seed: int = 0
    device: str = "auto"  # "auto" | "cpu" | "cuda"
    precision: str = "auto"  # trainer.PRECISIONS; "auto": float32 on the CPU, mixed on CUDA (trainer.resolve_precision)
    # a net this small trains many times faster on one CPU thread: more threads mostly contend (None: torch default)
    num_threads: int | None = 1

    scaler: Standardizer | None = field(default=None, init=False, repr=False, metadata=FITTED)
    target_mean: float = field(default=0.0, init=False, metadata=FITTED)
    target_std: float = field(default=1.0, init=False, metadata=FITTED)
    network: nn.Module | None = field(default=None, init=False, repr=False, metadata=FITTED)
    valid_losses: list[float] = field(default_factory=list, init=False, repr=False, metadata=FITTED)

    def _build_network(self) -> nn.Module:
        """The unfitted network of this model's configuration; its output is one value per row, shape (batch,)."""
        raise NotImplementedError

    def _inputs(self, scaled: np.ndarray | torch.Tensor, device: torch.device) -> torch.Tensor:
        """The network's input for standardized rows (columns: `features`, in order), on `device`."""
        return torch.as_tensor(scaled, dtype=torch.float32, device=device)

    def _training_rows(self, X, y, X_valid, y_valid) -> tuple:
        """The (X, y, X_valid, y_valid) to fit on: as given, unless a family selects columns or splits rows."""
        return X, y, X_valid, y_valid

    def _fit(self, X, y, X_valid, y_valid) -> None:
        X, y, X_valid, y_valid = self._training_rows(X, y, X_valid, y_valid)
        device = select_device(self.device)
        self.scaler = Standardizer.fit(X)
        target = y.to_numpy(dtype=float)
        self.target_mean, self.target_std = float(target.mean()), float(target.std()) or 1.0
        self.features = list(X.columns)
        # built once on the training device: the trainer never copies a batch
        train = self._inputs(self.scaler.transform(X), device), self._target(y, device)
        valid = None
        if X_valid is not None:
            valid = self._inputs(self.scaler.transform(X_valid[self.features]), device), self._target(y_valid, device)
        batch = self.cuda_batch_size if device.type == "cuda" and self.cuda_batch_size else self.batch_size
        config = TrainConfig(self.epochs, self.patience, batch, self.lr, self.weight_decay, self.seed, self.precision)
        with seeded_torch(self.seed, device), cpu_threads(self.num_threads):
            self.network = self._build_network().to(device)
            self.valid_losses = fit_network(self.network, train, valid, config)

    def _target(self, y: pd.Series, device: torch.device) -> torch.Tensor:
        scaled = (y.to_numpy(dtype=float) - self.target_mean) / self.target_std
        return torch.as_tensor(scaled, dtype=torch.float32, device=device)

    @property
    def network_device(self) -> torch.device:
        return next(self.network.parameters()).device

    def _outputs(self, scaled: np.ndarray | torch.Tensor) -> torch.Tensor:
        """The network's float32 outputs for standardized rows, on its device (target units: scaled)."""
        device = self.network_device
        with cpu_threads(self.num_threads if device.type == "cpu" else None):
            return predict(self.network, self._inputs(scaled, device))

    def _predict_values(self, X: pd.DataFrame) -> np.ndarray:
        return self.predict_matrix(X.to_numpy(dtype=float))

    def predict_matrix(self, values: np.ndarray) -> np.ndarray:
        out = self._outputs(self.scaler.transform_matrix(values)).cpu().numpy().astype(float)
        return out * self.target_std + self.target_mean

    def contributions_matrix(self, values: np.ndarray) -> np.ndarray:
        """`Forecaster.contributions` (occlusion: each feature set to missing in turn, then all of them) computed on
        the network's device in a few large passes: the row and its k + 1 blanked copies are built there."""
        scaled = self.scaler.transform_matrix(values)
        n, k = scaled.shape
        device = self.network_device
        fill = torch.as_tensor(self.scaler.missing(), dtype=torch.float32, device=device)
        diagonal = torch.arange(k, device=device)
        rows_per_pass = max(1, min(EVAL_CHUNK_ROWS, EVAL_CHUNK_BYTES // ((k + 2) * k * 4)))
        parts = []
        for start in range(0, n, rows_per_pass):
            base = torch.as_tensor(scaled[start : start + rows_per_pass], dtype=torch.float32, device=device)
            stacked = base.unsqueeze(1).repeat(1, k + 2, 1)  # (rows, k + 2, k): the row, k blanked, all blanked
            stacked[:, diagonal + 1, diagonal] = fill
            stacked[:, k + 1, :] = fill
            parts.append(self._outputs(stacked.reshape(-1, k)).reshape(-1, k + 2))
        out = torch.cat(parts).cpu().numpy().astype(float) * self.target_std
        return np.column_stack([out[:, :1] - out[:, 1 : k + 1], out[:, k + 1] + self.target_mean])

    def _save(self, directory: Path) -> dict:
        state = {name: tensor.cpu() for name, tensor in self.network.state_dict().items()}
        torch.save(state, directory / self.weights_file)
        return {
            "scaler": self.scaler.to_dict(),
            "target_mean": self.target_mean,
            "target_std": self.target_std,
            "valid_losses": self.valid_losses,
        }

    def _restore_state(self, state: dict, directory: Path) -> None:
        self.scaler = Standardizer.from_dict(state["scaler"])
        self.target_mean, self.target_std = state["target_mean"], state["target_std"]
        self.valid_losses = list(state["valid_losses"])
        weights = torch.load(directory / self.weights_file, map_location="cpu", weights_only=True)
        self.network = self._build_network()
        self.network.load_state_dict(weights)
        self.network.eval()  # on the CPU: a caller that wants a GPU says so (to_device), nothing opens CUDA unasked

    def to_device(self, device: str) -> ScaledTorchForecaster:
        """Move the fitted network to `device` ("cpu", "cuda" or "auto"), e.g. to score on another device."""
        self.network.to(select_device(device)).eval()
        return self


@dataclass
class TorchMLPForecaster(ScaledTorchForecaster):
    """A PyTorch MLP on standardized features and target; early-stops on the validation set when given one."""

    family: ClassVar[str] = "torch_mlp"

    hidden_sizes: tuple[int, ...] = (64, 32)
    dropout: float = 0.1

    def _build_network(self) -> nn.Module:
        return build_mlp(len(self.features), self.hidden_sizes, self.dropout)
