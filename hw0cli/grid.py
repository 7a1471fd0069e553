"""Problem 2: the width x label-noise grid (after Zhang et al. 2017), run from the shell.

A grid is widths x noise levels x seeds on top of one set of training options. Each cell is an
ordinary `hw0 train` run, so it is idempotent (same settings, same run id: a finished cell is
never retrained), resumable and locked. `grid_commands` prints the cells as shell commands for
xargs, a loop, `scripts/grid.sh` or a Slurm array; `run_cells` runs them in parallel processes;
`grid_status` says what is done; `grid_report` aggregates the run files, matched by config.
"""

from __future__ import annotations

import math
import os
import shlex
import subprocess
import sys
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from hw0cli import runs, store
from hw0cli.data import default_data_dir
from hw0cli.errors import Hw0Error, Hw0UsageError, check
from hw0cli.train import (
    SCIENCE_FIELDS,
    TrainConfig,
    make_config,
    run_id_for,
    science_of,
    validate,
)

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
    out: Path = Path("artifacts")
    log: tuple[str, ...] = ()  # wandb / tensorboard: every cell logs, grouped by the grid
    log_group: str | None = None  # None: `log_group(cfg)`

    def group(self) -> str:
        """The wandb group / TensorBoard folder of this grid's cells."""
        return self.log_group or log_group(self)


def log_group(cfg: GridConfig) -> str:
    """'grid-<hash>': the same axes and options always give the same group."""
    from hw0cli.tracking import group_name
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


def cells(cfg: GridConfig) -> list[TrainConfig]:
    """Every cell's training config, ordered by width, then noise, then seed."""
    check(bool(cfg.widths) and bool(cfg.noises) and bool(cfg.seeds),
          "A grid needs at least one width, noise level and seed.")
    opts = {**GRID_STOPPING, **(GRID_OPTIMIZER if cfg.recipe == "notebook" else {}),
            **dict(cfg.train_options)}
    for k in ("width", "noise", "seed", "run_id", "resume"):
        check(k not in opts or opts[k] is None or k == "resume",
              f"--{k.replace('_', '-')} is set by the grid; use --widths/--noise/--seeds.")
    opts = {k: v for k, v in opts.items() if k not in ("width", "noise", "seed", "run_id")}
    out = []
    for w in cfg.widths:
        for p in cfg.noises:
            for s in cfg.seeds:
                c = make_config(cfg.recipe, **{**opts, "width": w, "noise": p, "seed": s,
                                               "data_dir": cfg.data_dir, "out": cfg.out})
                validate(c)
                out.append(c)
    return out


def _flag(name: str, value: Any) -> list[str]:
    flag = "--" + name.replace("_", "-")
    if isinstance(value, bool):
        if name == "batchnorm":
            return [] if value else ["--no-batchnorm"]
        return [flag] if value else ["--no-" + name.replace("_", "-")]
    return [flag, str(value)]


def train_args(c: TrainConfig) -> list[str]:
    """`hw0 train` arguments that reproduce config `c` exactly (same run id)."""
    base = make_config(c.recipe)
    args = ["--recipe", c.recipe] if c.recipe != "notebook" else []
    for name in ("width", "noise", "seed", *[f for f in SCIENCE_FIELDS
                                             if f not in ("width", "noise", "seed")],
                 "eval_every"):
        v = getattr(c, name)
        if name in ("width", "noise", "seed") or v != getattr(base, name):
            if v is None:
                raise Hw0Error(f"cannot express {name}=None on the command line")
            args += _flag(name, v)
    for name, default in (("device", "auto"), ("precision", "auto"),
                          ("compile_mode", "auto")):
        if getattr(c, name) != default:
            args += _flag(name, getattr(c, name))
    if c.compile is not None:
        args.append("--compile" if c.compile else "--no-compile")
    return [*args, "--data-dir", str(c.data_dir), "--out", str(c.out)]


def grid_commands(cfg: GridConfig) -> list[str]:
    """One complete shell command per cell."""
    return [shlex.join(["hw0", "train", *train_args(c), *log_args(cfg)]) for c in cells(cfg)]


# ---------------------------------------------------------------------------------------------
# status


@dataclass
class CellState:
    index: int
    config: TrainConfig
    run_id: str
    path: Path
    state: str  # done | running | incomplete | failed | missing | corrupt | mismatch
    epochs_done: int = 0
    train_err: float = math.nan  # final full-train error (eval mode) or the running one
    test_err: float = math.nan
    seconds: float = 0.0
    note: str = ""


def _final(rec: store.H5Record) -> tuple[float, float, float]:
    h = rec.group("history")
    def last(key: str) -> float:
        v = [x for x in h.get(key, []) if not math.isnan(x)]
        return float(v[-1]) if v else math.nan
    tr = last("train_eval_err")
    return (last("train_err") if math.isnan(tr) else tr), last("test_err"), \
        float(np.sum(h["seconds"])) if "seconds" in h else 0.0


def cell_state(i: int, c: TrainConfig) -> CellState:
    rid = run_id_for(c)
    path = runs.run_path(c.out, rid)
    st = CellState(i, c, rid, path, "missing")
    if not path.exists():
        return st
    try:
        rec = store.read_h5(path, prefixes=("history/",))
    except Hw0Error as exc:
        st.state, st.note = "corrupt", str(exc).split(". ")[0]
        return st
    stored = rec.attrs.get("config") or {}
    diff = [k for k, v in c.science().items() if stored.get(k) != v]
    if diff:
        st.state, st.note = "mismatch", f"file has other settings: {', '.join(diff)}"
        return st
    st.epochs_done = int(rec.attrs.get("epochs_done", 0))
    st.train_err, st.test_err, st.seconds = _final(rec)
    status = rec.attrs.get("status")
    if status == "finished":
        st.state = "done"
    elif status == "diverged":
        st.state, st.note = "failed", str(rec.attrs.get("message", ""))
    elif store.is_locked(path):
        st.state = "running"
    else:
        st.state, st.note = "incomplete", f"{status} after epoch {st.epochs_done}: resumable"
    return st


def grid_status(cfg: GridConfig) -> list[CellState]:
    return [cell_state(i, c) for i, c in enumerate(cells(cfg))]


# ---------------------------------------------------------------------------------------------
# running


def visible_gpus() -> list[str]:
    """GPU ids to hand out, from CUDA_VISIBLE_DEVICES or torch's device count."""
    env = os.environ.get("CUDA_VISIBLE_DEVICES")
    if env is not None:
        return [g for g in env.split(",") if g.strip() and g.strip() != "-1"]
    import torch
    return [str(i) for i in range(torch.cuda.device_count())]


@dataclass
class CellRun:
    index: int
    run_id: str
    returncode: int
    log: Path


def run_cells(cfg: GridConfig, jobs: int, indices: list[int] | None = None,
              on_done: Callable[[CellRun], None] | None = None,
              on_start: Callable[[int, TrainConfig], None] | None = None) -> list[CellRun]:
    """Run cells as `python -m hw0cli train ...` processes, `jobs` at a time.

    GPU machine: one process per visible GPU (CUDA_VISIBLE_DEVICES set per process, jobs
    capped at the GPU count). CPU machine: `jobs` processes sharing the cores
    (OMP_NUM_THREADS = cores / jobs each). Output of each goes to `<out>/grid_logs/<id>.log`.
    """
    check(jobs >= 1, f"--jobs must be at least 1 (got {jobs}).")
    all_cells = cells(cfg)
    todo = list(range(len(all_cells))) if indices is None else indices
    gpus = visible_gpus()
    slots = min(jobs, len(gpus)) if gpus else jobs
    threads = max(1, (os.cpu_count() or 1) // slots)
    log_dir = Path(cfg.out) / "grid_logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    free = list(range(slots))
    import threading
    lock = threading.Lock()

    def work(i: int) -> CellRun:
        with lock:
            slot = free.pop()
        try:
            c = all_cells[i]
            env = dict(os.environ)
            if gpus:
                env["CUDA_VISIBLE_DEVICES"] = gpus[slot]
            else:
                env["OMP_NUM_THREADS"] = str(threads)
            log = log_dir / f"{run_id_for(c)}.log"
            if on_start:
                on_start(i, c)
            with open(log, "a") as fh:
                rc = subprocess.run([sys.executable, "-m", "hw0cli", "train", "--quiet",
                                     *train_args(c), *log_args(cfg)], env=env, stdout=fh,
                                    stderr=subprocess.STDOUT).returncode
            res = CellRun(i, run_id_for(c), rc, log)
            if on_done:
                on_done(res)
            return res
        finally:
            with lock:
                free.append(slot)

    with ThreadPoolExecutor(max_workers=slots) as pool:
        return list(pool.map(work, todo))


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
    from hw0cli.plots import grid_curves, grid_error_vs_noise

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
        tr, te, secs = _final(rec)
        row.seeds.append(c.seed)
        row.train_err.append(tr)
        row.test_err.append(te)
        row.epochs.append(int(rec.attrs.get("epochs_done", 0)))
        row.seconds.append(secs)
        curves[(c.width, c.noise, c.seed)] = rec.group("history")
    out_rows = list(rows.values())
    plots = []
    if plot_dir is not None and any(r.seeds for r in out_rows):
        plots.append(grid_error_vs_noise(out_rows, plot_dir / "grid_error_vs_noise.png"))
        plots.append(grid_curves(curves, plot_dir / "grid_learning_curves.png"))
    return GridReport(out_rows, plots, curves)
