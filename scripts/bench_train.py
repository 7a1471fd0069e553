#!/usr/bin/env python3
"""Benchmark: our trainer vs a faithful copy of the course notebook's training loop.

Both run in this process, on the same device, data (CIFAR-10 from --data-dir), model (Myrtle5
of --width) and recipe (SGD lr 0.1, batch 128, cross-entropy). The notebook loop: float32
tensors in a TensorDataset, DataLoader(shuffle=True, num_workers=4), NCHW fp32, `loss.item()`
and an accuracy count every step. Ours: `hw0cli.train.Trainer` with the precision and compile
mode `hw0 train` would use (measured by the probe when `auto`). Timing window: --batches steps
after --warmup steps, or (--batches 0) --epochs full epochs; --repeats windows of each,
interleaved, compared by their medians; on CUDA the windows are timed with CUDA events. Prints
images/s of each and the ratio, with device, precision and versions; the compute ceiling (FLOPs
per training image against this device's measured matmul rate in the precision ours trains in);
on CUDA also the share of our window the GPU was busy (torch profiler: kernel time / wall).
--variants times other executions of our trainer in the same interleaved windows (e.g.
`fp32/reduce-overhead,bf16/default,bf16/eager`), each with its one-time cost: the evidence
behind the CUDA rule of `--precision auto --compile-mode auto`.

    python scripts/bench_train.py --data-dir data --width 64 --batches 50
    python scripts/bench_train.py --data-dir data --width 4 --batches 0 --repeats 3  # epochs
    python scripts/bench_train.py --data-dir data --width 64 --batches 0 --epochs 2  # on a GPU
    python scripts/bench_train.py --data-dir data --batches 0 --variants bf16/default,fp32/eager
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from hw0cli.data import load_cifar10
from hw0cli.env import device_name, matmul_peak_gflops, resolve_device, setup_compile_cache
from hw0cli.models import flops_per_image, make_cnn
from hw0cli.train import Trainer, choose_execution, make_config

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def notebook_loop(data, width: int, device: torch.device, batches: int, warmup: int,
                  workers: int, epochs: int = 1) -> tuple[float, int]:
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
    total = epochs * len(dl) if batches == 0 else warmup + batches
    net_loss, n_correct, n_total, n_timed = 0.0, 0, 0, 0
    t0 = None
    batches_iter = (b for _ in range(epochs if batches == 0 else 1) for b in dl)
    for i, (xb, yb) in enumerate(batches_iter):
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


def timed(device: torch.device, fn: Callable[[], int]) -> tuple[float, int]:
    """(seconds, images) of fn(), timed by CUDA events on a GPU, else by the host clock."""
    if device.type == "cuda":
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        n = fn()
        end.record()
        end.synchronize()
        return start.elapsed_time(end) / 1000.0, n
    t = time.perf_counter()
    n = fn()
    return time.perf_counter() - t, n


def gpu_busy_share(fn: Callable[[], int]) -> float:
    """Share of fn()'s wall time the GPU spent running kernels (torch profiler)."""
    from torch.autograd import DeviceType
    from torch.profiler import ProfilerActivity, profile
    torch.cuda.synchronize()
    with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
        t = time.perf_counter()
        fn()
        torch.cuda.synchronize()
        wall_us = (time.perf_counter() - t) * 1e6
    # kernels and copies only: a CPU op's row repeats the device time of what it launched
    busy_us = sum(e.self_device_time_total for e in prof.key_averages()
                  if e.device_type == DeviceType.CUDA)
    return busy_us / wall_us


class Ours:
    """Our trainer, built and warmed up once (compile, autotuning: the one-time cost)."""

    def __init__(self, data, width: int, device: torch.device, precision: str, compile_: str,
                 batches: int, warmup: int, epochs: int, mode: str = "auto") -> None:
        cfg = make_config("notebook", width=width, device=device.type, precision=precision,
                          compile=None if compile_ == "auto" else compile_ == "on",
                          compile_mode=mode, train_samples=len(data.train_y))
        self.execution = choose_execution(cfg, device)
        self.batches, self.epochs, self.epoch = batches, epochs, 1
        t = time.perf_counter()
        self.tr = Trainer(cfg, data, device, self.execution.precision,
                          self.execution.compile_mode)
        # warm-up (a separate epoch draw: same work per step) covering every shape the timed
        # window will see: a full-epoch window ends with a partial batch, which has a graph of
        # its own; that belongs to the one-time cost, not the steady state
        if batches == 0:
            self.tr.train_epoch(self.epoch)
        elif warmup:
            self.tr.train_epoch(self.epoch, max_steps=warmup)
        sync(device)
        self.one_time = time.perf_counter() - t

    def run(self) -> int:
        images = 0
        for _ in range(self.epochs if self.batches == 0 else 1):
            self.epoch += 1
            r = self.tr.train_epoch(self.epoch,
                                    max_steps=None if self.batches == 0 else self.batches)
            images += r["images"]
        return images


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data-dir", type=Path, default=Path("data"))
    ap.add_argument("--width", type=int, default=64)
    ap.add_argument("--batches", type=int, default=50, help="timed steps; 0 = full epochs")
    ap.add_argument("--epochs", type=int, default=1, help="full epochs per window (--batches 0)")
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--precision", default="auto")
    ap.add_argument("--compile", choices=("auto", "on", "off"), default="auto")
    ap.add_argument("--workers", type=int, default=4, help="notebook DataLoader workers")
    ap.add_argument("--repeats", type=int, default=1,
                    help="timed windows of each, interleaved; the medians are compared")
    ap.add_argument("--variants", default="",
                    help="other executions of ours, comma-separated PRECISION/MODE (MODE: "
                    "default, reduce-overhead, max-autotune or eager)")
    ap.add_argument("--json", type=Path, help="also write the results here")
    a = ap.parse_args()
    specs = [check_variant(v) for v in a.variants.split(",") if v]
    setup_compile_cache()
    device = resolve_device(a.device)
    data = load_cifar10(a.data_dir)
    ours = Ours(data, a.width, device, a.precision, a.compile, a.batches, a.warmup, a.epochs)
    precision, mode = ours.execution.precision, ours.execution.compile_mode
    variants = {v: variant(data, a, device, v) for v in specs}
    nb_all, our_all = [], []
    var_all: dict[str, list[float]] = {v: [] for v in variants}
    for _ in range(a.repeats):  # interleaved, so a slow spell of the machine hits both
        s, n = notebook_loop(data, a.width, device, a.batches, a.warmup, a.workers, a.epochs)
        nb_all.append(n / s)
        s, n = timed(device, ours.run)
        our_all.append(n / s)
        for v, o in variants.items():
            s, n = timed(device, o.run)
            var_all[v].append(n / s)
    busy = gpu_busy_share(ours.run) if device.type == "cuda" else None
    report(a, device, ours, nb_all, our_all, busy, precision, mode,
           {v: (float(np.median(var_all[v])), o.one_time) for v, o in variants.items()})


def check_variant(spec: str) -> str:
    modes = ("default", "reduce-overhead", "max-autotune", "eager")
    precision, _, mode = spec.partition("/")
    if precision not in DTYPES or mode not in modes:
        raise SystemExit(f"bench_train.py: --variants takes PRECISION/MODE items (precision "
                         f"{', '.join(DTYPES)}; mode {', '.join(modes)}); got '{spec}'")
    return spec


def variant(data, a, device: torch.device, spec: str) -> Ours:
    """Our trainer in the execution PRECISION/MODE (MODE eager: not compiled)."""
    precision, _, mode = check_variant(spec).partition("/")
    eager = mode == "eager"
    return Ours(data, a.width, device, precision, "off" if eager else "on", a.batches,
                a.warmup, a.epochs, "default" if eager else mode)


def report(a, device: torch.device, ours: Ours, nb_all: list[float], our_all: list[float],
           busy: float | None, precision: str, mode: str | None,
           variants: dict[str, tuple[float, float]]) -> None:
    nb_ips, our_ips = float(np.median(nb_all)), float(np.median(our_all))
    # the compute budget: conv/linear FLOPs per training image against this device's own
    # measured matmul rate in the precision ours trains in (the best conv kernels reach about
    # that rate, not more)
    step_flops = flops_per_image(a.width, train=True)
    peak = matmul_peak_gflops(device, DTYPES[precision])
    window = (f"{a.epochs} full epoch(s)" if a.batches == 0 else f"{a.batches} batches of 128")
    res = {
        "device": device_name(device), "width": a.width, "window": window,
        "repeats": a.repeats, "notebook_images_per_s": nb_ips, "ours_images_per_s": our_ips,
        "notebook_all": nb_all, "ours_all": our_all,
        "ratio": our_ips / nb_ips, "ours_precision": precision, "ours_compile_mode": mode,
        "ours_probe": ours.execution.probe, "ours_one_time_s": ours.one_time,
        "ours_whole_step_graph": ours.tr.fullgraph, "notebook_precision": "fp32",
        "gpu_busy_share": busy, "train_gflop_per_image": step_flops / 1e9,
        "matmul_peak_gflops": peak, "matmul_precision": precision,
        "ceiling_images_per_s": peak * 1e9 / step_flops,
        "variants": {v: {"images_per_s": ips, "one_time_s": ot, "ratio": ips / nb_ips}
                     for v, (ips, ot) in variants.items()},
        "torch": torch.__version__, "python": platform.python_version(),
        "numpy": np.__version__, "cuda": torch.version.cuda,
    }

    def gf(ips: float) -> str:
        return f"{ips * step_flops / 1e9:9.1f} GFLOP/s"

    many = f" (median of {a.repeats} interleaved windows)" if a.repeats > 1 else ""
    print(f"device {res['device']} | torch {torch.__version__} | width {a.width} | "
          f"window {window}{many}")
    print(f"notebook loop (fp32, DataLoader x{a.workers}): {nb_ips:10.1f} images/s  "
          f"{gf(nb_ips)}")
    print(f"hw0 trainer ({precision}, {mode or 'eager'}):{'':>11}{our_ips:10.1f} images/s  "
          f"{gf(our_ips)}  (one-time warm-up {ours.one_time:.1f} s)")
    for v, (ips, ot) in variants.items():
        print(f"  variant {v:<24}{ips:10.1f} images/s  {gf(ips)}  ({ips / nb_ips:.2f}x the "
              f"notebook; one-time warm-up {ot:.1f} s)")
    if ours.execution.probe:
        print(f"  chosen by the probe: {ours.execution.probe['images_per_s']}")
    if a.repeats > 1:
        print("  each window: notebook " + ", ".join(f"{v:.0f}" for v in nb_all)
              + " | ours " + ", ".join(f"{v:.0f}" for v in our_all))
    print(f"ratio ours / notebook: {res['ratio']:.2f}x")
    if busy is not None:
        print(f"GPU busy during our window: {busy:.0%} (kernel time / wall time)")
    ceiling = res["ceiling_images_per_s"]
    print(f"compute ceiling: {step_flops / 1e9:.3f} GFLOP per training image; {precision} "
          f"matmul here runs at {peak:,.0f} GFLOP/s, i.e. ~{ceiling:,.0f} images/s if every "
          f"FLOP ran at that rate (ours: {our_ips / ceiling:.0%} of it)")
    if a.json:
        a.json.write_text(json.dumps(res, indent=1, default=str))


if __name__ == "__main__":
    main()
