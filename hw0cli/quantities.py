"""The names of the measured quantities: one key (JSON, CSV, the run file's history) and one
label (tables, step lines, the report) per quantity, so that a number is called the same
wherever it is shown.

Two training errors are measured and they differ a lot (BatchNorm in train mode, augmented
images and moving weights during the epoch; eval mode and the final weights after it):

- `train_err`, "train err (running)": the train-mode error over the epoch's batches, on the
  labels trained on (recorded every epoch);
- `train_eval_err`, "full-train err": the eval-mode error of the epoch's final weights on the
  whole training set, on the labels trained on (recorded where measured: the last epoch of
  every run, and each epoch near an `--until-train-error` target).

Torch-free: the command line's help imports it.
"""

from __future__ import annotations

import math
from typing import Any

TRAIN_RUNNING, FULL_TRAIN, TEST = "train_err", "train_eval_err", "test_err"

LABELS = {
    "train_loss": "train loss",
    TRAIN_RUNNING: "train err (running)",
    FULL_TRAIN: "full-train err",
    "test_loss": "test loss",
    TEST: "test err",
    "test_err_tta": "test err (flip TTA)",
}

CHANCE_ERR = 0.9  # ten classes: a guess is wrong 90% of the time


def label(key: str) -> str:
    return LABELS.get(key, key.replace("_", " "))


def tta_views(shift: int = 0) -> str:
    """The TTA's name, saying which views it averages: the image and its mirror, and with
    `--tta-shift s` also both moved by (s, s) and (-s, -s) pixels, each with its mirror."""
    return f"6-view TTA: flip x shift 0, +-{shift} px" if shift else "flip TTA"


def tta_label(shift: int = 0) -> str:
    """The TTA error's label (`LABELS["test_err_tta"]` for flip TTA)."""
    return f"test err ({tta_views(shift)})"


def finite_or_none(x: Any) -> Any:
    """NaN and infinities (not measured, or diverged) as None: JSON's null."""
    return None if isinstance(x, float) and not math.isfinite(x) else x


def strict_json(obj: Any) -> Any:
    """`obj` with every non-finite float replaced by None, at any depth (strict JSON has no
    NaN)."""
    if isinstance(obj, dict):
        return {k: strict_json(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [strict_json(v) for v in obj]
    if hasattr(obj, "item") and getattr(obj, "ndim", None) == 0:  # a numpy scalar
        obj = obj.item()
    return finite_or_none(obj)
