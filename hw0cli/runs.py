"""Run files: where they live, how to find one, and loading a model from one (no pickle)."""

from __future__ import annotations

import difflib
import functools
import math
import re
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from hw0cli import store
from hw0cli.env import device_name
from hw0cli.errors import DamagedFileError, Hw0Error, Hw0UsageError, Hw0Warning
from hw0cli.models import cnn_from_config

__all__ = ["device_name", "list_runs", "load_model", "resolve_run", "run_path", "runs_dir"]

_RUN_ID = re.compile(r"^[A-Za-z0-9._][A-Za-z0-9._-]{0,127}$")  # no leading '-': not an option


def valid_run_id(run_id: str) -> bool:
    return bool(_RUN_ID.match(run_id)) and run_id not in (".", "..")


def runs_dir(out: Path) -> Path:
    return Path(out) / "runs"


def run_path(out: Path, run_id: str) -> Path:
    return runs_dir(out) / f"{run_id}.h5"


def run_ids(out: Path) -> list[str]:
    d = runs_dir(out)
    return sorted(p.stem for p in d.glob("*.h5")) if d.is_dir() else []


def closest_hint(out: Path, run_id: str) -> str:
    ids = run_ids(out)
    if not ids:
        return f"No runs exist under {runs_dir(out)} yet: train one with `hw0 train`."
    close = difflib.get_close_matches(run_id, ids, n=3, cutoff=0.3) or ids[-3:]
    return "Closest existing runs: " + ", ".join(close) + " (see `hw0 runs`)."


@dataclass(frozen=True)
class ViewFigure:
    """The one test accuracy shown for a view of a run, and what measured it."""

    accuracy: float
    source: str  # "hw0 eval: onnxruntime cpu, fp32" or "training's final check: torch, bf16"


@dataclass(frozen=True)
class RunSummary:
    run_id: str
    path: Path
    status: str
    config: dict[str, Any]
    epochs_done: int
    train_err: float  # "train err (running)" of the last epoch (hw0cli.quantities)
    test_err: float  # the last epoch's test error, as training measured it
    seconds: float  # the kept epochs' training seconds (the history's sum)
    ended: str
    test_acc_views: dict[str, float]  # training's final check (torch, the trained precision)
    eval: dict[str, dict[str, Any]]  # hw0 eval's stored scalars per view (eval/<view>/...)
    locked: bool
    full_train_err: float = math.nan  # "full-train err": the last one measured
    precision: str = ""
    partial_s: float = 0.0  # seconds trained in epochs an interruption cut short

    @property
    def trained_s(self) -> float:
        """The time the run trained: its kept epochs and any cut short by an interruption."""
        return self.seconds + self.partial_s

    @property
    def figures(self) -> dict[str, ViewFigure]:
        """One test accuracy per view: `hw0 eval`'s stored result where it exists, else
        training's final check."""
        out = {}
        for view, acc in self.test_acc_views.items():
            out[view] = ViewFigure(float(acc), f"training's final check: torch, "
                                               f"{self.precision or '?'}")
        for view, e in self.eval.items():
            if "accuracy" in e:
                out[view] = ViewFigure(float(e["accuracy"]), eval_source(e))
        return out

    def to_json(self) -> dict[str, Any]:
        c = self.config
        figures = self.figures
        return {"run_id": self.run_id, "path": str(self.path), "status": self.status,
                "width": c.get("width"), "noise": c.get("noise"), "epochs": self.epochs_done,
                "train_err": self.train_err, "train_eval_err": self.full_train_err,
                "test_err": self.test_err, "seconds": self.seconds,
                "trained_seconds": self.trained_s, "ended": self.ended,
                "test_acc": {v: f.accuracy for v, f in figures.items()},
                "test_acc_source": {v: f.source for v, f in figures.items()},
                "test_acc_views": self.test_acc_views, "config": c, "eval": self.eval}


def eval_source(e: dict[str, Any]) -> str:
    """How `hw0 eval` measured a stored view: its backend, provider and precision."""
    backend, provider = str(e.get("backend", "")), str(e.get("provider", "?"))
    if backend == "torch" or provider.startswith("torch"):
        return f"hw0 eval: {provider}"
    return f"hw0 eval: onnxruntime {provider}, {e.get('model', 'fp32')}"


def summarize(path: Path) -> RunSummary:
    rec = store.read_h5(path, prefixes=("history/", "eval/"))
    a, h = rec.attrs, rec.group("history")
    last = {k: float(v[-1]) if len(v) else float("nan") for k, v in h.items()}
    evals: dict[str, dict[str, Any]] = {}
    for name, arr in rec.group("eval").items():
        view, key = name.split("/", 1)
        if np.ndim(arr) == 0:
            evals.setdefault(view, {})[key] = arr.item()
    return RunSummary(
        run_id=str(a.get("run_id", path.stem)), path=path, status=str(a.get("status", "?")),
        config=a.get("config") or {}, epochs_done=int(a.get("epochs_done", 0)),
        train_err=last.get("train_err", float("nan")), test_err=last.get("test_err", float("nan")),
        seconds=float(np.sum(h["seconds"])) if "seconds" in h else 0.0,
        ended=str(a.get("ended") or ""), test_acc_views=a.get("test_acc_views") or {},
        eval=evals, locked=store.is_locked(path),
        full_train_err=last_finite(h.get("train_eval_err", [])),
        precision=str(a.get("precision") or ""), partial_s=float(a.get("partial_s") or 0.0),
    )


def list_runs(out: Path) -> list[RunSummary]:
    """Every readable run under `<out>/runs`, oldest first (by file time); a damaged file is
    skipped with a warning (`Hw0Warning`)."""
    d = runs_dir(out)
    if not d.is_dir():
        return []
    found = []
    for p in sorted(d.glob("*.h5"), key=lambda q: q.stat().st_mtime):
        try:
            found.append(summarize(p))
        except DamagedFileError as exc:  # the others still list
            warnings.warn(f"skipped {exc}", Hw0Warning, stacklevel=2)
        except Hw0Error:
            continue  # not an hw0 run (another schema): `hw0 grid status` reports it
    return found


def resolve_run(out: Path, run: str | None) -> Path:
    """A run id or .h5 path -> its file; None -> the most recently finished run."""
    if run is None:
        done = [r for r in list_runs(out) if r.status == "finished"]
        if not done:
            raise Hw0UsageError(f"No finished run under {runs_dir(out)}. Train one with "
                                "`hw0 train`, or name a run file.")
        return max(done, key=lambda r: (r.ended, r.path.stat().st_mtime)).path
    p = Path(run)
    if p.suffix == ".h5" and p.is_file():
        return p
    if valid_run_id(run) and run_path(out, run).is_file():
        return run_path(out, run)
    if p.suffix == ".h5" or len(p.parts) > 1:  # a file name, not a run id
        raise Hw0UsageError(f"File not found: {p}. Name a run file that exists, or a run id "
                            f"under {runs_dir(out)} (see `hw0 runs`).")
    raise Hw0UsageError(f"No run '{run}' under {runs_dir(out)}. " + closest_hint(out, run))


def require_trained(path: Path, attrs: dict[str, Any] | None = None) -> str | None:
    """Refuse a run that has not finished an epoch (its weights are the random start); for an
    unfinished run with epochs done, a warning to show (None for a finished run). `attrs`: the
    run file's attributes where already read."""
    a = store.read_h5(path, attrs_only=True).attrs if attrs is None else attrs
    status, done = str(a.get("status", "?")), int(a.get("epochs_done", 0))
    run_id = str(a.get("run_id", path.stem))
    if status == "finished":
        return None
    epochs = (a.get("config") or {}).get("epochs", "?")
    if done == 0:
        raise Hw0UsageError(
            f"Run '{run_id}' is {status} and has not finished an epoch: its weights are the "
            "random initial ones, so there is nothing to evaluate. Finish it by running the "
            "`hw0 train` command that started it again (`hw0 runs` lists its settings), then "
            f"`hw0 eval {run_id}`.")
    return (f"warning: run '{run_id}' is {status} after epoch {done} of {epochs}: these are "
            "the weights of its last completed epoch, not of a finished run. Run its `hw0 "
            "train` command again to finish it.")


def state_dict_from(rec: store.H5Record, device: torch.device | str = "cpu") -> dict:
    w = rec.group("weights")
    if not w:
        raise Hw0Error("The run file holds no weights (group 'weights/' is empty or missing); "
                       "it is not a trained run. Train it with `hw0 train`.")
    return {k: torch.from_numpy(np.array(v)).to(device) for k, v in w.items()}


def load_model(path: Path, device: torch.device | str = "cpu") -> tuple[nn.Module, dict]:
    """Rebuild the run's Myrtle5 from its config and load its HDF5 weights (eval mode)."""
    return model_from_record(store.read_h5(path, prefixes=("weights/",)), path, device)


def model_from_record(rec: store.H5Record, path: Path,
                      device: torch.device | str = "cpu") -> tuple[nn.Module, dict]:
    """The run's Myrtle5 (eval mode) and attributes from a read that includes `weights/`."""
    cfg = rec.attrs.get("config") or {}
    if "width" not in cfg:
        raise Hw0Error(f"{path} has no training config; it is not an hw0 run file.")
    model = cnn_from_config(cfg)
    try:
        model.load_state_dict(state_dict_from(rec))
    except RuntimeError as exc:
        raise Hw0Error(f"The weights in {path} do not fit a width-{cfg['width']} Myrtle5: "
                       f"{str(exc).splitlines()[0]}") from None
    return model.to(device).eval(), rec.attrs


@dataclass(frozen=True)
class HistoryTable:
    """A run's per-epoch history: column names and one row of values per epoch."""

    run_id: str
    columns: tuple[str, ...]
    values: tuple[tuple[float | int, ...], ...]

    def rows(self) -> list[dict[str, Any]]:
        """One dict per epoch; NaN (not measured) becomes None, null in JSON."""
        return [{c: (None if isinstance(v, float) and np.isnan(v) else v)
                 for c, v in zip(self.columns, row, strict=True)} for row in self.values]

    def to_csv(self) -> str:
        """CSV with a header; a value not measured that epoch is an empty field, every other
        at float64's decimal precision (15 significant digits: 0.713, not the
        0.7130000000000001 that 1 - 0.287 leaves in binary)."""
        lines = [",".join(self.columns)]
        for row in self.values:
            lines.append(",".join("" if isinstance(v, float) and np.isnan(v)
                                  else f"{v:.15g}" if isinstance(v, float) else str(v)
                                  for v in row))
        return "\n".join(lines) + "\n"


# the history's columns, in the order training records them (other columns go after)
HISTORY_ORDER = ("epoch", "train_loss", "train_err", "test_loss", "test_err", "lr", "seconds",
                 "eval_seconds", "train_eval_err", "test_err_tta")
EVALUATED = ("test_err", "train_eval_err")  # eval_seconds counts only where one was measured


def history_table(path: Path) -> HistoryTable:
    """The history group of a run file (any schema version) as a table, in the order training
    records it (epoch first)."""
    rec = store.read_h5(path, prefixes=("history/",))
    h = rec.group("history")
    if "epoch" not in h or not len(h["epoch"]):
        raise Hw0Error(f"{path} has no history yet (no epoch finished).")
    n = len(h["epoch"])
    present = [k for k in h if len(h[k]) == n]
    cols = (*(k for k in HISTORY_ORDER if k in present),
            *sorted(k for k in present if k not in HISTORY_ORDER))
    measured = np.zeros(n, dtype=bool)
    for k in EVALUATED:
        if k in h:
            measured |= np.isfinite(np.asarray(h[k], dtype=float))

    def value(c: str, i: int) -> float | int:
        if c == "epoch":
            return int(h[c][i])
        # files written before eval_seconds was NaN on epochs without an evaluation
        return math.nan if c == "eval_seconds" and not measured[i] else float(h[c][i])
    values = tuple(tuple(value(c, i) for c in cols) for i in range(n))
    return HistoryTable(str(rec.attrs.get("run_id", path.stem)), cols, values)


def view_robustness(r: RunSummary) -> float:
    """The smallest test accuracy over the views shown (original, flipped); -1 if none."""
    return min((f.accuracy for f in r.figures.values()), default=-1.0)


def rank_by_views(found: list[RunSummary]) -> list[RunSummary]:
    """Most flip-robust first: by min(original, flipped) test accuracy."""
    return sorted(found, key=lambda r: -view_robustness(r))


def trained_with(config: dict[str, Any]) -> str:
    """How a run trained, in words, as far as flip robustness goes: 'plain' or its
    augmentation and objective."""
    how = [f"augment {config.get('augment')}" if config.get("augment") not in (None, "none")
           else "", f"{config.get('objective')} objective"
           if config.get("objective") not in (None, "standard") else ""]
    return ", ".join(x for x in how if x) or "plain"


def last_finite(values: Any, default: float | None = math.nan) -> float | None:
    """The last measured value of a history column: epochs without a measurement (a skipped
    test evaluation, a train pass not run) are stored as NaN."""
    ok = [float(v) for v in np.asarray(values, dtype=float).ravel() if math.isfinite(v)]
    return ok[-1] if ok else default


class RunFile:
    """One read of a run file for the export and evaluation path: its attributes, `export/`
    record and weights (the model is built on first use, so a run without weights is refused
    for what it is first). `pending`: what the exports found or made, for the caller to write
    in its one update of the file (`hw0 eval` reads the file once and writes it once)."""

    def __init__(self, path: Path, record: store.H5Record) -> None:
        self.path, self.record, self.attrs = path, record, record.attrs
        self.pending: dict[str, Any] = {}

    @classmethod
    def read(cls, path: Path) -> RunFile:
        return cls(path, store.read_h5(path, prefixes=("weights/", "export/")))

    @functools.cached_property
    def model(self) -> nn.Module:
        return model_from_record(self.record, self.path)[0]

    def recorded(self, group: str) -> dict[str, Any]:
        """The record of an export (`export/` or `export/<variant>/`): its scalars."""
        rec = self.record.group(group)
        return {k: v.item() if np.ndim(v) == 0 else v for k, v in rec.items() if "/" not in k}
