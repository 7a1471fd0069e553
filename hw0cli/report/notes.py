"""The report's recurring explanations: which measurement an accuracy is, what the two
training errors are, why a curve has few test points, commands without the machine's folders;
percentages (a mean +- std where a setting has several seeds), and which runs are the
grid's."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from hw0cli import runs
from hw0cli.quantities import FULL_TRAIN, TEST, TRAIN_RUNNING, label
from hw0cli.train import science_of

TEST_IMAGES = 10_000

FOLDERS = ("--data-dir", "--out")  # the machine's own paths: left to the reader's defaults


def portable(args: list[str]) -> list[str]:
    """Command-line arguments without the folders (each command takes --data-dir and --out,
    by default ./data and ./artifacts, or $HW0_DATA_DIR and $HW0_OUT)."""
    out, skip = [], False
    for a in args:
        if skip:
            skip = False
        elif a in FOLDERS:
            skip = True
        else:
            out.append(a)
    return out


ACCURACY_NOTE = ("Accuracies are `hw0 eval`'s (\"by: eval\", onnxruntime or torch in fp32) "
                 "where it was run, else training's final check (\"by: train\", torch in the "
                 "precision the run trained in); the two can differ by a few hundredths of a "
                 "point, as bf16 and fp32 round a few borderline predictions differently.")
ERRORS_NOTE = (f"{label(FULL_TRAIN)}: the final weights in eval mode on the whole training "
               f"set (labels trained on); {label(TRAIN_RUNNING)}: train mode over each "
               "epoch's batches while the weights move.")


def by_label(figure: Any) -> str:
    """Which measurement a shown accuracy is (ACCURACY_NOTE): eval or train, with its
    precision."""
    if figure is None:
        return "train"
    kind = "eval" if figure.source.startswith("hw0 eval") else "train"
    return f"{kind}, {figure.source.rsplit(' ', 1)[-1]}"


def test_points(grid_runs: list[Any], n: int) -> str:
    """When the curves have a test point: every epoch, or why not."""
    every = max(int(r.config.get("eval_every") or 1) for r in grid_runs)
    if every <= 1:
        return f"{label(TEST)} at every epoch."
    return (f"{label(TEST)} every {every} epochs and at the last (--eval-every {every}): one "
            f"evaluation of the {TEST_IMAGES:,} test images costs about "
            f"{TEST_IMAGES / max(n, 1) / 3:.1f} training epochs on these {n:,} images (a "
            "forward pass is a third of a training step), so a cell that reaches the target "
            f"within {every} epochs has one test point. {label(FULL_TRAIN)} is measured once "
            "the running error nears the target, and at the end.")


def pct(x: float | None) -> str:
    return "-" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{100 * x:.2f}%"


def spread(values: list[float | None], count: bool = True) -> str:
    """'81.20% +- 0.35 (3 seeds)': the mean and std (as the sweep tables give it) of one
    quantity over the seeds of a setting (`count`: the seeds said); one value as `pct`."""
    got = [v for v in values if v is not None and not math.isnan(v)]
    if len(got) < 2:
        return pct(got[0] if got else None)
    seeds = f" ({len(got)} seeds)" if count else ""
    return f"{100 * np.mean(got):.2f}% +- {100 * np.std(got):.2f}{seeds}"


def seed_mates(r: runs.RunSummary, finished: list[runs.RunSummary]) -> list[runs.RunSummary]:
    """`r` and, for each other seed, the latest finished run with `r`'s settings and epochs."""
    def setting(m: runs.RunSummary) -> dict[str, Any]:
        return {**science_of(m.config), "seed": None}

    same, mates = setting(r), {}
    for m in sorted(finished, key=lambda m: m.ended):
        if m.epochs_done == r.epochs_done and setting(m) == same:
            mates[m.config.get("seed")] = m
    return [r, *(m for seed, m in mates.items() if seed != r.config.get("seed"))]


def is_grid(r: runs.RunSummary) -> bool:
    return r.config.get("until_train_error") is not None
