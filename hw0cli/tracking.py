"""Experiment tracking: the runs' curves in Weights & Biases and TensorBoard.

The HDF5 run file stays the record; a tracker is a copy for the dashboards people already use.
`TrackingReporter` is a training display (the `TrainReporter` protocol) that logs each finished
epoch's history row, and at the end the final errors and stored evaluations; `sync_run` replays a
stored run file through the same trackers, so runs made earlier (or without --log) show up too.

wandb runs offline (files under `<out>/wandb`, `wandb sync` uploads them later) unless the user
has configured it: `WANDB_MODE` set, `WANDB_API_KEY` set, or a key stored by `wandb login`. It
never prompts. TensorBoard event files go to `<out>/tensorboard/[<group>/]<run id>`.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import netrc
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from torch.utils.tensorboard import SummaryWriter

from hw0cli import runs, store
from hw0cli.errors import Hw0Error, check
from hw0cli.paths import default_out_dir

BACKENDS = ("wandb", "tensorboard")
PROJECT_ENV = "WANDB_PROJECT"
DEFAULT_PROJECT = "hw0"

# history key -> the metric name shown in the dashboards (split/metric groups the panels)
METRICS = {
    "train_loss": "train/loss", "train_err": "train/err", "test_loss": "test/loss",
    "test_err": "test/err", "lr": "lr", "seconds": "time/epoch_s",
    "eval_seconds": "time/eval_s", "train_eval_err": "train/err_eval_mode",
    "test_err_tta": "test/err_tta",
}


@dataclass(frozen=True)
class TrackingConfig:
    """Where and how to log: backends (wandb, tensorboard), the output folder, the group."""

    backends: tuple[str, ...] = ()
    out: Path = field(default_factory=default_out_dir)
    group: str | None = None  # one wandb group / one TensorBoard folder (a grid, `hw0 all`)

    def __bool__(self) -> bool:
        return bool(self.backends)


def parse_backends(values: list[str] | tuple[str, ...] | None) -> tuple[str, ...]:
    """`--log wandb --log tensorboard` (or `--log wandb,tensorboard`) -> checked, unique."""
    names: list[str] = []
    for v in values or ():
        for name in (s.strip().lower() for s in v.split(",")):
            check(name in BACKENDS, f"--log takes {' or '.join(BACKENDS)} (got '{name}'); "
                  "repeat it to log to both.")
            if name not in names:
                names.append(name)
    return tuple(names)


def require(backends: tuple[str, ...]) -> None:
    """A clear error naming the install command when a backend's package is missing."""
    modules = {"wandb": "wandb", "tensorboard": "tensorboard"}
    for b in backends:
        try:
            __import__(modules[b])
        except ImportError:
            raise Hw0Error(f"--log {b} needs the {b} package, which is not installed. Install "
                           f"it with `pip install 'hw0[{b}]'` (or `pip install {b}`).") from None


def wandb_mode() -> str:
    """offline unless the user configured wandb (WANDB_MODE, WANDB_API_KEY, `wandb login`)."""
    if os.environ.get("WANDB_MODE"):
        return os.environ["WANDB_MODE"]
    if os.environ.get("WANDB_API_KEY"):
        return "online"
    host = (os.environ.get("WANDB_BASE_URL") or "https://api.wandb.ai").split("//")[-1]
    with contextlib.suppress(OSError, netrc.NetrcParseError):
        if netrc.netrc().authenticators(host.split("/")[0]):
            return "online"
    return "offline"


class Tracker(Protocol):
    def log_epoch(self, epoch: int, metrics: dict[str, float]) -> None: ...
    def log_summary(self, step: int, values: dict[str, float]) -> None: ...
    def close(self, ok: bool) -> None: ...


class TensorBoardTracker:
    """Scalars per epoch (global step = epoch), the config as text, final values under final/."""

    def __init__(self, tc: TrackingConfig, run_id: str, attrs: dict[str, Any]) -> None:
        folder = Path(tc.out) / "tensorboard"
        self.log_dir = (folder / tc.group if tc.group else folder) / run_id
        self.writer = SummaryWriter(log_dir=str(self.log_dir))
        self.writer.add_text("config", "```\n" + json.dumps(attrs.get("config") or {},
                                                             indent=1, default=str) + "\n```")

    def log_epoch(self, epoch: int, metrics: dict[str, float]) -> None:
        for k, v in metrics.items():
            self.writer.add_scalar(k, v, global_step=epoch)

    def log_summary(self, step: int, values: dict[str, float]) -> None:
        for k, v in values.items():
            self.writer.add_scalar(f"final/{k}", v, global_step=step)

    def close(self, ok: bool) -> None:
        self.writer.close()


class WandbTracker:
    """One wandb run per hw0 run (name = run id, config = the stored config), step = epoch."""

    def __init__(self, tc: TrackingConfig, run_id: str, attrs: dict[str, Any]) -> None:
        import wandb
        folder = Path(tc.out) / "wandb"
        folder.mkdir(parents=True, exist_ok=True)
        config = {**(attrs.get("config") or {}), "run_id": run_id,
                  "data": attrs.get("data"), "device": attrs.get("device"),
                  "precision": attrs.get("precision")}
        self.run = wandb.init(
            project=os.environ.get(PROJECT_ENV, DEFAULT_PROJECT), name=run_id, group=tc.group,
            job_type="train", config=config, dir=str(folder), mode=wandb_mode(),
            tags=[f"width-{config.get('width')}", f"noise-{config.get('noise')}"],
            settings=wandb.Settings(console="off", silent=True, x_disable_stats=True,
                                    disable_git=True, save_code=False))
        self.run.define_metric("epoch")
        self.run.define_metric("*", step_metric="epoch")

    def log_epoch(self, epoch: int, metrics: dict[str, float]) -> None:
        self.run.log({"epoch": epoch, **metrics}, step=epoch)

    def log_summary(self, step: int, values: dict[str, float]) -> None:
        self.run.summary.update({f"final/{k}": v for k, v in values.items()})

    def close(self, ok: bool) -> None:
        self.run.finish(exit_code=0 if ok else 1)


def open_trackers(tc: TrackingConfig, run_id: str, attrs: dict[str, Any]) -> list[Tracker]:
    require(tc.backends)
    kinds = {"wandb": WandbTracker, "tensorboard": TensorBoardTracker}
    return [kinds[b](tc, run_id, attrs) for b in tc.backends]


def epoch_metrics(row: dict[str, Any]) -> dict[str, float]:
    """A history row -> dashboard metrics; NaN (not measured that epoch) is left out."""
    out = {}
    for k, name in METRICS.items():
        v = row.get(k)
        if v is not None and math.isfinite(float(v)):
            out[name] = float(v)
    return out


def final_values(path: Path) -> dict[str, float]:
    """What a finished run file says at the end: last errors, per-view and stored eval accuracy."""
    s = runs.summarize(path)
    values = {"train_err": s.train_err, "test_err": s.test_err, "epochs": float(s.epochs_done),
              "train_seconds": s.seconds}
    values.update({f"test_acc/{v}": float(a) for v, a in s.test_acc_views.items()})
    for view, d in s.eval.items():
        if isinstance(d.get("accuracy"), (int, float)):
            values[f"eval/{view}/accuracy"] = float(d["accuracy"])
    return {k: v for k, v in values.items() if math.isfinite(v)}


class TrackingReporter:
    """A training display that logs to the trackers; use as a context manager around a run."""

    def __init__(self, tc: TrackingConfig) -> None:
        require(tc.backends)
        self.tc = tc
        self.path: Path | None = None
        self.run_id = ""
        self.trackers: list[Tracker] = []
        self.last_epoch = 0

    def __enter__(self) -> TrackingReporter:
        return self

    def __exit__(self, exc_type: object, *rest: object) -> None:
        self.finish(ok=exc_type is None)

    def on_start(self, info: dict[str, Any]) -> None:
        self.finish(ok=True)  # `hw0 all` hands one reporter a run at a time
        self.path, self.run_id = Path(info["path"]), str(info["run_id"])

    def on_step(self, *args: Any) -> None:
        pass

    def on_epoch(self, row: dict[str, Any]) -> None:
        if not self.trackers and self.path is not None:
            # the epoch's checkpoint is submitted, so the previous (with the config) is on disk
            attrs = store.read_h5(self.path, attrs_only=True).attrs
            self.trackers = open_trackers(self.tc, self.run_id, attrs)
        self.last_epoch = int(row["epoch"])
        for t in self.trackers:
            t.log_epoch(self.last_epoch, epoch_metrics(row))

    def finish(self, ok: bool) -> None:
        """Log the final values from the run file (when it finished) and close the trackers."""
        if not self.trackers:
            return
        trackers, self.trackers = self.trackers, []
        try:
            if ok and self.path is not None and self.path.exists():
                values = final_values(self.path)
                for t in trackers:
                    t.log_summary(self.last_epoch, values)
        finally:
            for t in trackers:
                t.close(ok)


class Fanout:
    """Several training displays as one (the progress display and the trackers)."""

    def __init__(self, *reporters: Any) -> None:
        self.reporters = [r for r in reporters if r is not None]

    def on_start(self, info: dict[str, Any]) -> None:
        for r in self.reporters:
            r.on_start(info)

    def on_step(self, *args: Any) -> None:
        for r in self.reporters:
            r.on_step(*args)

    def on_epoch(self, row: dict[str, Any]) -> None:
        for r in self.reporters:
            r.on_epoch(row)


def history_rows(rec: store.H5Record) -> list[dict[str, float]]:
    """A run file's history as one dict per epoch (integer epoch, NaN kept)."""
    h = rec.group("history")
    n = len(h.get("epoch", []))
    return [{k: (int(v[i]) if k == "epoch" else float(v[i])) for k, v in h.items()
             if len(v) == n} for i in range(n)]


def sync_run(tc: TrackingConfig, path: Path) -> int:
    """Replay a stored run (any schema version) into the trackers; returns the epochs logged."""
    rec = store.read_h5(path, prefixes=("history/",))
    run_id = str(rec.attrs.get("run_id", Path(path).stem))
    rows = history_rows(rec)
    if not rows:
        raise Hw0Error(f"{path} has no history to sync (no epoch finished yet).")
    trackers = open_trackers(tc, run_id, rec.attrs)
    ok = False
    try:
        for row in rows:
            for t in trackers:
                t.log_epoch(int(row["epoch"]), epoch_metrics(row))
        values = final_values(path)
        for t in trackers:
            t.log_summary(int(rows[-1]["epoch"]), values)
        ok = True
    finally:
        for t in trackers:
            t.close(ok)
    return len(rows)


def group_name(prefix: str, parts: tuple[Any, ...]) -> str:
    """A stable, readable group name: prefix plus a short hash of what defines the group."""
    digest = hashlib.sha256(repr(parts).encode()).hexdigest()[:6]
    return f"{prefix}-{digest}"


