"""`hw0 all --smoke`: every step of a preset at toy sizes, a check of the whole plan's wiring.

The plan stays the preset's: the same steps in the same order, the same widths, recipes,
sweep (its name, axes and BatchNorm study), grid and Problem 3 methods. Only the sizes are cut:
each training step's images to at most SMOKE_TRAIN_SAMPLES (its batch never larger than
them) and its epochs to at most SMOKE_EPOCHS; Problem 3's training images and iteration
counts likewise (SMOKE_LINREG). A step that breaks at the preset's settings (an unknown option,
a width, a recipe, a sweep name) breaks the smoke run too, in minutes on a CPU.

Execution choices (how, not what) differ: every step trains eagerly (no torch.compile), since
compiling each distinct graph costs about a minute on a CPU, more than the whole smoke run's
training, and on a CPU in fp32 without the precision probe (which times bf16 too: minutes at
width 64 on a CPU without AMX). The compiled path is what `scripts/device_check.sh` times on a
GPU.
"""

from __future__ import annotations

import copy
from typing import Any

from hw0cli.batch.grid import GRID_OPTIMIZER, GRID_STOPPING
from hw0cli.batch.presets import SWEEP_PRESETS
from hw0cli.linreg import LinregConfig
from hw0cli.train import TrainConfig, recipe_settings

SMOKE_TRAIN_SAMPLES = 16  # training images of every training step, at most
SMOKE_EPOCHS = 1  # epochs of every training step, at most
SMOKE_LINREG = {"n": 50, "gd_iters": 20, "sgd_iters": 20, "overparam_iters": 20}  # at most
SIZES = ("train_samples", "batch_size", "epochs")  # the training options the smoke cuts


def smoke_preset(preset: dict[str, Any], cpu: bool = True) -> dict[str, Any]:
    """The preset with every step's sizes cut (see the module docstring); `cpu`: it trains on
    a CPU (fp32, no probe)."""
    p = copy.deepcopy(preset)
    p["description"] = (f"{preset['description']}; SMOKE RUN (--smoke): every step with at most "
                        f"{SMOKE_TRAIN_SAMPLES} training images and {SMOKE_EPOCHS} epoch(s), "
                        "trained eagerly: a check of the plan, not results")
    how = {"compile": False, **({"precision": "fp32"} if cpu else {})}
    p["warmup"] = [_cut(w, how, w.get("recipe", "notebook")) for w in preset["warmup"]]
    p["robust"] = [_cut(r, how) for r in preset["robust"]]
    p["grid"]["train_options"] = _cut_grid(preset["grid"]["train_options"], how)
    if preset.get("sweep"):
        p["sweep"] = _cut_sweep(preset["sweep"], how)
    p["linreg"] = _cut_linreg(preset["linreg"])
    p["smoke"] = True
    return p


def _cut_value(key: str, value: int) -> int:
    return min(value, SMOKE_EPOCHS if key == "epochs" else SMOKE_TRAIN_SAMPLES)


def _cut(options: dict[str, Any], how: dict[str, Any], recipe: str = "notebook",
         implied: dict[str, Any] | None = None) -> dict[str, Any]:
    """`options` with the sizes cut and the execution `how`; `implied`: settings the step adds
    on top of the recipe."""
    known = _sizes(options, recipe, implied)
    cut = {k: _cut_value(k, v) for k, v in known.items()}
    cut["batch_size"] = min(cut["batch_size"], cut["train_samples"])
    return {**options, **cut, **how}


def _sizes(options: dict[str, Any], recipe: str = "notebook",
           implied: dict[str, Any] | None = None) -> dict[str, int]:
    """The sizes a step with these options trains with (given, else its recipe's, else the
    defaults)."""
    known = {**recipe_settings(recipe, options.get("width") or TrainConfig.width),
             **(implied or {}), **{k: v for k, v in options.items() if v is not None}}
    return {k: known.get(k, getattr(TrainConfig, k)) for k in SIZES}


def _cut_grid(train_options: dict[str, Any], how: dict[str, Any]) -> dict[str, Any]:
    return _cut(train_options, how, implied={**GRID_STOPPING, **GRID_OPTIMIZER})


def _cut_sweep(spec: dict[str, Any], how: dict[str, Any]) -> dict[str, Any]:
    """The sweep's sizes cut: in its training options, or in its axes where it varies them
    (each axis keeps its distinct values)."""
    named = SWEEP_PRESETS.get(spec.get("preset", ""))
    if named is None:
        return spec  # the plan refuses it, naming the sweeps there are
    axes = {a.name: a.values for a in named.axes}
    axes.update(spec.get("axes", {}))
    options = {**dict(named.train_options), **spec.get("train_options", {})}
    cut = _cut(options, how)
    if "batch_size" in axes and not named.one_at_a_time:  # each axis value is checked alone,
        # at the default batch size: enough images for that batch
        cut["train_samples"] = max(cut["train_samples"], _sizes(options)["batch_size"])
    own_axes = dict(spec.get("axes", {}))
    for k in SIZES:
        if k in axes:
            own_axes[k] = tuple(dict.fromkeys(_cut_value(k, v) for v in axes[k]))
            if not named.one_at_a_time:  # there an option is the centre; else it fixes the axis
                cut.pop(k)
    return {**spec, "axes": own_axes, "train_options": {**spec.get("train_options", {}),
                                                         **{k: cut[k] for k in cut
                                                            if k in (*SIZES, *how)}}}


def _cut_linreg(options: dict[str, Any]) -> dict[str, Any]:
    return {**options, **{k: min(options.get(k, getattr(LinregConfig, k)), v)
                          for k, v in SMOKE_LINREG.items()}}
