"""The PyTorch families on the CPU and, when torch sees one, on a CUDA GPU, side by side in one run.

    .venv/bin/python benchmarks/gpu.py [--rows 400000] [--epochs 10] [--quick] [--json PATH]

Data: `simulate_signal` (stockpred_core/data/synthetic.py), seeded, with a signal: `--rows` training rows x 60
features for the MLP and a quarter as many rows of 150 columns (30 sessions x 5 fields, the seq30 layout) for the
GRU; a target that is a non-linear function of a few inputs plus noise; a validation segment (early stopping's) and
a held-out test segment for the out-of-sample IC of every fit (a GPU fit must forecast as well as the CPU one). It
needs PyTorch, numpy and pandas only: it runs on the lent GPU machine (scripts/gpu-check.sh).

Per family and device:
- train: `Forecaster.fit` (the families' own trainer): `fit s` the whole fit, `loop s` its training loop (the rest
  is standardizing the frames and copying them to the device once), rows/s = rows x epochs / loop seconds; the MLP
  is (256, 128), batch 4096; the GRU 2 x 32, batch 2048. On a GPU also with `cuda_batch_size` 16384 (a larger
  batch is the recipe's choice: it changes the fit, and the IC column says by how much);
- score: milliseconds for 1, 1,000 and 10,000 tickers through `predict_matrix` (the service's model call) and
  `contributions_matrix` (its explanations), median of repeats;
- reference: the default MLP (64, 32; batch 512) and this one on the same device-resident batches (the first
  `--reference-rows` training rows) through Lightning's Trainer, beside the families' trainer: seconds per epoch,
  the fixed seconds of a fit, Lightning's overhead per step (what `stockpred_core/models/trainer.py` cites).
The CPU uses every core torch sees (`num_threads` None); the ratio column is GPU / CPU.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import statistics
import sys
import time
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing it

import numpy as np
import pandas as pd
import torch

from stockpred_core.data.synthetic import simulate_signal
from stockpred_core.features.sequence import SEQUENCE_COLUMNS
from stockpred_core.models import neural
from stockpred_core.models.neural import TorchMLPForecaster, build_mlp
from stockpred_core.models.sequence import GRUForecaster
from stockpred_core.models.trainer import DeviceBatches, TrainConfig, fit_network, resolve_precision

FEATURES = [f"f{i}" for i in range(60)]
TICKERS = (1, 1_000, 10_000)
# (family, recipe, its configuration): the mlp_model asset's defaults ((64, 32), batch 512, one CPU thread), the
# wider MLP the issue measured, the GRU of the seq30 recipe; patience: every epoch runs, the best one is kept
RECIPES = (
    ("torch_mlp", "default", {"patience": 1_000}),
    ("torch_mlp", "wide", {"hidden_sizes": (256, 128), "batch_size": 4096, "patience": 1_000, "num_threads": None}),
    (
        "gru",
        "default",
        {"hidden_size": 32, "num_layers": 2, "batch_size": 2048, "patience": 1_000, "num_threads": None},
    ),
)
# the GRU's explanation runs 152 sequences per ticker (35 s for 10,000 on 2 CPU cores) and no GRU is served (the
# model assets refuse the family): its explanations are timed up to 1,000 tickers
EXPLAIN_MAX = {"torch_mlp": 10_000, "gru": 1_000}
REFERENCE_REPEATS = 3
GPU_BATCH = 16_384


def sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def timed(fn, device: str) -> tuple[float, object]:
    sync(device)
    began = time.perf_counter()
    out = fn()
    sync(device)
    return time.perf_counter() - began, out


class LoopTimer:
    """Times the families' training loop inside `Forecaster.fit` (the rest of a fit, standardizing the frames and
    copying them to the device, is a fixed cost reported apart): wraps `neural.fit_network` for one fit."""

    def __init__(self, device: str) -> None:
        self.device, self.seconds = device, 0.0

    def __enter__(self) -> LoopTimer:
        self.original = neural.fit_network

        def timed_loop(*args, **kwargs):
            seconds, losses = timed(lambda: self.original(*args, **kwargs), self.device)
            self.seconds += seconds
            return losses

        neural.fit_network = timed_loop
        return self

    def __exit__(self, *exc) -> None:
        neural.fit_network = self.original


def fit_case(family: str, build, data: tuple, device: str, epochs: int, extra: dict) -> dict:
    X, y, X_valid, y_valid, X_test, y_test = data
    model = build(**extra, epochs=epochs, device=device)
    with LoopTimer(device) as loop:
        seconds, _ = timed(lambda: model.fit(X, y, X_valid, y_valid), device)
    ran = len(model.valid_losses)
    recurrent = family == "gru"
    return {
        "family": family,
        "device": device,
        "batch": model.cuda_batch_size if device == "cuda" and model.cuda_batch_size else model.batch_size,
        "precision": resolve_precision(model.precision, torch.device(device), recurrent),
        "epochs": ran,
        "fit_s": seconds,
        "loop_s": loop.seconds,
        "rows_per_s": len(X) * ran / loop.seconds,
        "test_ic": model.predict(X_test).rank().corr(y_test.rank()),  # rank IC
        "model": model,
    }


def score_case(model, X_test: pd.DataFrame, device: str, repeats: int) -> dict:
    """Median milliseconds to score (and to explain) n tickers on the model's device, after one warm-up."""
    values = X_test[model.feature_names].to_numpy(dtype=float)
    out = {}
    for n in TICKERS:
        rows = values[np.arange(n) % len(values)]
        for name, call in (("score", model.predict_matrix), ("explain", model.contributions_matrix)):
            if name == "explain" and n > EXPLAIN_MAX[model.family]:
                continue
            first, _ = timed(lambda c=call, r=rows: c(r), device)  # also the warm-up
            count = repeats if first < 0.1 else 3  # a slow call: three are enough for its median
            times = [timed(lambda c=call, r=rows: c(r), device)[0] for _ in range(count)]
            out[f"{name}_{n}_ms"] = 1000 * statistics.median(times)
    return out


def lightning_reference(X: pd.DataFrame, y: pd.Series, device: str, epochs: int, hidden: tuple, batch: int):
    """An MLP on the same device-resident batches, trained by Lightning's Trainer and by `fit_network`, for 1 and
    `epochs` epochs each: the difference of the two is the cost per epoch, the rest the fixed cost of a fit (a
    Trainer's set-up, say). None without Lightning."""
    try:
        import lightning as L
    except ImportError:
        return None
    warnings.filterwarnings("ignore", module="lightning")
    logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)
    dev = torch.device(device)
    inputs = torch.as_tensor(np.nan_to_num(X.to_numpy(dtype=np.float32)), device=dev)
    target = torch.as_tensor(((y - y.mean()) / y.std()).to_numpy(dtype=np.float32), device=dev)
    precision = resolve_precision("auto", dev)

    class Module(L.LightningModule):
        def __init__(self) -> None:
            super().__init__()
            self.net = build_mlp(inputs.shape[1], hidden, 0.1)

        def training_step(self, batch, _):
            return torch.nn.functional.mse_loss(self.net(batch[0]).float(), batch[1])

        def configure_optimizers(self):
            return torch.optim.AdamW(self.parameters(), lr=1e-3, weight_decay=1e-4, fused=device == "cuda" or None)

    def lightning(n: int) -> None:
        trainer = L.Trainer(
            max_epochs=n,
            accelerator="gpu" if device == "cuda" else "cpu",
            devices=1,
            precision=precision if precision != "32" else "32-true",
            logger=False,
            enable_checkpointing=False,
            enable_progress_bar=False,
            enable_model_summary=False,
            num_sanity_val_steps=0,
        )
        trainer.fit(Module().to(dev), DeviceBatches((inputs, target), batch, 0))

    def ours(n: int) -> None:
        config = TrainConfig(n, 1_000, batch, 1e-3, 1e-4, 0, precision)
        fit_network(build_mlp(inputs.shape[1], hidden, 0.1).to(dev), (inputs, target), None, config)

    ours(1)  # warm-up: allocator, kernels
    lightning(1)
    out = {"device": device, "hidden": hidden, "batch": batch, "steps_per_epoch": -(-len(inputs) // batch)}
    for name, fn in (("trainer", ours), ("lightning", lightning)):
        runs = {n: [timed(lambda n=n, f=fn: f(n), device)[0] for _ in range(REFERENCE_REPEATS)] for n in (1, epochs)}
        one, many = statistics.median(runs[1]), statistics.median(runs[epochs])
        per_epoch = (many - one) / (epochs - 1)
        spread = (max(runs[epochs]) - min(runs[epochs])) / (epochs - 1)  # the noise of that figure, per epoch
        out |= {f"{name}_epoch_s": per_epoch, f"{name}_fixed_s": one - per_epoch, f"{name}_spread_s": spread}
    out["overhead_ms_per_step"] = 1000 * (out["lightning_epoch_s"] - out["trainer_epoch_s"]) / out["steps_per_epoch"]
    difference = abs(out["lightning_epoch_s"] - out["trainer_epoch_s"])
    out["within_noise"] = difference <= out["trainer_spread_s"] + out["lightning_spread_s"]
    return out


def start_up(device: str) -> None:
    """Tiny fits of both families, so that no measured fit pays for a once-per-process start: CUDA, cuBLAS and cuDNN
    on a GPU; on the CPU the import of torch's compiler that the first `use_deterministic_algorithms` call makes."""
    TorchMLPForecaster(epochs=1, device=device).fit(*simulate_signal(4096, FEATURES[:8], 1)[:4])
    GRUForecaster(epochs=1, device=device).fit(*simulate_signal(4096, SEQUENCE_COLUMNS, 1)[:4])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=400_000, help="MLP training rows (the GRU gets a quarter)")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--reference-epochs", type=int, default=4, help="at least 2 (the reference also runs 1)")
    parser.add_argument("--reference-rows", type=int, default=100_000)
    parser.add_argument("--repeats", type=int, default=20, help="timed scoring calls per size")
    parser.add_argument("--quick", action="store_true", help="50,000 rows, 2 epochs: a smoke run")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    if args.quick:
        args.rows, args.epochs, args.reference_epochs, args.reference_rows, args.repeats = 50_000, 2, 2, 20_000, 5
    devices = ["cpu", *(["cuda"] if torch.cuda.is_available() else [])]
    gpu = torch.cuda.get_device_name(0) if "cuda" in devices else "none"
    print(
        f"torch {torch.__version__}, {os.cpu_count()} cores ({torch.get_num_threads()} torch threads), GPU: {gpu}, "
        f"load average {os.getloadavg()[0]:.2f}; MLP {args.rows:,} x {len(FEATURES)}, "
        f"GRU {args.rows // 4:,} x {len(SEQUENCE_COLUMNS)}"
    )
    for device in devices:
        seconds, _ = timed(lambda d=device: start_up(d), device)
        print(f"start-up on {device} (first fits of a tiny MLP and GRU): {seconds:.2f}s")
    total = int(args.rows / 0.7)  # --rows is the training segment: 70% of the rows drawn
    mlp_data = simulate_signal(total, FEATURES, 0)
    gru_data = simulate_signal(total // 4, SEQUENCE_COLUMNS, 1)  # named as the seq30 family's columns, which it reads
    data = {"torch_mlp": mlp_data, "gru": gru_data}
    builds = {"torch_mlp": TorchMLPForecaster, "gru": GRUForecaster}
    meta = {"torch": torch.__version__, "gpu": gpu, "cores": os.cpu_count(), "host": platform.node()}
    cases, references = [], []

    def save() -> None:  # after every case: a run cut short keeps what it measured
        if args.json:
            figures = {"meta": meta, "args": vars(args) | {"json": str(args.json)}, "cases": cases,
                       "references": references}  # fmt: skip
            args.json.write_text(json.dumps(figures, indent=2, default=str))

    for family, recipe, config in RECIPES:
        for device in devices:
            variants = [config] + ([{**config, "cuda_batch_size": GPU_BATCH}] if device == "cuda" else [])
            for extra in variants:
                case = {"recipe": recipe} | fit_case(family, builds[family], data[family], device, args.epochs, extra)
                case |= score_case(case.pop("model"), data[family][4], device, args.repeats)
                cases.append(case)
                save()
                print(f"  measured {family} {recipe} on {device}, batch {case['batch']}", flush=True)
    X, y = mlp_data[0].iloc[: args.reference_rows], mlp_data[1].iloc[: args.reference_rows]
    for device in devices:
        for hidden, batch in (((64, 32), 512), ((256, 128), 4096)):  # the default MLP, the wide one
            found = lightning_reference(X, y, device, args.reference_epochs, hidden, batch)
            if found:
                references.append(found)
                save()
    report(cases, references)


def report(cases: list[dict], references: list[dict]) -> None:
    cpu = {(c["family"], c["recipe"]): c for c in cases if c["device"] == "cpu"}
    print(f"\n{'family':<10} {'recipe':<8} {'device':<6} {'batch':>6} {'precision':<10} {'epochs':>6} "
          f"{'fit s':>7} {'loop s':>7} {'rows/s':>11} {'vs cpu':>7} {'test IC':>8}")  # fmt: skip
    for c in cases:
        ratio = c["rows_per_s"] / cpu[c["family"], c["recipe"]]["rows_per_s"]
        print(
            f"{c['family']:<10} {c['recipe']:<8} {c['device']:<6} {c['batch']:>6} {c['precision']:<10} "
            f"{c['epochs']:>6} {c['fit_s']:>7.2f} {c['loop_s']:>7.2f} {c['rows_per_s']:>11,.0f} {ratio:>6.1f}x "
            f"{c['test_ic']:>8.4f}"
        )
    print(f"\nscoring, ms (median)               {'':<8}" + "".join(f"{n:>10,}" for n in TICKERS) + "  tickers")
    for c in cases:
        for name in ("score", "explain"):
            cells = "".join(f"{c[f'{name}_{n}_ms']:>10.2f}" if f"{name}_{n}_ms" in c else f"{'-':>10}" for n in TICKERS)
            largest = max(n for n in TICKERS if f"{name}_{n}_ms" in c)
            base = cpu[c["family"], c["recipe"]][f"{name}_{largest}_ms"] / c[f"{name}_{largest}_ms"]
            label = f"{c['family']:<10} {c['recipe']:<8} {c['device']:<6} b{c['batch']:<6} {name:<8}"
            print(f"{label}{cells}   ({base:.1f}x cpu at {largest:,})")
    if references:
        print("\ntrainer vs Lightning, an MLP on the same device-resident batches (seconds per epoch, per fit)")
    for r in references:
        print(
            f"{r['device']:<5} MLP {r['hidden']!s:<11} batch {r['batch']:>5}: "
            f"per epoch {r['trainer_epoch_s']:.3f}s vs "
            f"{r['lightning_epoch_s']:.3f}s ({r['lightning_epoch_s'] / r['trainer_epoch_s']:.2f}x), fixed "
            f"{r['trainer_fixed_s']:.3f}s vs {r['lightning_fixed_s']:.3f}s; "
            + (
                "level (within the runs' noise)"
                if r["within_noise"]
                else f"Lightning adds {r['overhead_ms_per_step']:.3f} ms per step"
            )
        )


if __name__ == "__main__":
    main()
