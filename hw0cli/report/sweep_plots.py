"""A sweep's figures: errors against each axis, learning curves per setting, a heat map of two
axes. Diverged cells are marked, never dropped silently."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.ticker import MaxNLocator

from hw0cli.batch.sweep import value_label
from hw0cli.plots import plt, save


def all_plots(summary: Any, stem: Path) -> list[Path]:
    """Every figure that applies: `<stem>_axes.png`, `<stem>_curves.png` and, with exactly
    two axes varied together, `<stem>_heatmap.png`."""
    out = [axis_errors(summary, Path(f"{stem}_axes.png")),
           learning_curves(summary, Path(f"{stem}_curves.png"))]
    if len(summary.axes) == 2 and summary.product:
        out.append(heatmap(summary, Path(f"{stem}_heatmap.png")))
    return out


def axis_errors(summary: Any, path: Path) -> Path:
    """One panel per axis: mean final error (+- std over seeds) at each value, one colour per
    value of the split axis; a red x above a value where cells diverged."""
    axes_names = [a for a in summary.axes if summary.levels.get(a)] or summary.axes[:1]
    fig, axs = plt.subplots(1, len(axes_names), figsize=(4.2 * len(axes_names), 3.6),
                            squeeze=False, sharey=True)
    for ax, name in zip(axs[0], axes_names, strict=True):
        levels = summary.levels.get(name, [])
        values = list(dict.fromkeys(lv.value for lv in levels))
        for k, sp in enumerate(dict.fromkeys(lv.split for lv in levels)):
            group = [lv for lv in levels if lv.split == sp]
            x = [values.index(lv.value) + 0.06 * k for lv in group]
            label = "" if sp is None else f"{summary.split.replace('_', ' ')} " \
                                          f"{value_label(sp)}: "
            for key, style, what in (("train", "--o", "full-train err"),
                                     ("test", "-s", "test err")):
                m = [100 * getattr(lv, key)[0] for lv in group]
                s = [100 * getattr(lv, key)[1] for lv in group]
                ax.errorbar(x, m, yerr=s, fmt=style, color=f"C{k}", capsize=3, ms=4,
                            label=f"{label}{what}")
            for xi, lv in zip(x, group, strict=True):
                if lv.diverged:
                    ax.plot([xi], [100], "x", color="red", ms=9, mew=2)
                    ax.annotate(f"{lv.diverged}/{lv.total}", (xi, 100), fontsize=7,
                                color="red", xytext=(3, -10), textcoords="offset points")
        ax.set_xticks(range(len(values)), [value_label(v) for v in values])
        ax.set_xlabel(name.replace("_", " "))
        ax.set_ylim(-3, 106)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=6)
    axs[0][0].set_ylabel("final error (%)")
    fig.suptitle(f"Sweep {summary.name}: final errors (red x: diverged)", fontsize=10)
    fig.tight_layout()
    return save(fig, path)


def _label(point: tuple) -> str:
    return ", ".join(f"{k.replace('_', ' ')} {value_label(v)}" for k, v in point)


def learning_curves(summary: Any, path: Path) -> Path:
    """Test error per epoch (mean over seeds) of each setting; one panel per split value."""
    split = summary.split
    panels = list(dict.fromkeys(dict(s.point)[split] for s in summary.settings)) if split \
        else [None]
    fig, axs = plt.subplots(1, len(panels), figsize=(5.2 * len(panels), 3.8), squeeze=False,
                            sharey=True)
    for ax, sp in zip(axs[0], panels, strict=True):
        members = [s for s in summary.settings if sp is None or dict(s.point)[split] == sp]
        for k, s in enumerate(members):
            _setting_curve(ax, s, f"C{k % 10}", _label(tuple(p for p in s.point
                                                             if p[0] != split)))
        title = "" if sp is None else f"{split.replace('_', ' ')} {value_label(sp)}"
        ax.set_title(title, fontsize=9)
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
        if len(members) <= 16 and ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=6)
    axs[0][0].set_ylabel("test error (%)")
    fig.tight_layout()
    return save(fig, path)


def _setting_curve(ax: Any, s: Any, color: str, label: str) -> None:
    curves = [c.history for c in s.cells if len(c.history.get("epoch", []))]
    if not curves:
        return
    n = max(len(h["epoch"]) for h in curves)
    test = np.full((len(curves), n), np.nan)
    for i, h in enumerate(curves):
        test[i, :len(h["test_err"])] = h["test_err"]
    with np.errstate(all="ignore"):
        mean = np.nanmean(test, axis=0) if np.isfinite(test).any() else test[0]
    ep = np.arange(1, n + 1)
    ok = np.isfinite(mean)
    style = ":" if s.diverged else "-"
    ax.plot(ep[ok], 100 * mean[ok], style, marker="o", ms=3, color=color, label=label)
    if s.diverged:
        last = ep[ok][-1] if ok.any() else 1
        ax.plot([last], [100 * mean[ok][-1] if ok.any() else 100], "x", color="red", ms=9,
                mew=2)


def heatmap(summary: Any, path: Path) -> Path:
    """Mean final test error for every pair of values of the two axes; 'div k/n' where cells
    diverged, '-' where none finished."""
    a, b = summary.axes
    va = list(dict.fromkeys(dict(s.point)[a] for s in summary.settings))
    vb = list(dict.fromkeys(dict(s.point)[b] for s in summary.settings))
    grid = np.full((len(va), len(vb)), np.nan)
    text = [["-"] * len(vb) for _ in va]
    for s in summary.settings:
        i, j = va.index(dict(s.point)[a]), vb.index(dict(s.point)[b])
        m = s.stat("test_err")[0]
        grid[i, j] = m
        parts = [] if math.isnan(m) else [f"{100 * m:.1f}%"]
        if s.diverged:
            parts.append(f"div {s.diverged}/{len(s.cells)}")
        text[i][j] = "\n".join(parts) or "-"
    fig, ax = plt.subplots(figsize=(1.6 * len(vb) + 2.5, 1.1 * len(va) + 1.8))
    im = ax.imshow(100 * grid, cmap="viridis_r", vmin=0, vmax=100, aspect="auto")
    for i in range(len(va)):
        for j in range(len(vb)):
            dark = math.isnan(grid[i, j]) or grid[i, j] > 0.5  # the colour map's dark half
            ax.text(j, i, text[i][j], ha="center", va="center", fontsize=8,
                    color="red" if "div" in text[i][j] else "white" if dark else "black")
    ax.set_xticks(range(len(vb)), [value_label(v) for v in vb])
    ax.set_yticks(range(len(va)), [value_label(v) for v in va])
    ax.set_xlabel(b.replace("_", " "))
    ax.set_ylabel(a.replace("_", " "))
    fig.colorbar(im, ax=ax, label="mean final test error (%)")
    ax.set_title(f"Sweep {summary.name}: test error", fontsize=10)
    fig.tight_layout()
    return save(fig, path)
