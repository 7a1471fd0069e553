"""The named sweeps (`hw0 sweep --preset`): a study's axes and shared training options, and how
a sweep's own axes and options adjust one."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from hw0cli.batch.grid import GRID_OPTIMIZER, GRID_STOPPING
from hw0cli.batch.sweep import Axis, SweepConfig
from hw0cli.errors import check


@dataclass(frozen=True)
class SweepPreset:
    description: str
    axes: tuple[Axis, ...]
    train_options: tuple[tuple[str, Any], ...]
    one_at_a_time: bool = False


# tens of seconds a cell on 2 CPU cores, most of it starting the process and loading the
# data; compiling would cost more than these few steps save
CPU_SIZE = (("train_samples", 2000), ("epochs", 3), ("compile", False))

SWEEP_PRESETS: dict[str, SweepPreset] = {
    "bn-study": SweepPreset(
        "With and without BatchNorm x learning rate x width x initialization, 2 seeds; CPU "
        "sizes: widths 4 and 8, a 2,000-image subset, 3 epochs",
        (Axis("batchnorm", (True, False)), Axis("lr", (0.03, 0.3, 1.0)),
         Axis("width", (4, 8)), Axis("init", ("default", "kaiming")), Axis("seed", (0, 1))),
        CPU_SIZE),
    "warmup-knobs": SweepPreset(
        "The warm-up's knobs one at a time around the course recipe (width 4 on a CPU): "
        "batch size, learning-rate schedule, optimizer, training samples",
        (Axis("batch_size", (32, 128, 512)), Axis("schedule", ("constant", "cosine", "onecycle")),
         Axis("optimizer", ("sgd", "adam")), Axis("train_samples", (500, 2000, 8000))),
        (("width", 4), *CPU_SIZE), one_at_a_time=True),
    "random-labels": SweepPreset(
        "Problem 2's grid as a sweep: widths x label noise, trained to <= 1% train error "
        "(the same cells, and run ids, as `hw0 grid`)",
        (Axis("width", (4, 64)), Axis("noise", (0.0, 0.5, 1.0))),
        tuple({**GRID_STOPPING, **GRID_OPTIMIZER}.items())),
}


def with_preset(cfg: SweepConfig, preset: str) -> SweepConfig:
    """`cfg` on top of a named sweep: its own axes replace the preset's axes of the same name
    (others are added), its training options override the preset's. Named after the preset
    ('bn-study'; adjusted: 'bn-study-<hash>', so that it is recorded beside the preset's own
    cells, not over them) unless `cfg` has a name."""
    check(preset in SWEEP_PRESETS, f"Unknown sweep preset '{preset}'. Choose one of: "
          f"{', '.join(SWEEP_PRESETS)}.")
    p = SWEEP_PRESETS[preset]
    own = {a.name: a for a in cfg.axes}
    axes = tuple(own.pop(a.name, a) for a in p.axes) + tuple(own.values())
    options = {**dict(p.train_options), **dict(cfg.train_options)}
    if not p.one_at_a_time:  # an explicit option fixes an axis of the product
        axes = tuple(a for a in axes if a.name not in dict(cfg.train_options))
    out = dataclasses.replace(cfg, axes=axes, one_at_a_time=p.one_at_a_time,
                              train_options=tuple(sorted(options.items())), name=cfg.name)
    if out.name is None:
        adjusted = bool(cfg.axes or cfg.train_options)
        out = dataclasses.replace(out, name=f"{preset}-{out.digest()}" if adjusted else preset)
    return out
