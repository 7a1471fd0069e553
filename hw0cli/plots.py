"""Matplotlib figures (PNG, Agg backend: no display needed). Each returns the path written."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np


def save(fig: plt.Figure, path: Path) -> Path:
    """Write atomically (temp file, then rename) and close the figure."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.tmp{os.getpid()}{path.suffix}")
    fig.savefig(tmp, dpi=130, bbox_inches="tight")
    plt.close(fig)
    os.replace(tmp, path)
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
