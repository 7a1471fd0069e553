"""The generic cell runner under `hw0 grid` and `hw0 sweep`: a cell is one `hw0 train` run.

`train_args` writes the command line that reproduces a config (same run id); `cell_state` reads
a cell's run file into a `CellState` (done, running, incomplete, failed, missing, corrupt,
mismatch); `run_configs` runs cells as parallel `hw0 train` processes, one lane per visible GPU
or a share of the CPU cores, and stops them together on Ctrl-C.
"""

from __future__ import annotations

import math
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from hw0cli import runs, store
from hw0cli.errors import Hw0Error, check
from hw0cli.options import command_args
from hw0cli.train.config import TrainConfig, make_config, run_id_for


def train_args(c: TrainConfig) -> list[str]:
    """`hw0 train` arguments that reproduce config `c` exactly (same run id): the grid's axes,
    the folders, and every option that differs from `c`'s recipe, as declared on TrainConfig."""
    recipe = ["--recipe", c.recipe] if c.recipe != "notebook" else []
    axes = ["--width", str(c.width), "--noise", str(c.noise), "--seed", str(c.seed)]
    rest = command_args(c, make_config(c.recipe, width=c.width), always=("data_dir", "out"),
                        skip=("width", "noise", "seed", "recipe"))
    return [*recipe, *axes, *rest]


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


def final_errors(rec: store.H5Record) -> tuple[float, float, float]:
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
    st.train_err, st.test_err, st.seconds = final_errors(rec)
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


def pick_cell(all_cells: list, index: int, kind: str) -> Any:
    """Cell `index` (0-based) of a grid or sweep, or a usage error naming the range."""
    check(0 <= index < len(all_cells), f"--index {index} is outside the {kind} (0 to "
          f"{len(all_cells) - 1}; see `hw0 {kind} list`).")
    return all_cells[index]


def visible_gpus() -> list[str]:
    """GPU ids to hand out, from CUDA_VISIBLE_DEVICES or torch's device count."""
    env = os.environ.get("CUDA_VISIBLE_DEVICES")
    if env is not None:
        return [g for g in env.split(",") if g.strip() and g.strip() != "-1"]
    import torch  # only to count GPUs; listing and status need no torch
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


class _Lanes:
    """The parallel lanes of a run: one visible GPU each, or a share of the CPU cores; the
    running cell processes, to interrupt together on Ctrl-C."""

    def __init__(self, jobs: int) -> None:

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
