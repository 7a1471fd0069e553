"""Training Myrtle5 on CIFAR-10: a run's life cycle.

The options (`TrainConfig`) and named recipes are declared in `hw0cli.train.config`; the device-
side work (the compiled training step, epochs, evaluation) is `hw0cli.train.trainer`. A run's
life cycle: resolve the execution choices (device, precision and compile mode, measured once per
machine when `auto`: `hw0cli.train.probe`), resume from the run file if it exists, train epoch
by epoch, and write a checkpoint (weights, optimizer state, history) after every epoch. A
checkpoint is copied to the host at the epoch's end and written atomically by a background
thread while the next epoch trains, so a kill at any moment leaves the previous complete file.
The learning rate is a pure function of the step, so no scheduler state needs saving.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch

from hw0cli import runs, store
from hw0cli.choices import CIFAR_TEST_SIZE
from hw0cli.data import CifarData, load_cifar10
from hw0cli.datafiles import cifar_identity
from hw0cli.env import environment, resolve_device, setup_compile_cache
from hw0cli.errors import DamagedFileError, Hw0Error, Hw0UsageError
from hw0cli.memory import is_out_of_memory
from hw0cli.models import readable_names
from hw0cli.options import flag
from hw0cli.train.config import (
    TrainConfig,
    config_json,
    run_id_for,
    validate,
)
from hw0cli.train.memory import check_training_fits, out_of_memory_error
from hw0cli.train.parts import nonfinite_names
from hw0cli.train.probe import Execution, choose_execution, resumed_execution
from hw0cli.train.trainer import Trainer

# ---------------------------------------------------------------------------------------------
# the run


def _opt(name: str) -> str:
    """How messages name an option: its flag, from its declaration."""
    return flag(TrainConfig, name)


class TrainReporter(Protocol):
    """What the trainer tells a display. All methods are optional to act on."""

    def on_start(self, info: dict[str, Any]) -> None: ...
    def on_step(self, epoch: int, step: int, nsteps: int, loss: float, acc: float,
                images_per_s: float) -> None: ...
    def on_epoch(self, row: dict[str, Any]) -> None: ...


@dataclass
class TrainResult:
    run_id: str
    path: Path
    status: str  # finished | skipped (already finished)
    epochs_done: int
    train_loss: float
    train_err: float
    test_loss: float
    test_err: float
    seconds: float  # steady training time summed over epochs (eval and one-time excluded)
    images_per_s: float  # over the steady training time
    realized_noise: float  # fraction of training labels that differ from the true ones
    device: str
    precision: str
    one_time_s: float = 0.0  # compile, autotune, CUDA-graph capture (training and evaluation)
    test_acc_views: dict[str, float] = field(default_factory=dict)
    test_err_tta: float | None = None
    reached_train_error_epoch: int | None = None
    resumed_from: int = 0
    compile_mode: str | None = None  # None: eager
    train_eval_err: float = math.nan  # "full-train err": eval mode, whole set (last measured)
    processes: int = 1  # processes that trained it (a resumed run: each paid its one-time cost)
    tta_inference_s: float | None = None  # the final TTA inference of the test set (with --tta)
    tta_shift: int = 0  # the TTA's views: the mirror, and with s > 0 shifts by +-s pixels

    def to_json(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["path"] = str(self.path)
        return d


HISTORY_KEYS = runs.HISTORY_ORDER  # one row per epoch, these columns


def _one_time(a: dict[str, Any], epoch_seconds: np.ndarray) -> tuple[float, float]:
    """(one-time seconds inside the training epochs, one-time seconds in all): measured by the
    trainer in newer files; older files: the first epoch's excess over the median epoch."""
    one = a.get("one_time")
    if isinstance(one, dict):
        return float(one.get("train_s", 0.0)), float(one.get("total_s", 0.0))
    ep = epoch_seconds
    guess = float(max(0.0, ep[0] - np.median(ep[1:]))) if len(ep) > 1 else 0.0
    return guess, guess


def _result_from_record(rec: store.H5Record, path: Path, status: str) -> TrainResult:
    a = rec.attrs
    h = rec.group("history")
    last = {k: float(h[k][-1]) for k in HISTORY_KEYS if k in h and len(h[k])}
    ep = np.asarray(h.get("seconds", []), dtype=float)
    in_train, one_time = _one_time(a, ep)
    secs = max(0.0, float(np.sum(ep)) - in_train)
    n_train = int(a.get("n_train", 0))
    views = a.get("test_acc_views") or {}
    tta = last.get("test_err_tta")
    execution = a.get("execution") or {}
    return TrainResult(
        run_id=a["run_id"], path=path, status=status, epochs_done=int(a.get("epochs_done", 0)),
        train_loss=last.get("train_loss", math.nan), train_err=last.get("train_err", math.nan),
        test_loss=last.get("test_loss", math.nan), test_err=last.get("test_err", math.nan),
        seconds=secs, images_per_s=n_train * int(a.get("epochs_done", 0)) / secs if secs else 0.0,
        one_time_s=one_time,
        realized_noise=float(a.get("realized_noise", 0.0)), device=str(a.get("device", "")),
        precision=str(a.get("precision", "")), test_acc_views=dict(views),
        test_err_tta=None if tta is None or math.isnan(tta) else tta,
        reached_train_error_epoch=a.get("reached_train_error_epoch"),
        compile_mode=execution.get("compile_mode"), tta_inference_s=a.get("tta_inference_s"),
        train_eval_err=runs.last_finite(h.get("train_eval_err", [])),
        processes=1 + len(a.get("resumed_at") or []),
        tta_shift=int((a.get("config") or {}).get("tta_shift", 0)),
    )


def _diff(stored: dict[str, Any], cfg: TrainConfig) -> list[str]:
    defaults = {f.name: f.default for f in dataclasses.fields(cfg)}
    return [f"{k}: stored {stored.get(k, defaults[k])!r}, now {v!r}"
            for k, v in cfg.science().items() if stored.get(k, defaults[k]) != v]


def _existing(path: Path, force: bool) -> store.H5Record | None:
    """The run file at `path`; None where it is damaged and --force starts the run over."""
    try:
        return store.read_h5(path)
    except DamagedFileError:
        if not force:
            raise
        return None


def run_train(cfg: TrainConfig, reporter: TrainReporter | None = None,
              data: CifarData | Callable[[], CifarData] | None = None) -> TrainResult:
    """Train (or resume, or report the finished) run described by `cfg`. `data`: the data
    set, or a function that loads it, called only once the run file's state is known (a
    finished run, or one another process is writing, is reported without loading it)."""
    validate(cfg)
    device = resolve_device(cfg.device)
    run_id = cfg.run_id or run_id_for(cfg)
    path = runs.run_path(cfg.out, run_id)
    # before anything is written; the test set's size without reading the data set
    n_test = len(data.test_y) if isinstance(data, CifarData) else CIFAR_TEST_SIZE
    check_training_fits(cfg, device, n_test)
    with store.lock(path):
        start_epoch, rec = 0, None
        if path.exists() and (rec := _existing(path, cfg.force)) is not None:
            diff = _diff(rec.attrs.get("config") or {}, cfg)
            if diff and not cfg.force:
                raise Hw0UsageError(
                    f"Run '{run_id}' exists with a different configuration ({'; '.join(diff)}). "
                    f"Pick another {_opt('run_id')}, or pass {_opt('force')} to replace it.")
            status = rec.attrs.get("status")
            if cfg.force:
                rec = None
            elif status == "finished":
                return _result_from_record(rec, path, "skipped")
            elif status == "diverged":
                raise Hw0Error(f"Run '{run_id}' diverged earlier ({rec.attrs.get('message')}). "
                               f"Lower {_opt('lr')}, or pass {_opt('force')} to train it again "
                               "from scratch.")
            else:
                start_epoch = int(rec.attrs.get("epochs_done", 0))
        elif cfg.resume:
            raise Hw0UsageError(f"There is no run '{run_id}' to resume under "
                                f"{runs.runs_dir(cfg.out)}. " + runs.closest_hint(cfg.out, run_id))
        data = data() if callable(data) else data if data is not None else \
            load_cifar10(cfg.data_dir)
        setup_compile_cache()
        execution = (choose_execution(cfg, device) if rec is None
                     else resumed_execution(cfg, device, rec.attrs, run_id))
        try:
            return _Run(cfg, data, device, execution, run_id, path, rec,
                        reporter).train(start_epoch)
        except (RuntimeError, MemoryError) as exc:
            if not is_out_of_memory(exc):
                raise
            raise out_of_memory_error(cfg, device, len(data.test_y), exc, path) from None


class _Run:
    """One run's life: the trainer, its attributes and history, checkpoints, the epoch loop."""

    def __init__(self, cfg: TrainConfig, data: CifarData, device: torch.device,
                 execution: Execution, run_id: str, path: Path, rec: store.H5Record | None,
                 reporter: TrainReporter | None) -> None:
        self.cfg, self.run_id, self.path, self.reporter = cfg, run_id, path, reporter
        self.execution = execution
        self.tr = tr = Trainer(cfg, data, device, execution.precision, execution.compile_mode)
        self.writer = store.BackgroundWriter()
        self.history: dict[str, list[float]] = {k: [] for k in HISTORY_KEYS}
        self.attrs: dict[str, Any] = {
            "run_id": run_id, "kind": "train", "status": "running", "config": config_json(cfg),
            "env": environment(device), "device": runs.device_name(device),
            "precision": execution.precision, "compile": execution.compile_mode is not None,
            "execution": {**execution.to_json(), "whole_step_graph": tr.fullgraph},
            "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "n_train": tr.n, "realized_noise": tr.realized_noise, "epochs_done": 0,
            "reached_train_error_epoch": None, "test_acc_views": {}, "message": "",
            "data": cifar_identity(cfg.data_dir), "classes": list(data.classes),
            "weight_names": readable_names(tr.model),
        }
        self.earlier_one_time = {"train_s": 0.0, "total_s": 0.0}
        self.epoch_t0: float | None = None  # when the epoch in progress started
        self.resumed = rec is not None
        if rec is not None:
            self._load(rec, device)
        self.labels = {"labels/train_used": tr.y_used, "labels/noise_mask": tr.mask,
                       "labels/train_indices": tr.idx, "labels/train_true": tr.y_true}

    def _load(self, rec: store.H5Record, device: torch.device) -> None:
        train_w = rec.group("train_weights")
        try:
            self.tr.load_state(runs.state_dict_from(rec, device), rec.group("optim/state"),
                               rec.attrs["optim_param_groups"],
                               {k: torch.from_numpy(np.array(v)).to(device)
                                for k, v in train_w.items()} or None, rec.group("lookahead"))
        except (RuntimeError, KeyError, ValueError, IndexError) as exc:
            # weights of another width or model, or optimizer state that does not match them
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise Hw0UsageError(
                f"{self.path} cannot be resumed: its weights or optimizer state do not fit the "
                f"width-{self.cfg.width} Myrtle5 its settings describe ({first}). It is "
                f"damaged or not this run's file: delete it, or pass {_opt('force')} to train "
                "the run again from scratch.") from None
        self.history = {k: [float(v) for v in rec.group("history").get(k, [])]
                        for k in HISTORY_KEYS}
        a = rec.attrs
        self.attrs.update({k: a[k] for k in ("started", "reached_train_error_epoch", "partial_s")
                           if k in a})
        self.attrs["resumed_at"] = [*(a.get("resumed_at") or []), int(a.get("epochs_done", 0))]
        if isinstance(a.get("one_time"), dict):
            self.earlier_one_time = {k: float(a["one_time"].get(k, 0.0))
                                     for k in self.earlier_one_time}

    def checkpoint(self, status: str, wait: bool = False) -> None:
        """Copy the state to the host now; write the file atomically in the background."""
        tr = self.tr
        arrays, groups = tr.state_arrays()
        arrays.update(self.labels)
        arrays.update({f"history/{k}": np.asarray(v, dtype=np.int64 if k == "epoch"
                                                  else np.float64)
                       for k, v in self.history.items()})
        self.attrs.update(
            status=status, optim_param_groups=groups, epochs_done=len(self.history["epoch"]),
            one_time={"train_s": self.earlier_one_time["train_s"] + tr.one_time_train_s,
                      "total_s": self.earlier_one_time["total_s"] + tr.one_time_s})
        if status == "finished":
            self.attrs["ended"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
        self.writer.submit(self.path, dict(self.attrs), arrays)
        if wait:
            self.writer.wait()

    def train(self, start_epoch: int) -> TrainResult:
        cfg, tr = self.cfg, self.tr
        if self.reporter:
            self.reporter.on_start({
                "run_id": self.run_id, "path": str(self.path), "device": self.attrs["device"],
                "precision": tr.precision, "compile": tr.compile_mode is not None,
                "compile_mode": tr.compile_mode, "n_train": tr.n,
                "realized_noise": tr.realized_noise, "start_epoch": start_epoch,
                "epochs": cfg.epochs, "steps_per_epoch": tr.steps_per_epoch,
                "tta_shift": cfg.tta_shift})
        if not self.resumed:
            bad = nonfinite_names(tr.state_tensors())
            if bad:  # epoch 0's checkpoint is the one a divergence in epoch 1 keeps
                raise Hw0UsageError(
                    f"The initial weights are not finite ({', '.join(bad)}): "
                    f"{_opt('init_scale')} {cfg.init_scale:g} overflows float32. Use a smaller "
                    f"{_opt('init_scale')}.")
            self.checkpoint("running")  # epoch 0: resumable even if epoch 1 is interrupted
        try:
            for epoch in range(start_epoch + 1, cfg.epochs + 1):
                if self.epoch(epoch):
                    break
            else:  # nothing left to train (resumed a run whose last epoch was saved running)
                self.checkpoint("finished")
            self.writer.wait()
        except KeyboardInterrupt:
            self.writer.wait()
            self._interrupted()
            done = len(self.history["epoch"])
            kept = (f"keeps its last completed epoch ({done}) in {self.path}; run the same "
                    f"command again (or add {_opt('resume')}) to continue from there" if done
                    else f"was stopped before its first epoch finished, so nothing trained is "
                    f"kept ({self.path} holds its settings); run the same command again to "
                    "start it")
            raise Hw0Error(f"Interrupted. Run '{self.run_id}' {kept}.", exit_code=130) from None
        except BaseException:
            self.writer.wait()
            raise
        result = _result_from_record(store.read_h5(self.path, prefixes=("history",)),
                                     self.path, "finished")
        result.resumed_from = start_epoch
        return result

    def _interrupted(self) -> None:
        """Mark the file interrupted, adding the seconds of the epoch cut short (not in the
        history) to `partial_s`: the time a run trained includes them."""
        lost = time.perf_counter() - self.epoch_t0 if self.epoch_t0 is not None else 0.0
        if self.path.exists():
            store.update_h5(self.path, attrs={
                "status": "interrupted",
                "partial_s": float(self.attrs.get("partial_s") or 0.0) + lost})

    def epoch(self, epoch: int) -> bool:
        """Train and evaluate one epoch, record it, checkpoint; True when the run is done."""
        cfg, tr, history = self.cfg, self.tr, self.history
        self.epoch_t0 = time.perf_counter()
        row: dict[str, Any] = {"epoch": epoch, **tr.train_epoch(epoch, self.reporter)}
        if not math.isfinite(row["train_loss"]) or not row["finite"]:
            self._diverged(epoch, row["train_loss"])
        errs = [*history["train_err"], row["train_err"]]
        stalled = (cfg.patience is not None and len(errs) > cfg.patience
                   and min(errs[-cfg.patience:]) > min(errs[:-cfg.patience]) - 1e-3)
        # the full-train pass only once the running error is within 10 points of the target:
        # it costs a third of an epoch, and eval-mode error is below the running one
        target = cfg.until_train_error
        row.update(tr.evaluation.evaluate(test=False, train=target is not None
                               and row["train_err"] <= target + 0.10))
        reached = target is not None and row["train_eval_err"] <= target
        done = reached or stalled or epoch == cfg.epochs
        seconds = row["eval_seconds"] if not math.isnan(row["train_eval_err"]) else 0.0
        row["eval_seconds"] = seconds or math.nan  # nothing evaluated: not measured
        if done or epoch % cfg.eval_every == 0:  # a skipped test eval is recorded as NaN
            row.update({k: v for k, v in tr.evaluation.evaluate(test=True).items()
                        if k != "train_eval_err"})
            row["eval_seconds"] += seconds
        for k in HISTORY_KEYS:
            history[k].append(float(row[k]))
        if reached and self.attrs.get("reached_train_error_epoch") is None:
            self.attrs["reached_train_error_epoch"] = epoch
        if stalled:
            self.attrs["stopped_early"] = f"no train-error improvement in {cfg.patience} epochs"
        if done:
            if math.isnan(row["train_eval_err"]):  # final train error, always eval mode
                final = tr.evaluation.evaluate(test=False, train=True)
                row["train_eval_err"] = final["train_eval_err"]
                history["train_eval_err"][-1] = row["train_eval_err"]
            self.attrs["test_acc_views"] = tr.evaluation.view_accuracy(row["test_err"])
            if "tta_seconds" in row:
                self.attrs["tta_inference_s"] = row["tta_seconds"]
        self.checkpoint("finished" if done else "running")
        if self.reporter:
            self.reporter.on_epoch(row)
        return done

    def _diverged(self, epoch: int, loss: float) -> None:
        """Stop: every checkpoint written so far is all-finite (each epoch is checked before its
        checkpoint), so the file keeps the previous epoch's."""
        self.writer.wait()
        bad = nonfinite_names(self.tr.state_tensors())
        what = f"train loss {loss}"
        if bad:
            what += f"; not finite: {', '.join(bad[:4])}" + (
                f" and {len(bad) - 4} more" if len(bad) > 4 else "")
        kept = epoch - 1
        msg = (f"training diverged in epoch {epoch} ({what}); the checkpoint of epoch {kept} "
               + ("(the initial weights) " if kept == 0 else "") + "is kept")
        store.update_h5(self.path, attrs={"status": "diverged", "message": msg})
        scale = (f", or a smaller {_opt('init_scale')} (now {self.cfg.init_scale:g})"
                 if self.cfg.init_scale != 1.0 else "")
        raise Hw0Error(f"Run '{self.run_id}': {msg} in {self.path}. Lower {_opt('lr')} (now "
                       f"{self.cfg.lr}){scale}, and train again with {_opt('force')}.")
