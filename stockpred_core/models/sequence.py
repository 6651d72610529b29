"""The GRU family: a recurrent network over each row's last 30 sessions of prices and volume (the `seq30` feature
family, `features/sequence.py`), trained with PyTorch Lightning: early stopping on a purged validation segment of
the training dates, the best epoch's weights kept, CUDA (16-bit mixed precision) when torch sees a GPU, deterministic
on CPU. Optional like the MLP: it needs PyTorch and Lightning (`make install`'s TORCH=cpu or cuda)."""

from __future__ import annotations

import copy
import logging
import warnings
from dataclasses import dataclass
from typing import ClassVar

import lightning as L
import numpy as np
import pandas as pd
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from stockpred_core.dataset.splits import purged_train_valid
from stockpred_core.features.sequence import FAMILY, FIELDS, SEQUENCE_COLUMNS, SESSIONS
from stockpred_core.models.neural import ScaledTorchForecaster, cpu_threads, seeded_torch, select_device

MISSING = f"the gru family reads the {FAMILY} feature family: add it to the recipe's feature_families"


class GRUNet(L.LightningModule):
    """GRU over (batch, sessions, fields), its last hidden state through a linear head; MSE on the scaled target."""

    def __init__(
        self, n_fields: int, hidden_size: int, num_layers: int, dropout: float, lr: float, weight_decay: float
    ):
        super().__init__()
        self.save_hyperparameters()
        self.gru = nn.GRU(n_fields, hidden_size, num_layers, batch_first=True, dropout=dropout if num_layers > 1 else 0)
        self.head = nn.Linear(hidden_size, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out, _ = self.gru(x)
        return self.head(out[:, -1]).squeeze(-1)

    def training_step(self, batch, _):
        x, y = batch
        loss = nn.functional.mse_loss(self(x).float(), y)
        self.log("train_loss", loss, on_epoch=True, on_step=False)
        return loss

    def validation_step(self, batch, _):
        x, y = batch
        self.log("val_loss", nn.functional.mse_loss(self(x).float(), y), on_epoch=True, prog_bar=False)

    def configure_optimizers(self):
        return torch.optim.AdamW(self.parameters(), lr=self.hparams.lr, weight_decay=self.hparams.weight_decay)


class _KeepBest(L.Callback):
    """Keeps the weights of the epoch with the lowest validation loss (in memory, no checkpoint files)."""

    def __init__(self) -> None:
        self.best, self.state, self.losses = float("inf"), None, []

    def on_validation_epoch_end(self, trainer, module) -> None:
        if trainer.sanity_checking:
            return
        loss = float(trainer.callback_metrics["val_loss"])
        self.losses.append(loss)
        if loss < self.best:
            self.best, self.state = loss, copy.deepcopy(module.state_dict())


@dataclass
class GRUForecaster(ScaledTorchForecaster):
    """A GRU over the last 30 sessions' scaled price/volume path of each row (Lightning, early-stopped)."""

    family: ClassVar[str] = "gru"

    hidden_size: int = 32
    num_layers: int = 2
    dropout: float = 0.1
    lr: float = 1e-3
    weight_decay: float = 1e-4
    batch_size: int = 2048
    epochs: int = 8
    patience: int = 2  # epochs without a lower validation loss before stopping
    valid_fraction: float = 0.15  # the newest dates of the training rows, when no validation set is given
    purge: int = 5  # dates left out between them and the training dates (at least the label horizon)
    seed: int = 0
    device: str = "auto"  # "auto" | "cpu" | "cuda"
    num_threads: int | None = None

    def _fit(self, X, y, X_valid, y_valid) -> None:
        missing = [c for c in SEQUENCE_COLUMNS if c not in X.columns]
        if missing:
            raise ValueError(f"{MISSING} (missing {missing[:3]}...)")
        X = X[SEQUENCE_COLUMNS]
        if X_valid is None:
            train, valid = purged_train_valid(X.index, self.valid_fraction, self.purge)
            X, y, X_valid, y_valid = X[train.to_numpy()], y[train.to_numpy()], X[valid.to_numpy()], y[valid.to_numpy()]
        device = select_device(self.device)
        self._fit_scaling(X, y)
        self.features = list(SEQUENCE_COLUMNS)
        generator = torch.Generator().manual_seed(self.seed)
        loaders = [
            DataLoader(
                TensorDataset(self._sequences(x), self._target(t)),
                batch_size=self.batch_size,
                shuffle=shuffle,
                generator=generator if shuffle else None,
            )
            for x, t, shuffle in ((X, y, True), (X_valid[SEQUENCE_COLUMNS], y_valid, False))
        ]
        keep = _KeepBest()
        # seeded_torch: the fit's own RNG state and determinism (CPU), the caller's restored afterwards; the Trainer
        # is told nothing about determinism, so it changes no process-wide setting
        with cpu_threads(self.num_threads), seeded_torch(self.seed, device), _quiet():
            self.network = self._build_network()
            trainer = L.Trainer(
                max_epochs=self.epochs,
                accelerator="gpu" if device.type == "cuda" else "cpu",
                devices=1,
                precision="16-mixed" if device.type == "cuda" else "32-true",
                callbacks=[L.pytorch.callbacks.EarlyStopping("val_loss", patience=self.patience), keep],
                logger=False,
                enable_checkpointing=False,
                enable_progress_bar=False,
                enable_model_summary=False,
                num_sanity_val_steps=0,
            )
            trainer.fit(self.network, *loaders)
        if keep.state is not None:
            self.network.load_state_dict(keep.state)
        self.valid_losses = keep.losses
        self.network.to(device).eval()

    def _sequences(self, X: pd.DataFrame) -> torch.Tensor:
        """(rows, sessions, fields), oldest session first: the scaled columns are field-major, newest first."""
        scaled = self.scaler.transform(X[SEQUENCE_COLUMNS]).reshape(len(X), len(FIELDS), SESSIONS)
        return torch.as_tensor(np.ascontiguousarray(scaled.transpose(0, 2, 1)[:, ::-1]), dtype=torch.float32)

    @torch.no_grad()
    def _predict_values(self, X: pd.DataFrame) -> np.ndarray:
        net = self.network.eval()
        device = next(net.parameters()).device
        x = self._sequences(X)
        with cpu_threads(self.num_threads):
            out = torch.cat([net(x[i : i + 65536].to(device)).float().cpu() for i in range(0, len(x), 65536)])
        return out.numpy().astype(float) * self.target_std + self.target_mean

    def _build_network(self) -> GRUNet:
        return GRUNet(len(FIELDS), self.hidden_size, self.num_layers, self.dropout, self.lr, self.weight_decay)


class _quiet:
    """Lightning's start-up banners and its few-dataloader-workers hint, silenced for one fit."""

    def __enter__(self):
        self._warnings = warnings.catch_warnings()
        self._warnings.__enter__()
        warnings.filterwarnings("ignore", module="lightning")
        warnings.filterwarnings("ignore", message=".*does not have many workers.*")
        self._logger = logging.getLogger("lightning.pytorch")
        self._level = self._logger.level
        self._logger.setLevel(logging.WARNING)
        return self

    def __exit__(self, *exc):
        self._logger.setLevel(self._level)
        return self._warnings.__exit__(*exc)
