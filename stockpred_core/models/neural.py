"""The PyTorch families (optional: `make install TORCH=none` leaves PyTorch out): the MLP forecaster and its
training loop. CUDA with float16 autocast when torch sees a GPU, deterministic on CPU."""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

import numpy as np
import pandas as pd
import torch
from torch import nn
from torch.utils.data import BatchSampler, DataLoader, RandomSampler, TensorDataset

from stockpred_core.models.forecaster import FITTED, ColumnForecaster
from stockpred_core.models.standardizer import Standardizer


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
    """Linear -> ReLU -> Dropout per hidden layer, then one linear output."""
    layers: list[nn.Module] = []
    for width in hidden_sizes:
        layers += [nn.Linear(n_inputs, width), nn.ReLU(), nn.Dropout(dropout)]
        n_inputs = width
    layers.append(nn.Linear(n_inputs, 1))
    return nn.Sequential(*layers)


def batches(X: torch.Tensor, y: torch.Tensor, batch_size: int, seed: int) -> DataLoader:
    """Shuffled mini-batches drawn with a seeded generator; whole batches are indexed at once (fast on CPU)."""
    dataset = TensorDataset(X, y)
    sampler = RandomSampler(dataset, generator=torch.Generator().manual_seed(seed))
    return DataLoader(dataset, sampler=BatchSampler(sampler, batch_size, drop_last=False), batch_size=None)


def run_epoch(net: nn.Module, loader: DataLoader, optimizer, grad_scaler, device: torch.device) -> None:
    """One pass over the training batches; float16 autocast with loss scaling on CUDA, plain float32 on CPU."""
    net.train()
    amp = device.type == "cuda"
    for xb, yb in loader:
        optimizer.zero_grad(set_to_none=True)
        with torch.autocast(device_type=device.type, dtype=torch.float16, enabled=amp):
            loss = nn.functional.mse_loss(net(xb).squeeze(-1).float(), yb)
        grad_scaler.scale(loss).backward()
        grad_scaler.step(optimizer)
        grad_scaler.update()


@torch.no_grad()
def forward(net: nn.Module, X: torch.Tensor, chunk: int = 65536) -> torch.Tensor:
    """Evaluation-mode outputs in float32, in chunks so a large X fits in GPU memory."""
    net.eval()
    return torch.cat([net(X[i : i + chunk]).squeeze(-1).float() for i in range(0, len(X), chunk)])


@dataclass
class ScaledTorchForecaster(ColumnForecaster):
    """What the PyTorch families share: inputs standardized and the target scaled with the training rows' statistics,
    a network, its validation losses; saved as weights.pt plus those statistics, restored onto CUDA when torch sees a
    GPU (where it was trained binds nothing: a GPU-trained model serves on a CPU-only node), else the CPU."""

    weights_file: ClassVar[str] = "weights.pt"

    scaler: Standardizer | None = field(default=None, init=False, repr=False, metadata=FITTED)
    target_mean: float = field(default=0.0, init=False, metadata=FITTED)
    target_std: float = field(default=1.0, init=False, metadata=FITTED)
    network: nn.Module | None = field(default=None, init=False, repr=False, metadata=FITTED)
    valid_losses: list[float] = field(default_factory=list, init=False, repr=False, metadata=FITTED)

    def _build_network(self) -> nn.Module:
        """The unfitted network of this model's configuration (what `_restore_state` loads the weights into)."""
        raise NotImplementedError

    def _fit_scaling(self, X: pd.DataFrame, y: pd.Series) -> None:
        self.scaler = Standardizer.fit(X)
        target = y.to_numpy(dtype=float)
        self.target_mean, self.target_std = float(target.mean()), float(target.std()) or 1.0

    def _target(self, y: pd.Series, device: torch.device | None = None) -> torch.Tensor:
        scaled = (y.to_numpy(dtype=float) - self.target_mean) / self.target_std
        return torch.as_tensor(scaled, dtype=torch.float32, device=device)

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
        self.network.to(select_device("cpu" if self.device == "cpu" else "auto")).eval()


@dataclass
class TorchMLPForecaster(ScaledTorchForecaster):
    """A PyTorch MLP on standardized features and target; early-stops on the validation set when given one."""

    family: ClassVar[str] = "torch_mlp"

    hidden_sizes: tuple[int, ...] = (64, 32)
    dropout: float = 0.1
    lr: float = 1e-3
    weight_decay: float = 1e-4
    batch_size: int = 512
    epochs: int = 20
    patience: int = 3  # epochs without a better validation loss before stopping
    seed: int = 0
    device: str = "auto"  # "auto" | "cpu" | "cuda"
    # a net this small trains many times faster on one CPU thread: more threads mostly contend (None: torch default)
    num_threads: int | None = 1

    def _fit(self, X, y, X_valid, y_valid) -> None:
        device = select_device(self.device)
        self._fit_scaling(X, y)
        train = self._tensors(X, device), self._target(y, device)
        valid = None if X_valid is None else (self._tensors(X_valid, device), self._target(y_valid, device))
        with seeded_torch(self.seed, device), cpu_threads(self.num_threads):
            self.network = build_mlp(X.shape[1], self.hidden_sizes, self.dropout).to(device)
            self.valid_losses = self._train(train, valid, device)
        self.features = list(X.columns)

    def _train(self, train, valid, device: torch.device) -> list[float]:
        """Train for `epochs`, keeping the weights of the best validation epoch and stopping after `patience`."""
        optimizer = torch.optim.AdamW(self.network.parameters(), lr=self.lr, weight_decay=self.weight_decay)
        grad_scaler = torch.amp.GradScaler(device.type, enabled=device.type == "cuda")
        loader = batches(*train, self.batch_size, self.seed)
        losses, best_state, stale = [], None, 0
        for _ in range(self.epochs):
            run_epoch(self.network, loader, optimizer, grad_scaler, device)
            if valid is None:
                continue
            losses.append(nn.functional.mse_loss(forward(self.network, valid[0]), valid[1]).item())
            if losses[-1] <= min(losses):
                best_state, stale = copy.deepcopy(self.network.state_dict()), 0
            else:
                stale += 1
                if stale >= self.patience:
                    break
        if best_state is not None:
            self.network.load_state_dict(best_state)
        return losses

    def _tensors(self, X: pd.DataFrame, device: torch.device) -> torch.Tensor:
        return torch.as_tensor(self.scaler.transform(X), dtype=torch.float32, device=device)

    def _predict_values(self, X: pd.DataFrame) -> np.ndarray:
        device = next(self.network.parameters()).device
        with cpu_threads(self.num_threads):
            out = forward(self.network, self._tensors(X, device)).cpu().numpy().astype(float)
        return out * self.target_std + self.target_mean

    def _build_network(self) -> nn.Module:
        return build_mlp(len(self.features), self.hidden_sizes, self.dropout)
