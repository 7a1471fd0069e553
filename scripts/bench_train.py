#!/usr/bin/env python3
"""Benchmark: our trainer vs a faithful copy of the course notebook's training loop.

Both run in this process, on the same device, data (CIFAR-10 from --data-dir), model (Myrtle5
of --width) and recipe (SGD lr 0.1, batch 128, cross-entropy). The notebook loop: float32
tensors in a TensorDataset, DataLoader(shuffle=True, num_workers=4), NCHW fp32, `loss.item()`
and an accuracy count every step. Ours: `hw0cli.train.Trainer` with --precision/--compile as
given (default: what `hw0 train` would pick). Timing window: --batches steps after --warmup
steps (0 = a full epoch); --repeats windows of each, interleaved, compared by their medians.
Prints images/s of each and the ratio, with device, precision and versions, and the compute
ceiling: FLOPs per training image against this device's measured fp32 matmul rate.

    python scripts/bench_train.py --data-dir data --width 64 --batches 50
    python scripts/bench_train.py --data-dir data --width 4 --batches 0 --repeats 3  # epochs
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
    matmul_peak_gflops,
    resolve_compile,
    resolve_device,
    resolve_precision,
)
from hw0cli.models import flops_per_image, make_cnn
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


class Ours:
    """Our trainer, built and warmed up once (compile, autotuning: the one-time cost)."""

    def __init__(self, data, width: int, device: torch.device, precision: str, compile_: bool,
                 batches: int, warmup: int) -> None:
        cfg = make_config("notebook", width=width, device=device.type, precision=precision,
                          compile=compile_, train_samples=len(data.train_y))
        self.batches, self.epoch = batches, 1
        t = time.perf_counter()
        self.tr = Trainer(cfg, data, device, precision, compile_)
        # warm-up (a separate epoch draw: same work per step) covering every shape the timed
        # window will see: a full-epoch window ends with a partial batch, which torch.compile
        # (static shapes) compiles once; that belongs to the one-time cost, not the steady state
        if batches == 0:
            self.tr.train_epoch(self.epoch)
        elif warmup:
            self.tr.train_epoch(self.epoch, max_steps=warmup)
        sync(device)
        self.one_time = time.perf_counter() - t

    def window(self) -> tuple[float, int]:
        self.epoch += 1
        r = self.tr.train_epoch(self.epoch,
                                max_steps=None if self.batches == 0 else self.batches)
        return r["seconds"], r["images"]


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
    ap.add_argument("--repeats", type=int, default=1,
                    help="timed windows of each, interleaved; the medians are compared")
    ap.add_argument("--json", type=Path, help="also write the results here")
    a = ap.parse_args()
    device = resolve_device(a.device)
    precision = resolve_precision(a.precision, device)
    compile_ = resolve_compile(None if a.compile == "auto" else a.compile == "on", device)
    data = load_cifar10(a.data_dir)
    ours = Ours(data, a.width, device, precision, compile_, a.batches, a.warmup)
    nb_all, our_all = [], []
    for _ in range(a.repeats):  # interleaved, so a slow spell of the machine hits both
        s, n = notebook_loop(data, a.width, device, a.batches, a.warmup, a.workers)
        nb_all.append(n / s)
        s, n = ours.window()
        our_all.append(n / s)
    nb_ips, our_ips = float(np.median(nb_all)), float(np.median(our_all))
    # the compute budget: conv/linear FLOPs per training image against this device's own
    # measured fp32 matmul rate (the rate the best conv kernels reach, not more)
    step_flops = flops_per_image(a.width, train=True)
    peak = matmul_peak_gflops(device)
    res = {
        "device": device_name(device), "width": a.width,
        "window": "full epoch" if a.batches == 0 else f"{a.batches} batches of 128",
        "repeats": a.repeats, "notebook_images_per_s": nb_ips, "ours_images_per_s": our_ips,
        "notebook_all": nb_all, "ours_all": our_all,
        "ratio": our_ips / nb_ips, "ours_precision": precision, "ours_compile": compile_,
        "ours_one_time_s": ours.one_time, "notebook_precision": "fp32",
        "train_gflop_per_image": step_flops / 1e9, "fp32_matmul_peak_gflops": peak,
        "ceiling_images_per_s": peak * 1e9 / step_flops,
        "torch": torch.__version__, "python": platform.python_version(),
        "numpy": np.__version__, "cuda": torch.version.cuda,
    }

    def gf(ips: float) -> str:
        return f"{ips * step_flops / 1e9:7.1f} GFLOP/s"

    many = f" (median of {a.repeats} interleaved windows)" if a.repeats > 1 else ""
    print(f"device {res['device']} | torch {torch.__version__} | width {a.width} | "
          f"window {res['window']}{many}")
    print(f"notebook loop (fp32, DataLoader x{a.workers}): {nb_ips:10.1f} images/s  "
          f"{gf(nb_ips)}")
    print(f"hw0 trainer ({precision}, compile={'on' if compile_ else 'off'}):"
          f"{'':>8}{our_ips:10.1f} images/s  {gf(our_ips)}  (one-time warm-up "
          f"{ours.one_time:.1f} s)")
    if a.repeats > 1:
        print("  each window: notebook " + ", ".join(f"{v:.0f}" for v in nb_all)
              + " | ours " + ", ".join(f"{v:.0f}" for v in our_all))
    print(f"ratio ours / notebook: {res['ratio']:.2f}x")
    ceiling = res["ceiling_images_per_s"]
    print(f"compute ceiling: {step_flops / 1e9:.3f} GFLOP per training image; fp32 matmul here "
          f"runs at {peak:.0f} GFLOP/s, i.e. ~{ceiling:.0f} images/s if every FLOP ran at that "
          f"rate (ours: {our_ips / ceiling:.0%} of it); 2x the notebook would need "
          f"{2 * nb_ips * step_flops / 1e9:.0f} GFLOP/s")
    if a.json:
        a.json.write_text(json.dumps(res, indent=1))

if __name__ == "__main__":
    main()
