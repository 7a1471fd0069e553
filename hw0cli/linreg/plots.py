"""Problem 3's figures from a linreg run's summary and arrays: the spectrum, gradient descent
and SGD, random features, the kernels (PNG, written with `hw0cli.plots.save`)."""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import matplotlib.ticker
import numpy as np

from hw0cli.linreg.summary import LinregSummary
from hw0cli.plots import save


def linreg_plots(summary: LinregSummary, arrays: dict[str, np.ndarray], folder: Path,
                 rid: str) -> list[Path]:
    """Spectrum, GD/SGD curves, random-features and kernel sweeps, whichever exist."""
    figures = [("spectrum", _spectrum_figure), ("gd_sgd", _gd_sgd_figure),
               ("random_features", _random_features_figure), ("kernel", _kernel_figure)]
    out = []
    for name, draw in figures:
        fig = draw(summary, arrays)
        if fig is not None:
            out.append(save(fig, folder / f"linreg_{rid}_{name}.png"))
    return out


def _spectrum_figure(summary: LinregSummary, arrays: dict[str, np.ndarray]) -> plt.Figure | None:
    s = arrays.get("singular_values")
    if s is None:
        return None
    fig, ax = plt.subplots(figsize=(6, 4))
    sp = summary.spectrum
    index = np.arange(1, len(s) + 1)
    kept = s > sp.tol
    ax.semilogy(index[kept], s[kept], ".", ms=3, label="singular values of X")
    low = float(s[kept].min()) / 3 if kept.any() else sp.tol / 3
    zeros = int((~kept).sum())
    if zeros:  # numerically zero: drawn on the axis's floor, not at 1e-15
        ax.semilogy(index[~kept], np.full(zeros, low), "v", ms=3, color="gray",
                    label=f"{zeros} below the tolerance (numerically 0)")
    if sp.tol >= low / 10:
        ax.axhline(sp.tol, color="r", ls="--", label=f"rank tolerance {sp.tol:.2g}")
        low = min(low, sp.tol / 3)
    else:  # far below the data: a line there would squash the spectrum into the top
        ax.plot([], [], " ", label=f"rank tolerance {sp.tol:.2g} (far below: not drawn)")
    ax.set_ylim(low / 1.5, float(s.max()) * 3)
    ax.set_xlabel("index i")
    ax.set_ylabel("sigma_i (log scale)")
    ax.set_title(f"Spectrum of X (n={summary.n}): rank {sp.rank}, cond {sp.cond_X:.3g}")
    ax.legend()
    ax.grid(alpha=0.3)
    return fig


def _gd_sgd_figure(summary: LinregSummary, arrays: dict[str, np.ndarray]) -> plt.Figure | None:
    curves = [m for m in ("gd", "sgd") if f"curves/{m}/iter" in arrays]
    if not curves:
        return None
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for m in curves:
        it = arrays[f"curves/{m}/iter"] + 1
        axes[0].loglog(it, arrays[f"curves/{m}/train_mse"], label=f"{m.upper()} train")
        axes[0].loglog(it, arrays[f"curves/{m}/test_mse"], "--", label=f"{m.upper()} test")
        axes[1].semilogx(it, arrays[f"curves/{m}/dist_pinv"], label=f"{m.upper()}")
    if summary.min_norm is not None:
        axes[0].axhline(summary.min_norm["pinv"].test_mse, color="k", ls=":",
                        label="min-norm solution, test")
    for ax, ylabel, title in ((axes[0], "mean squared error", "Train and test MSE"),
                              (axes[1], "||b_t - b_pinv||",
                               "Distance to the minimum-norm solution")):
        ax.set_xlabel("iteration + 1")
        ax.set_ylabel(ylabel)
        ax.set_title(title)
        ax.legend(fontsize=8)
        ax.grid(alpha=0.3, which="both")
    return fig


def _random_features_figure(summary: LinregSummary, arrays: dict[str, np.ndarray]
                            ) -> plt.Figure | None:
    kinds = [k for k in ("rff", "relu") if f"sweeps/rf_{k}/D" in arrays]
    if not kinds:
        return None
    fig, ax = plt.subplots(figsize=(6, 4))
    for k in kinds:
        ax.loglog(arrays[f"sweeps/rf_{k}/D"], arrays[f"sweeps/rf_{k}/test_mse"], "o-",
                  ms=3, label={"rff": "random Fourier (Gaussian)", "relu": "ReLU"}[k])
    ax.axvline(summary.n, color="k", ls=":", label=f"D = n = {summary.n}")
    ax.set_xlabel("number of random features D")
    ax.set_ylabel("test MSE (log scale)")
    ax.set_title("Random features: test error vs D")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3, which="both")
    return fig


def _kernel_figure(summary: LinregSummary, arrays: dict[str, np.ndarray]) -> plt.Figure | None:
    if "sweeps/kernel/bandwidth" not in arrays:
        return None
    fig, ax = plt.subplots(figsize=(6, 4))
    bws = arrays["sweeps/kernel/bandwidth"]
    ax.semilogx(bws, arrays["sweeps/kernel/test_mse"], "o-")
    ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    ax.set_xticks(bws, [f"{b:.3g}" for b in bws])
    if summary.median_bandwidth is not None:
        ax.axvline(summary.median_bandwidth, color="k", ls=":", label="median heuristic")
        ax.legend(fontsize=8)
    ax.set_xlabel("bandwidth sigma (pixel-space distance)")
    ax.set_ylabel("test MSE")
    ax.set_title("Exact Gaussian kernel regression")
    ax.grid(alpha=0.3, which="both")
    return fig
