"""Problem 2: the width x label-noise grid (after Zhang et al. 2017), run from the shell.

A grid is widths x noise levels x seeds on top of one set of training options. Each cell is an
ordinary `hw0 train` run, so it is idempotent (same settings, same run id: a finished cell is
never retrained), resumable and locked. `grid_commands` prints the cells as shell commands for
xargs, a loop, `scripts/grid.sh` or a Slurm array; `run_cells` runs them in parallel processes;
`grid_status` says what is done; `grid_report` aggregates the run files, matched by config.
"""

from __future__ import annotations

import math
import shlex
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from hw0cli import runs, store
from hw0cli.batch.cells import (
    CellRun,
    CellState,
    cell_state,
    final_errors,
    pick_cell,
    run_configs,
    train_args,
)
from hw0cli.errors import Hw0UsageError, check
from hw0cli.options import flag
from hw0cli.paths import default_data_dir, default_out_dir
from hw0cli.plots import grid_curves, grid_error_vs_noise
from hw0cli.tracking import group_name
from hw0cli.train import TrainConfig, make_config, science_of, validate

# The grid's default recipe (Problem 2): train until the training error is <= 1% or stops
# improving. Plain SGD at lr 0.1 cannot memorize random labels in a CPU budget (measured: ~20%
# train accuracy after 44 epochs at c = 64, 2,000 images, p = 1); Adam at lr 1e-3 can.
GRID_OPTIMIZER = {"optimizer": "adam", "lr": 1e-3}  # applied on top of the notebook recipe
GRID_STOPPING = {
    "until_train_error": 0.01,  # the interpolation threshold: <= 1% full-train error
    "epochs": 100,  # cap: c = 4 never interpolates p = 1 labels
    "patience": 20,  # epochs without train-error improvement before giving up
    "eval_every": 5,  # test evaluations are a third of an epoch each: every 5th epoch + last
}


@dataclass(frozen=True)
class GridConfig:
    widths: tuple[int, ...] = (4, 64)
    noises: tuple[float, ...] = (0.0, 0.5, 1.0)
    seeds: tuple[int, ...] = (0,)
    recipe: str = "notebook"
    train_options: tuple[tuple[str, Any], ...] = ()  # explicit `hw0 train` settings
    data_dir: Path = field(default_factory=default_data_dir)
    out: Path = field(default_factory=default_out_dir)
    log: tuple[str, ...] = ()  # wandb / tensorboard: every cell logs, grouped by the grid
    log_group: str | None = None  # None: `log_group(cfg)`

    def group(self) -> str:
        """The wandb group / TensorBoard folder of this grid's cells."""
        return self.log_group or log_group(self)


def log_group(cfg: GridConfig) -> str:
    """'grid-<hash>': the same axes and options always give the same group."""
    return group_name("grid", (cfg.widths, cfg.noises, cfg.seeds, cfg.recipe,
                               cfg.train_options))


def log_args(cfg: GridConfig) -> list[str]:
    """The `hw0 train` options that log a cell to the grid's trackers, grouped."""
    if not cfg.log:
        return []
    return [*(a for b in cfg.log for a in ("--log", b)), "--log-group", cfg.group()]


def parse_list(text: str, kind: type, name: str) -> tuple:
    """'4,64' -> (4, 64); empty items or non-numbers are usage errors."""
    items = [t.strip() for t in str(text).split(",")]
    try:
        values = tuple(kind(t) for t in items)
    except ValueError:
        raise Hw0UsageError(f"{name} takes a comma-separated list of "
                            f"{'integers' if kind is int else 'numbers'} (got '{text}').") from None
    check(len(set(values)) == len(values), f"{name} lists a value twice (got '{text}').")
    return values


# Each cell's axes and run id come from the grid; a cell is trained once (a finished one is
# skipped), so --force and --resume make no sense for a grid either.
SET_BY_GRID = ("width", "noise", "seed", "run_id", "resume", "force")


def check_train_options(options: dict[str, Any]) -> None:
    """Reject training options that the grid sets itself."""
    for k in SET_BY_GRID:
        check(options.get(k) in (None, False), f"{flag(TrainConfig, k)} is not a grid option "
              "(use --widths/--noise/--seeds for the axes).")


def cells(cfg: GridConfig) -> list[TrainConfig]:
    """Every cell's training config, ordered by width, then noise, then seed."""
    check(bool(cfg.widths) and bool(cfg.noises) and bool(cfg.seeds),
          "A grid needs at least one width, noise level and seed.")
    check_train_options(dict(cfg.train_options))
    for p in cfg.noises:
        check(0 <= p <= 1, f"--noise values are probabilities in [0, 1] (got {p}).")
    opts = {**GRID_STOPPING, **(GRID_OPTIMIZER if cfg.recipe == "notebook" else {}),
            **{k: v for k, v in cfg.train_options if k not in SET_BY_GRID}}
    out = []
    for w in cfg.widths:
        for p in cfg.noises:
            for s in cfg.seeds:
                c = make_config(cfg.recipe, **{**opts, "width": w, "noise": p, "seed": s,
                                               "data_dir": cfg.data_dir, "out": cfg.out})
                validate(c)
                out.append(c)
    return out


def grid_commands(cfg: GridConfig) -> list[str]:
    """One complete shell command per cell."""
    return [shlex.join(["hw0", "train", *train_args(c), *log_args(cfg)]) for c in cells(cfg)]


# ---------------------------------------------------------------------------------------------
# status


def cell_at(cfg: GridConfig, index: int) -> TrainConfig:
    """Cell `index` of the grid (0-based), or a usage error naming the range."""
    return pick_cell(cells(cfg), index, "grid")


def grid_status(cfg: GridConfig) -> list[CellState]:
    return [cell_state(i, c) for i, c in enumerate(cells(cfg))]


# ---------------------------------------------------------------------------------------------
# running


def run_cells(cfg: GridConfig, jobs: int, indices: list[int] | None = None,
              on_done: Callable[[CellRun], None] | None = None,
              on_start: Callable[[int, TrainConfig], None] | None = None) -> list[CellRun]:
    """Run the grid's cells (see `run_configs`), `jobs` at a time."""
    return run_configs(cells(cfg), cfg.out, jobs, indices, on_done, on_start, log_args(cfg))


# ---------------------------------------------------------------------------------------------
# report


@dataclass
class GridRow:
    width: int
    noise: float
    seeds: list[int]
    train_err: list[float]
    test_err: list[float]
    epochs: list[int]
    seconds: list[float]
    missing: int

    def stat(self, key: str) -> tuple[float, float]:
        v = np.asarray(getattr(self, key), dtype=float)
        return (float(v.mean()), float(v.std())) if len(v) else (math.nan, math.nan)


@dataclass
class GridReport:
    rows: list[GridRow]
    plots: list[Path]
    curves: dict[tuple[int, float, int], dict[str, np.ndarray]]


def grid_report(cfg: GridConfig, plot_dir: Path | None = None) -> GridReport:
    """Aggregate finished cells by (width, noise) over seeds; runs matched by config."""

    finished: dict[str, tuple[Path, dict]] = {}
    for r in runs.list_runs(cfg.out):
        if r.status == "finished":
            key = str(sorted(science_of(r.config).items()))
            finished[key] = (r.path, r.config)
    rows: dict[tuple[int, float], GridRow] = {}
    curves = {}
    for c in cells(cfg):
        row = rows.setdefault((c.width, c.noise), GridRow(c.width, c.noise, [], [], [], [], [],
                                                          0))
        hit = finished.get(str(sorted(c.science().items())))
        if hit is None:
            row.missing += 1
            continue
        rec = store.read_h5(hit[0], prefixes=("history/",))
        tr, te, secs = final_errors(rec)
        row.seeds.append(c.seed)
        row.train_err.append(tr)
        row.test_err.append(te)
        row.epochs.append(int(rec.attrs.get("epochs_done", 0)))
        row.seconds.append(secs)
        curves[(c.width, c.noise, c.seed)] = rec.group("history")
    out_rows = list(rows.values())
    plots = []
    if plot_dir is not None and any(r.seeds for r in out_rows):  # named by grid: no overwrite
        stem = plot_dir / log_group(cfg)
        plots.append(grid_error_vs_noise(out_rows, Path(f"{stem}_error_vs_noise.png")))
        plots.append(grid_curves(curves, Path(f"{stem}_learning_curves.png")))
    return GridReport(out_rows, plots, curves)
