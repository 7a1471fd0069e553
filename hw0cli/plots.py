"""Matplotlib figures (PNG, Agg backend: no display needed). Each returns the path written."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib
import matplotlib.ticker

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from hw0cli.atomic import atomic_path
from hw0cli.linreg import LinregSummary
from hw0cli.quantities import LABELS


def save(fig: plt.Figure, path: Path) -> Path:
    """Write atomically (temp file, then rename) and close the figure."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        with atomic_path(path, keep_suffix=True) as tmp:
            fig.savefig(tmp, dpi=130, bbox_inches="tight")
    finally:
        plt.close(fig)
    return path


def per_class_views(classes: Sequence[str], views: dict[str, np.ndarray], path: Path,
                    title: str) -> Path:
    """Grouped bars: per-class test accuracy (%) for each view (original, vflip, ...)."""
    fig, ax = plt.subplots(figsize=(9, 4))
    k = len(views)
    width = 0.8 / k
    xs = np.arange(len(classes))
    for i, (name, acc) in enumerate(views.items()):
        ax.bar(xs + (i - (k - 1) / 2) * width, 100 * np.asarray(acc), width, label=name)
    ax.set_xticks(xs, classes, rotation=30, ha="right")
    ax.set_ylabel("test accuracy (%)")
    ax.set_ylim(0, 100)
    ax.set_title(title)
    ax.legend(title="view")
    ax.grid(axis="y", alpha=0.3)
    return save(fig, path)


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


def grid_error_vs_noise(rows: list, path: Path) -> Path:
    """Final train and test error (%) vs label-noise p, one colour per width; mean +- std."""
    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    widths = sorted({r.width for r in rows})
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for k, w in enumerate(widths):
        rs = sorted((r for r in rows if r.width == w and r.seeds), key=lambda r: r.noise)
        if not rs:
            continue
        p = [r.noise for r in rs]
        for key, style, label in (("train_err", "--o", LABELS["train_eval_err"]),
                                  ("test_err", "-s", LABELS["test_err"])):
            m = [100 * r.stat(key)[0] for r in rs]
            s = [100 * r.stat(key)[1] for r in rs]
            ax.errorbar(p, m, yerr=s, fmt=style, color=colors[k % len(colors)], capsize=3,
                        label=f"c = {w}, {label}")
    ax.axhline(90, color="gray", ls=":", label="chance (90%)")
    ax.set_xlabel("label noise probability p")
    ax.set_ylabel("error (%)")
    ax.set_ylim(-3, 103)
    ax.set_title("Final full-train and test error vs label noise")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    return save(fig, path)


def grid_curves(curves: dict, path: Path) -> Path:
    """Learning curves per cell: running train error, full-train error and test error (%)."""
    widths = sorted({k[0] for k in curves})
    noises = sorted({k[1] for k in curves})
    fig, axes = plt.subplots(len(widths), len(noises), figsize=(3.6 * len(noises),
                                                                2.8 * len(widths)),
                             squeeze=False, sharey=True)
    for (w, p, seed), h in sorted(curves.items()):
        ax = axes[widths.index(w)][noises.index(p)]
        ep = h["epoch"]
        ax.plot(ep, 100 * h["train_err"], color="C0", label=LABELS["train_err"] if seed == 0
                else None)
        for key, color, label in (("train_eval_err", "C1", LABELS["train_eval_err"]),
                                  ("test_err", "C3", LABELS["test_err"])):
            ok = ~np.isnan(h[key])
            if ok.any():
                ax.plot(ep[ok], 100 * h[key][ok], "o-", ms=3, color=color,
                        label=label if seed == 0 else None)
        ax.set_title(f"c = {w}, p = {p:g}", fontsize=9)
        ax.grid(alpha=0.3)
    for ax in axes[-1]:
        ax.set_xlabel("epoch")
    for row in axes:
        row[0].set_ylabel("error (%)")
    axes[0][0].legend(fontsize=7)
    fig.tight_layout()
    return save(fig, path)


def training_curves(history: dict[str, np.ndarray], path: Path, title: str) -> Path:
    """Train (running) and test error (%) per epoch; test points only where evaluated."""
    fig, ax = plt.subplots(figsize=(6.5, 4))
    ep = history["epoch"]
    ax.plot(ep, 100 * history["train_err"], "o-", ms=3, label=LABELS["train_err"])
    ok = ~np.isnan(history["test_err"])
    ax.plot(ep[ok], 100 * history["test_err"][ok], "s-", ms=3, label=LABELS["test_err"])
    tta = history.get("test_err_tta")
    if tta is not None and (~np.isnan(tta)).any():
        ok = ~np.isnan(tta)
        ax.plot(ep[ok], 100 * tta[ok], "^--", ms=3, label=LABELS["test_err_tta"])
    ax.set_xlabel("epoch")
    ax.set_ylabel("error (%)")
    ax.set_title(title)
    ax.legend()
    ax.grid(alpha=0.3)
    return save(fig, path)


def recipe_curves(histories: dict[str, dict[str, np.ndarray]], path: Path) -> Path:
    """Test error (%) per epoch of several runs in one figure, one line per run."""
    fig, ax = plt.subplots(figsize=(6.5, 4))
    for label, h in histories.items():
        ok = ~np.isnan(h["test_err"])
        ax.plot(h["epoch"][ok], 100 * h["test_err"][ok], "o-", ms=3, label=label)
    ax.set_xlabel("epoch")
    ax.set_ylabel("test error (%)")
    ax.set_title("Recipes side by side")
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    return save(fig, path)
