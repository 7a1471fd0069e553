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
import signal
import subprocess
import sys
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from hw0cli import runs, store
from hw0cli.errors import Hw0Error, Hw0UsageError, check
from hw0cli.options import command_args, flag
from hw0cli.paths import default_data_dir, default_out_dir
from hw0cli.train import TrainConfig, make_config, run_id_for, science_of, validate

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


def train_args(c: TrainConfig) -> list[str]:
    """`hw0 train` arguments that reproduce config `c` exactly (same run id): the grid's axes,
    the folders, and every option that differs from `c`'s recipe, as declared on TrainConfig."""
    recipe = ["--recipe", c.recipe] if c.recipe != "notebook" else []
    axes = ["--width", str(c.width), "--noise", str(c.noise), "--seed", str(c.seed)]
    rest = command_args(c, make_config(c.recipe, width=c.width), always=("data_dir", "out"),
                        skip=("width", "noise", "seed", "recipe"))
    return [*recipe, *axes, *rest]


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
    train_err: float = math.nan  # the full-train error where measured, else the running one:
    # kept as it was for older scripts; the two errors apart are the fields below
    test_err: float = math.nan
    seconds: float = 0.0  # time trained (epochs cut short by an interruption included)
    note: str = ""
    train_eval_err: float = math.nan  # "full-train err" (hw0cli.quantities), last measured
    train_err_running: float = math.nan  # "train err (running)", the last epoch's

    def to_json(self) -> dict[str, Any]:
        return {"index": self.index, "run_id": self.run_id, "state": self.state,
                "width": self.config.width, "noise": self.config.noise,
                "seed": self.config.seed, "epochs": self.epochs_done,
                "train_err": self.train_err, "train_eval_err": self.train_eval_err,
                "train_err_running": self.train_err_running, "test_err": self.test_err,
                "seconds": self.seconds, "note": self.note}


def _final(rec: store.H5Record) -> tuple[float, float, float]:
    h = rec.group("history")
    train = runs.last_finite(h.get("train_eval_err", []))  # eval mode, when measured
    if math.isnan(train):
        train = runs.last_finite(h.get("train_err", []))
    return train, runs.last_finite(h.get("test_err", [])), \
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
    st.seconds += float(rec.attrs.get("partial_s") or 0.0)
    h = rec.group("history")
    st.train_eval_err = runs.last_finite(h.get("train_eval_err", []))
    st.train_err_running = runs.last_finite(h.get("train_err", []))
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


def cell_at(cfg: GridConfig, index: int) -> TrainConfig:
    """Cell `index` of the grid (0-based), or a usage error naming the range."""
    return pick_cell(cells(cfg), index, "grid")


def pick_cell(all_cells: list, index: int, kind: str) -> Any:
    """Cell `index` (0-based) of a grid or sweep, or a usage error naming the range."""
    check(0 <= index < len(all_cells), f"--index {index} is outside the {kind} (0 to "
          f"{len(all_cells) - 1}; see `hw0 {kind} list`).")
    return all_cells[index]


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


def eta_seconds(durations: list[float], left: int, running: int) -> float | None:
    """Seconds until the grid is done, from the durations of the cells that trained; None
    before any did, or when nothing is left. Running cells count as half done; they share
    the slots with the ones left."""
    if not durations or not left + running:
        return None
    return sum(durations) / len(durations) * (left + 0.5 * running) / max(1, running)


@dataclass
class CellRun:
    index: int
    run_id: str
    returncode: int
    log: Path
    elsewhere: bool = False  # held by another live process (another grid run): not run here

    @property
    def failed(self) -> bool:
        return self.returncode != 0 and not self.elsewhere


def held_elsewhere(path: Path) -> bool:
    """Whether another process trains (holds the lock of) the run at `path`, or finished it
    while this one waited for it."""
    if store.is_locked(path):
        return True
    try:
        return store.read_h5(path, attrs_only=True).attrs.get("status") == "finished"
    except Hw0Error:
        return False


def run_cells(cfg: GridConfig, jobs: int, indices: list[int] | None = None,
              on_done: Callable[[CellRun], None] | None = None,
              on_start: Callable[[int, TrainConfig], None] | None = None) -> list[CellRun]:
    """Run the grid's cells (see `run_configs`), `jobs` at a time."""
    return run_configs(cells(cfg), cfg.out, jobs, indices, on_done, on_start, log_args(cfg))


class _Lanes:
    """The parallel lanes of a run: one visible GPU each, or a share of the CPU cores; the
    running cell processes, to interrupt together on Ctrl-C."""

    def __init__(self, jobs: int) -> None:
        import threading
        self.gpus = visible_gpus()
        self.slots = min(jobs, len(self.gpus)) if self.gpus else jobs
        self.threads = max(1, (os.cpu_count() or 1) // self.slots)
        self.free = list(range(self.slots))
        self.lock = threading.Lock()
        self.children: set[subprocess.Popen] = set()
        self.stopping = threading.Event()

    def run(self, cmd: list[str], log: Path) -> int:
        """Run `cmd` in a free lane, its output appended to `log`; 130 once interrupted."""
        with self.lock:
            slot = self.free.pop()
        env = dict(os.environ)
        if self.gpus:
            env["CUDA_VISIBLE_DEVICES"] = self.gpus[slot]
        else:
            env["OMP_NUM_THREADS"] = str(self.threads)
        try:
            with open(log, "a") as fh, self.lock:
                if self.stopping.is_set():
                    return 130
                proc = subprocess.Popen(cmd, env=env, stdout=fh, stderr=subprocess.STDOUT)
                self.children.add(proc)
            try:
                return proc.wait()
            finally:
                with self.lock:
                    self.children.discard(proc)
        finally:
            with self.lock:
                self.free.append(slot)

    def interrupt(self) -> None:
        """Start no other cell; the running ones checkpoint their last epoch and stop."""
        with self.lock:
            self.stopping.set()
            for p in self.children:
                p.send_signal(signal.SIGINT)


def run_configs(all_cells: list[TrainConfig], out: Path, jobs: int,
                indices: list[int] | None = None,
                on_done: Callable[[CellRun], None] | None = None,
                on_start: Callable[[int, TrainConfig], None] | None = None,
                extra_args: list[str] | None = None) -> list[CellRun]:
    """Run cells as `python -m hw0cli train ...` processes, `jobs` at a time.

    GPU machine: one process per visible GPU (CUDA_VISIBLE_DEVICES set per process, jobs
    capped at the GPU count). CPU machine: `jobs` processes sharing the cores
    (OMP_NUM_THREADS = cores / jobs each). Output of each goes to `<out>/grid_logs/<id>.log`.
    A cell that another process holds (a second grid run on the same folder) is not run here:
    its `CellRun` says `elsewhere`, not failed.
    """
    check(jobs >= 1, f"--jobs must be at least 1 (got {jobs}).")
    todo = list(range(len(all_cells))) if indices is None else indices
    lanes = _Lanes(jobs)
    log_dir = Path(out) / "grid_logs"
    log_dir.mkdir(parents=True, exist_ok=True)

    def work(i: int) -> CellRun:
        c = all_cells[i]
        rid = run_id_for(c)
        log, path = log_dir / f"{rid}.log", runs.run_path(c.out, rid)
        if on_start:
            on_start(i, c)
        if store.is_locked(path):  # another grid run trains it: not this one's to run
            res = CellRun(i, rid, 0, log, elsewhere=True)
        else:
            rc = lanes.run([sys.executable, "-m", "hw0cli", "train", "--quiet",
                            *train_args(c), *(extra_args or [])], log)
            # a cell taken by another process between the check and the start: its lock
            # refused this one (or it finished meanwhile)
            res = CellRun(i, rid, rc, log, elsewhere=rc not in (0, 130) and held_elsewhere(path))
        if on_done:
            on_done(res)
        return res

    pool = ThreadPoolExecutor(max_workers=lanes.slots)
    try:
        return list(pool.map(work, todo))
    except KeyboardInterrupt:
        lanes.interrupt()
        pool.shutdown(wait=False, cancel_futures=True)
        raise
    finally:
        pool.shutdown(wait=True)


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
    if plot_dir is not None and any(r.seeds for r in out_rows):  # named by grid: no overwrite
        stem = plot_dir / log_group(cfg)
        plots.append(grid_error_vs_noise(out_rows, Path(f"{stem}_error_vs_noise.png")))
        plots.append(grid_curves(curves, Path(f"{stem}_learning_curves.png")))
    return GridReport(out_rows, plots, curves)
