#!/usr/bin/env python3
"""Recompute the figures of an `hw0 linreg` result file independently (numpy + h5py only).

Reads the stored sample indices and the MNIST IDX files, rebuilds X and Y, and checks: the
rank and condition number, the pinv test MSE, every logged GD train-MSE point (by running plain
GD), and the Gaussian-kernel test MSE at the median bandwidth. Prints each pair and exits 1 on
a mismatch. Shares no code with hw0cli.

    python scripts/verify_linreg.py artifacts/linreg/all-n500-s0-*.h5 --mnist data/MNIST/raw
"""

import argparse
import gzip
import json
import sys
from pathlib import Path

import h5py
import numpy as np


def idx(path: Path) -> np.ndarray:
    raw = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    ndim = raw[3]
    dims = np.frombuffer(raw[4:4 + 4 * ndim], dtype=">u4")
    return np.frombuffer(raw, np.uint8, offset=4 + 4 * ndim).reshape(dims)


def find(folder: Path, stem: str) -> Path:
    for name in (stem, stem + ".gz"):
        if (folder / name).exists():
            return folder / name
    sys.exit(f"{stem} not found in {folder}")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("result", type=Path)
    ap.add_argument("--mnist", type=Path, default=Path("data/MNIST/raw"))
    a = ap.parse_args()
    f = h5py.File(a.result, "r")
    summary = json.loads(f.attrs["summary"])
    ind = f["indices"][()]
    xtr = idx(find(a.mnist, "train-images-idx3-ubyte")).reshape(60000, -1) / 255.0
    ytr = idx(find(a.mnist, "train-labels-idx1-ubyte"))
    x, y = xtr[ind], np.where(ytr[ind] % 2 == 1, 1.0, -1.0)
    xt = idx(find(a.mnist, "t10k-images-idx3-ubyte")).reshape(10000, -1) / 255.0
    yt = np.where(idx(find(a.mnist, "t10k-labels-idx1-ubyte")) % 2 == 1, 1.0, -1.0)
    ok = True

    def check(name: str, ours: float, ref: float, rtol: float) -> None:
        nonlocal ok
        good = abs(ours - ref) <= rtol * abs(ref)
        ok &= good
        print(f"{'ok  ' if good else 'FAIL'} {name}: stored {ours:.10g}, recomputed {ref:.10g}")

    s = np.linalg.svd(x, compute_uv=False)
    check("rank", summary["spectrum"]["rank"], np.linalg.matrix_rank(x), 0)
    r = np.linalg.matrix_rank(x)
    check("cond(X)", summary["spectrum"]["cond_X"], s[0] / s[r - 1], 1e-8)
    b = np.linalg.pinv(x) @ y
    check("pinv test MSE", summary["min_norm"]["pinv"]["test_mse"], np.mean((xt @ b - yt) ** 2),
          1e-8)
    if "gd" in summary:
        step = summary["gd"]["step"]
        its = f["curves/gd/iter"][()]
        want = dict(zip(its.tolist(), f["curves/gd/train_mse"][()].tolist(), strict=True))
        bb = np.zeros(x.shape[1])
        worst = 0.0
        for t in range(1, int(its[-1]) + 1):
            bb -= step * 2 * x.T @ (x @ bb - y)
            if t in want:
                ref = np.mean((x @ bb - y) ** 2)
                worst = max(worst, abs(want[t] - ref) / ref)
        good = worst <= 1e-9
        ok &= good
        print(f"{'ok  ' if good else 'FAIL'} GD train MSE at {len(want) - 1} logged iterations: "
              f"worst relative difference {worst:.2e}")
    if "median_test_mse" in summary.get("kernel", {}):
        sq = (x ** 2).sum(1)
        d2 = np.maximum(sq[:, None] + sq[None] - 2 * x @ x.T, 0)
        med = np.median(np.sqrt(d2[np.triu_indices(len(x), 1)]))
        k = np.exp(-d2 / (2 * med ** 2))
        d2t = np.maximum((xt ** 2).sum(1)[:, None] + sq[None] - 2 * xt @ x.T, 0)
        pred = np.exp(-d2t / (2 * med ** 2)) @ np.linalg.solve(
            k + summary["kernel"]["ridge"] * np.eye(len(x)), y)
        check("Gaussian kernel test MSE at the median bandwidth",
              summary["kernel"]["median_test_mse"], np.mean((pred - yt) ** 2), 1e-6)
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
