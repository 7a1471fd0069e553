#!/usr/bin/env python3
"""Benchmark: our trainer vs a faithful copy of the course notebook's training loop.

Both run in this process, on the same device, data (CIFAR-10 from --data-dir), model (Myrtle5
of --width) and recipe (SGD lr 0.1, batch 128, cross-entropy). The notebook loop: float32
tensors in a TensorDataset, DataLoader(shuffle=True, num_workers=4), NCHW fp32, `loss.item()`
and an accuracy count every step. Ours: `hw0cli.train.Trainer` with --precision/--compile as
given (default: what `hw0 train` would pick). Timing window: --batches steps after --warmup
steps (0 = a full epoch). Prints images/s of each and the ratio, with device, precision and
versions.

    python scripts/bench_train.py --data-dir data --width 64 --batches 50
    python scripts/bench_train.py --data-dir data --width 4 --batches 0   # full epoch
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from hw0cli.data import load_cifar10
from hw0cli.env import (
    device_name,
    resolve_compile,
    resolve_device,
    resolve_precision,
)
from hw0cli.models import make_cnn
from hw0cli.train import Trainer, make_config


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def notebook_loop(data, width: int, device: torch.device, batches: int, warmup: int,
                  workers: int) -> tuple[float, int]:
    """The course notebook's loop, as written there (fp32, DataLoader, per-step .item())."""
    torch.manual_seed(0)
    x = torch.tensor(data.train_x, dtype=torch.float32) / 255.0
    y = torch.tensor(data.train_y, dtype=torch.long)
    dl = DataLoader(TensorDataset(x, y), batch_size=128, shuffle=True, num_workers=workers,
                    pin_memory=device.type == "cuda")
    model = make_cnn(width).to(device)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    loss_func = nn.CrossEntropyLoss()
    model.train()
    total = len(dl) if batches == 0 else warmup + batches
    net_loss, n_correct, n_total, n_timed = 0.0, 0, 0, 0
    t0 = None
    for i, (xb, yb) in enumerate(dl):
        if i == warmup:
            sync(device)
            t0 = time.perf_counter()
        if i >= total:
            break
        xb, yb = xb.to(device), yb.to(device)
        opt.zero_grad()
        outputs = model(xb)
        loss = loss_func(outputs, yb)
        loss.backward()
        opt.step()
        net_loss += loss.item() * len(xb)
        with torch.no_grad():
            preds = outputs.argmax(1)
            n_correct += int((preds == yb).float().sum())
            n_total += preds.size(0)
        if i >= warmup:
            n_timed += len(xb)
    sync(device)
    return time.perf_counter() - t0, n_timed


def ours(data, width: int, device: torch.device, precision: str, compile_: bool, batches: int,
         warmup: int) -> tuple[float, int, float]:
    """Our trainer: warm-up steps (compile, autotuning) timed apart from the window."""
    cfg = make_config("notebook", width=width, device=device.type, precision=precision,
                      compile=compile_, train_samples=len(data.train_y))
    t = time.perf_counter()
    tr = Trainer(cfg, data, device, precision, compile_)
    # warm-up (a separate epoch draw: same work per step) covering every shape the timed
    # window will see: a full-epoch window ends with a partial batch, which torch.compile
    # (static shapes) compiles once; that belongs to the one-time cost, not the steady state
    if batches == 0:
        tr.train_epoch(1)
    elif warmup:
        tr.train_epoch(1, max_steps=warmup)
    sync(device)
    one_time = time.perf_counter() - t
    r = tr.train_epoch(2, max_steps=None if batches == 0 else batches)
    return r["seconds"], r["images"], one_time


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data-dir", type=Path, default=Path("data"))
    ap.add_argument("--width", type=int, default=64)
    ap.add_argument("--batches", type=int, default=50, help="timed steps; 0 = a full epoch")
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--precision", default="auto")
    ap.add_argument("--compile", choices=("auto", "on", "off"), default="auto")
    ap.add_argument("--workers", type=int, default=4, help="notebook DataLoader workers")
    ap.add_argument("--json", type=Path, help="also write the results here")
    a = ap.parse_args()
    device = resolve_device(a.device)
    precision = resolve_precision(a.precision, device)
    compile_ = resolve_compile(None if a.compile == "auto" else a.compile == "on", device)
    data = load_cifar10(a.data_dir)
    nb_s, nb_n = notebook_loop(data, a.width, device, a.batches, a.warmup, a.workers)
    our_s, our_n, one_time = ours(data, a.width, device, precision, compile_, a.batches,
                                  a.warmup)
    nb_ips, our_ips = nb_n / nb_s, our_n / our_s
    res = {
        "device": device_name(device), "width": a.width,
        "window": "full epoch" if a.batches == 0 else f"{a.batches} batches of 128",
        "notebook_images_per_s": nb_ips, "ours_images_per_s": our_ips,
        "ratio": our_ips / nb_ips, "ours_precision": precision, "ours_compile": compile_,
        "ours_one_time_s": one_time, "notebook_precision": "fp32",
        "torch": torch.__version__, "python": platform.python_version(),
        "numpy": np.__version__, "cuda": torch.version.cuda,
    }
    print(f"device {res['device']} | torch {torch.__version__} | width {a.width} | "
          f"window {res['window']}")
    print(f"notebook loop (fp32, DataLoader x{a.workers}): {nb_ips:10.1f} images/s")
    print(f"hw0 trainer ({precision}, compile={'on' if compile_ else 'off'}):"
          f"{'':>8}{our_ips:10.1f} images/s  (one-time warm-up {one_time:.1f} s)")
    print(f"ratio ours / notebook: {res['ratio']:.2f}x")
    if a.json:
        a.json.write_text(json.dumps(res, indent=1))


if __name__ == "__main__":
    main()
