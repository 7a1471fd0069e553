#!/usr/bin/env python3
"""Benchmark exact Gaussian kernel regression: hw0cli.kernels vs scikit-learn's KernelRidge.

Same MNIST sample (the linreg set-up: first n of the seeded draw, pixels/255, +-1 parity
labels), same bandwidth (median heuristic), same ridge, same device, one process. Times fit +
prediction on the 10,000 test images; peak memory is sampled from the process RSS (CPU) or
torch's allocator (GPU). Ours runs in --dtype (default float32, with jitter escalation);
sklearn in float64. Prints time, peak memory and test MSE of each, and the ratios.

    python scripts/bench_kernels.py --data-dir data --sizes 2000,5000,10000
    python scripts/bench_kernels.py --data-dir data --sizes 60000 --no-sklearn   # on a GPU
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import threading
import time
from pathlib import Path

import numpy as np
import sklearn
import torch
from sklearn.kernel_ridge import KernelRidge

from hw0cli import kernels
from hw0cli.env import device_name, resolve_device
from hw0cli.linreg import load_problem, mse, sign_accuracy


class PeakRSS:
    """Peak resident memory above the level at entry, sampled every 5 ms (Linux /proc)."""

    def __enter__(self) -> PeakRSS:
        self.base = self.peak = self._rss()
        self.stop = False
        self.t = threading.Thread(target=self._run, daemon=True)
        self.t.start()
        return self

    @staticmethod
    def _rss() -> int:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")

    def _run(self) -> None:
        while not self.stop:
            self.peak = max(self.peak, self._rss())
            time.sleep(0.005)

    def __exit__(self, *exc: object) -> None:
        self.stop = True
        self.t.join()
        self.peak = max(self.peak, self._rss())
        self.bytes = self.peak - self.base


def ours(p, bandwidth: float, ridge: float, device: torch.device, dtype: torch.dtype):
    x = torch.tensor(p.x, device=device, dtype=dtype)
    y = torch.tensor(p.y, device=device, dtype=dtype)
    xt = torch.tensor(p.x_test, device=device, dtype=dtype)
    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    with PeakRSS() as mem:
        t = time.perf_counter()
        fit = kernels.fit_kernel_regression(x, y, bandwidth, ridge)
        pred = kernels.predict_kernel_regression(fit, xt).double().cpu().numpy()
        secs = time.perf_counter() - t
    peak = torch.cuda.max_memory_allocated() if device.type == "cuda" else mem.bytes
    return secs, peak, pred, fit.info


def theirs(p, bandwidth: float, ridge: float):
    with PeakRSS() as mem:
        t = time.perf_counter()
        kr = KernelRidge(alpha=ridge, kernel="rbf", gamma=1 / (2 * bandwidth**2)).fit(p.x, p.y)
        pred = kr.predict(p.x_test)
        secs = time.perf_counter() - t
    return secs, mem.bytes, pred


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data-dir", type=Path, default=Path("data"))
    ap.add_argument("--sizes", default="2000,5000,10000")
    ap.add_argument("--ridge", type=float, default=1e-3, help="lambda, same for both")
    ap.add_argument("--dtype", choices=("float32", "float64"), default="float32")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--no-sklearn", action="store_true", help="skip the baseline (n=60,000)")
    ap.add_argument("--json", type=Path)
    a = ap.parse_args()
    device = resolve_device(a.device)
    dtype = torch.float32 if a.dtype == "float32" else torch.float64
    print(f"device {device_name(device)} | torch {torch.__version__} | scikit-learn "
          f"{sklearn.__version__} | numpy {np.__version__} | python "
          f"{platform.python_version()} | ours {a.dtype}, sklearn float64 | ridge {a.ridge}")
    rows = []
    for n in (int(s) for s in a.sizes.split(",")):
        p = load_problem(a.data_dir, n, a.seed)
        bw = kernels.median_bandwidth(torch.tensor(p.x))
        s_ours, m_ours, pred, info = ours(p, bw, a.ridge, device, dtype)
        row = {"n": n, "bandwidth": bw, "ours_s": s_ours, "ours_peak_bytes": m_ours,
               "ours_test_mse": mse(pred, p.y_test), "ours_test_acc": sign_accuracy(pred,
                                                                                   p.y_test),
               "ours_solver": f"{info.method}, jitter {info.jitter:.2g}"}
        line = (f"n={n:>6}: ours {s_ours:7.2f} s, peak {m_ours / 2**20:7.0f} MiB, test MSE "
                f"{row['ours_test_mse']:.5f}, acc {100 * row['ours_test_acc']:.2f}% "
                f"[{row['ours_solver']}]")
        if not a.no_sklearn:
            s_sk, m_sk, pred_sk = theirs(p, bw, a.ridge)
            row.update({"sklearn_s": s_sk, "sklearn_peak_bytes": m_sk,
                        "sklearn_test_mse": mse(pred_sk, p.y_test), "speedup": s_sk / s_ours,
                        "test_mse_diff": row["ours_test_mse"] - mse(pred_sk, p.y_test)})
            line += (f" | sklearn {s_sk:7.2f} s, peak {m_sk / 2**20:7.0f} MiB, test MSE "
                     f"{row['sklearn_test_mse']:.5f} | speedup {row['speedup']:.2f}x, "
                     f"MSE diff {row['test_mse_diff']:+.2e}")
        print(line, flush=True)
        rows.append(row)
    if a.json:
        a.json.write_text(json.dumps({"device": device_name(device), "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
