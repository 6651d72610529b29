"""The one training loop of the PyTorch families (the MLP and the GRU): mini-batch AdamW on tensors that live on the
training device, mixed precision on a GPU, early stopping on a validation set with the best epoch's weights kept.

Why not Lightning's Trainer: `benchmarks/gpu.py` fits the same network on the same device-resident batches through
both, side by side. On the 2-core development machine, for the default MLP (64, 32; batch 512), Lightning took 1.37x
this loop's time per epoch (0.369 s against 0.268 s on 100,000 rows, medians of 3: 0.51 ms of hooks per step); for
(256, 128) at batch 4096 the two were level within the runs' noise. On a GPU the GPU figures will say how much of a
step the hooks are. What Lightning gave the GRU (early stopping, the best epoch's weights, 16-bit mixed precision,
device placement) is here instead.

On a GPU the whole training set is copied to the device once. Each epoch draws one permutation from a CPU generator
seeded with the fit's seed (so the batches are the same on every device: dropout masks and the arithmetic still
differ, so a GPU fit matches the CPU fit's forecast quality, not its weights), moves it to the device and gathers
the rows there; the batches are views of that gather. The loop never copies a batch nor waits for the device until
the epoch's validation loss is read.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

import torch
from torch import nn

PRECISIONS = ("auto", "32", "16-mixed", "bf16-mixed")
AUTOCAST_DTYPES = {"16-mixed": torch.float16, "bf16-mixed": torch.bfloat16}
# rows per forward pass when evaluating: at most EVAL_CHUNK_ROWS (a GRU's activations are ~14x its inputs) and
# EVAL_CHUNK_BYTES of inputs, so a large X never needs memory for all of its activations at once
EVAL_CHUNK_ROWS = 65_536
EVAL_CHUNK_BYTES = 256 * 2**20


def resolve_precision(precision: str, device: torch.device, recurrent: bool = False) -> str:
    """The arithmetic of a fit on `device`. "auto": float32 on the CPU; on a GPU bfloat16 autocast where the GPU has
    it natively (Ampere and newer: float32's range, no loss scaling), else float16 autocast with loss scaling; and
    float16 with loss scaling for a `recurrent` network, whose cuDNN kernels autocast runs in float16 whatever dtype
    it was asked for. Weights, optimizer state, losses and every prediction stay float32."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, not {precision!r}")
    if precision == "auto":
        if device.type != "cuda":
            return "32"
        return "bf16-mixed" if torch.cuda.is_bf16_supported(including_emulation=False) and not recurrent else "16-mixed"
    if precision == "16-mixed" and device.type != "cuda":
        raise ValueError("precision '16-mixed' (float16, loss scaling) needs a CUDA device; use 'bf16-mixed' or '32'")
    return precision


@dataclass(frozen=True)
class TrainConfig:
    epochs: int
    patience: int  # epochs without a lower validation loss before stopping
    batch_size: int
    lr: float
    weight_decay: float
    seed: int
    precision: str = "auto"

    def __post_init__(self) -> None:
        for name in ("epochs", "patience", "batch_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, not {getattr(self, name)}")


class DeviceBatches:
    """Shuffled mini-batches of tensors already on the training device (see the module docstring)."""

    def __init__(self, tensors: tuple[torch.Tensor, ...], batch_size: int, seed: int) -> None:
        self.tensors = tensors
        self.rows = len(tensors[0])
        self.batch_size = batch_size
        self.generator = torch.Generator().manual_seed(seed)

    def __len__(self) -> int:
        return -(-self.rows // self.batch_size)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, ...]]:
        device = self.tensors[0].device
        order = torch.randperm(self.rows, generator=self.generator).to(device, non_blocking=True)
        shuffled = [tensor.index_select(0, order) for tensor in self.tensors]
        for start in range(0, self.rows, self.batch_size):
            yield tuple(tensor[start : start + self.batch_size] for tensor in shuffled)


def is_recurrent(net: nn.Module) -> bool:
    return any(isinstance(module, nn.RNNBase) for module in net.modules())


@torch.no_grad()
def predict(net: nn.Module, X: torch.Tensor) -> torch.Tensor:
    """The network's float32 outputs in evaluation mode, on X's device, a bounded chunk of rows per pass."""
    net.eval()
    row_bytes = max(1, X[:1].numel() * X.element_size())
    chunk = max(1, min(EVAL_CHUNK_ROWS, EVAL_CHUNK_BYTES // row_bytes))
    device = next(net.parameters()).device
    return torch.cat([net(X[i : i + chunk].to(device)).float().reshape(-1) for i in range(0, len(X), chunk)])


def fit_network(
    net: nn.Module,
    train: tuple[torch.Tensor, torch.Tensor],
    valid: tuple[torch.Tensor, torch.Tensor] | None,
    config: TrainConfig,
) -> list[float]:
    """Train `net` (already on the device of `train`) to minimise the MSE of its (batch,) output against the target.
    With `valid`, the validation loss of every epoch is returned and the weights of the lowest one are kept; training
    stops after `patience` epochs without a lower one. Seeding and determinism are the caller's (`seeded_torch`)."""
    device = train[0].device
    cuda, recurrent = device.type == "cuda", is_recurrent(net)
    precision = resolve_precision(config.precision, device, recurrent)
    dtype = AUTOCAST_DTYPES.get(precision)
    # fused: one kernel for the whole update on a GPU; the CPU keeps the default (for-each) implementation
    optimizer = torch.optim.AdamW(net.parameters(), lr=config.lr, weight_decay=config.weight_decay, fused=cuda or None)
    # loss scaling for float16, and for any autocast of a recurrent net on CUDA (cuDNN runs it in float16 regardless)
    scaled = precision == "16-mixed" or (cuda and dtype is not None and recurrent)
    scaler = torch.amp.GradScaler(device.type, enabled=scaled)
    batches = DeviceBatches(train, config.batch_size, config.seed)
    losses: list[float] = []
    best: dict[str, torch.Tensor] | None = None
    best_epoch = 0
    for _ in range(config.epochs):
        net.train()
        for xb, yb in batches:
            optimizer.zero_grad(set_to_none=True)
            with torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
                output = net(xb)
            loss = nn.functional.mse_loss(output.float().reshape(-1), yb)
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
        if valid is None:
            continue
        losses.append(nn.functional.mse_loss(predict(net, valid[0]), valid[1]).item())  # the epoch's one wait
        if not math.isfinite(losses[-1]):  # diverged: stop, keeping the best epoch's weights if there was one
            if best is None:
                raise ValueError(
                    f"training diverged: the validation loss is {losses[-1]} after epoch {len(losses)} "
                    f"(lr {config.lr}, precision {precision}); lower lr or use precision '32'"
                )
            break
        if losses[-1] < min(losses[:-1], default=math.inf):
            best, best_epoch = {name: tensor.detach().clone() for name, tensor in net.state_dict().items()}, len(losses)
        elif len(losses) - best_epoch >= config.patience:
            break
    if best is not None:
        net.load_state_dict(best)
    net.eval()
    return losses
