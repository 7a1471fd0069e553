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
from hw0cli.quantities import LABELS, tta_label


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


def training_curves(history: dict[str, np.ndarray], path: Path, title: str,
                    tta_shift: int = 0) -> Path:
    """Train (running) and test error (%) per epoch; test points only where evaluated; the TTA
    error where measured, labelled with its views (`tta_shift`: the run's --tta-shift)."""
    fig, ax = plt.subplots(figsize=(6.5, 4))
    ep = history["epoch"]
    ax.plot(ep, 100 * history["train_err"], "o-", ms=3, label=LABELS["train_err"])
    ok = ~np.isnan(history["test_err"])
    ax.plot(ep[ok], 100 * history["test_err"][ok], "s-", ms=3, label=LABELS["test_err"])
    tta = history.get("test_err_tta")
    if tta is not None and (~np.isnan(tta)).any():
        ok = ~np.isnan(tta)
        ax.plot(ep[ok], 100 * tta[ok], "^--", ms=3, label=tta_label(tta_shift))
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
