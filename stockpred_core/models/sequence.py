"""The GRU family: a recurrent network over each row's last 30 sessions of prices and volume (the `seq30` feature
family, `features/sequence.py`), trained by the PyTorch families' one trainer (`trainer.fit_network`): early stopping
on a purged validation segment of the training dates, the best epoch's weights kept, CUDA with mixed precision when
torch sees a GPU, deterministic on CPU. Optional like the MLP: it needs PyTorch (`make install`'s TORCH=cpu or cuda)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import torch
from torch import nn

from stockpred_core.dataset.splits import purged_train_valid
from stockpred_core.features.sequence import FAMILY, FIELDS, SEQUENCE_COLUMNS, SESSIONS
from stockpred_core.models.neural import ScaledTorchForecaster

MISSING = f"the gru family reads the {FAMILY} feature family: add it to the recipe's feature_families"


class GRUNet(nn.Module):
    """GRU over (batch, sessions, fields), its last hidden state through a linear head: one value per row."""

    def __init__(self, n_fields: int, hidden_size: int, num_layers: int, dropout: float):
        super().__init__()
        self.gru = nn.GRU(n_fields, hidden_size, num_layers, batch_first=True, dropout=dropout if num_layers > 1 else 0)
        self.head = nn.Linear(hidden_size, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out, _ = self.gru(x)
        return self.head(out[:, -1]).squeeze(-1)


@dataclass
class GRUForecaster(ScaledTorchForecaster):
    """A GRU over the last 30 sessions' scaled price/volume path of each row (early-stopped)."""

    family: ClassVar[str] = "gru"

    hidden_size: int = 32
    num_layers: int = 2
    dropout: float = 0.1
    batch_size: int = 2048
    epochs: int = 8
    patience: int = 2
    valid_fraction: float = 0.15  # the newest dates of the training rows, when no validation set is given
    purge: int = 5  # dates left out between them and the training dates (at least the label horizon)
    num_threads: int | None = None

    def _training_rows(self, X, y, X_valid, y_valid) -> tuple:
        missing = [c for c in SEQUENCE_COLUMNS if c not in X.columns]
        if missing:
            raise ValueError(f"{MISSING} (missing {missing[:3]}...)")
        X = X[SEQUENCE_COLUMNS]
        if X_valid is None:
            train, valid = purged_train_valid(X.index, self.valid_fraction, self.purge)
            X, y, X_valid, y_valid = X[train.to_numpy()], y[train.to_numpy()], X[valid.to_numpy()], y[valid.to_numpy()]
        return X, y, X_valid, y_valid

    def _inputs(self, scaled: np.ndarray | torch.Tensor, device: torch.device) -> torch.Tensor:
        """(rows, sessions, fields), oldest session first: the scaled columns are field-major, newest first."""
        flat = torch.as_tensor(scaled, dtype=torch.float32, device=device)
        return flat.reshape(len(flat), len(FIELDS), SESSIONS).transpose(1, 2).flip(1)

    def _build_network(self) -> GRUNet:
        return GRUNet(len(FIELDS), self.hidden_size, self.num_layers, self.dropout)
