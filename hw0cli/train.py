"""Training Myrtle5 on CIFAR-10: a run's life cycle.

The options (`TrainConfig`) and named recipes are declared in `hw0cli.train_options` (re-exported
here); the device-side work (the compiled training step, epochs, evaluation) is
`hw0cli.trainer.Trainer`. A run's life cycle: resolve the execution choices (device, precision
and compile mode, measured once per machine when `auto`: `hw0cli.probe`), resume from the run
file if it exists, train epoch by epoch, and write a checkpoint (weights, optimizer state,
history) after every epoch. A checkpoint is copied to the host at the epoch's end and written
atomically by a background thread while the next epoch trains, so a kill at any moment leaves
the previous complete file. The learning rate is a pure function of the step, so no scheduler
state needs saving.
"""

from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch

from hw0cli import runs, store
from hw0cli.data import CifarData, cifar_identity, load_cifar10
from hw0cli.env import environment, resolve_device, setup_compile_cache
from hw0cli.errors import Hw0Error, Hw0UsageError
from hw0cli.models import readable_names
from hw0cli.options import flag
from hw0cli.probe import Execution, choose_execution
from hw0cli.train_options import (  # re-exported: scripts and tests import them from here
    LATER_FIELDS,
    SCIENCE_FIELDS,
    TrainConfig,
    config_json,
    make_config,
    recipe_settings,
    run_id_for,
    science_of,
    validate,
)
from hw0cli.trainer import (  # re-exported: the trainer's pure pieces are part of this API
    Trainer,
    augment_batch,
    epoch_draws,
    hflip,
    lr_at,
    noisy_labels,
    parse_augment,
    predict_logits,
    subset_indices,
    vflip,
    worst_view_loss,
)

__all__ = ["LATER_FIELDS", "SCIENCE_FIELDS", "TrainConfig", "Trainer", "augment_batch",
           "epoch_draws", "hflip", "lr_at", "make_config", "noisy_labels", "parse_augment",
           "predict_logits", "recipe_settings", "run_id_for", "run_train", "science_of",
           "subset_indices", "validate", "vflip", "worst_view_loss"]

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
    tta_inference_s: float | None = None  # the final TTA inference of the test set (with --tta)

    def to_json(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["path"] = str(self.path)
        return d


HISTORY_KEYS = ("epoch", "train_loss", "train_err", "test_loss", "test_err", "lr", "seconds",
                "eval_seconds", "train_eval_err", "test_err_tta")


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
    )


def _diff(stored: dict[str, Any], cfg: TrainConfig) -> list[str]:
    defaults = {f.name: f.default for f in dataclasses.fields(cfg)}
    return [f"{k}: stored {stored.get(k, defaults[k])!r}, now {v!r}"
            for k, v in cfg.science().items() if stored.get(k, defaults[k]) != v]


def run_train(cfg: TrainConfig, reporter: TrainReporter | None = None,
              data: CifarData | None = None) -> TrainResult:
    """Train (or resume, or report the finished) run described by `cfg`."""
    validate(cfg)
    device = resolve_device(cfg.device)
    run_id = cfg.run_id or run_id_for(cfg)
    path = runs.run_path(cfg.out, run_id)
    if data is None:
        data = load_cifar10(cfg.data_dir)
    with store.lock(path):
        start_epoch, rec = 0, None
        if path.exists():
            rec = store.read_h5(path)
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
        setup_compile_cache()
        execution = choose_execution(cfg, device)
        return _Run(cfg, data, device, execution, run_id, path, rec, reporter).train(start_epoch)


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
        self.resumed = rec is not None
        if rec is not None:
            self._load(rec, device)
        self.labels = {"labels/train_used": tr.y_used, "labels/noise_mask": tr.mask,
                       "labels/train_indices": tr.idx, "labels/train_true": tr.y_true}

    def _load(self, rec: store.H5Record, device: torch.device) -> None:
        train_w = rec.group("train_weights")
        self.tr.load_state(runs.state_dict_from(rec, device), rec.group("optim/state"),
                           rec.attrs["optim_param_groups"],
                           {k: torch.from_numpy(np.array(v)).to(device)
                            for k, v in train_w.items()} or None, rec.group("lookahead"))
        self.history = {k: [float(v) for v in rec.group("history").get(k, [])]
                        for k in HISTORY_KEYS}
        a = rec.attrs
        self.attrs.update({k: a[k] for k in ("started", "reached_train_error_epoch") if k in a})
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
                "epochs": cfg.epochs, "steps_per_epoch": tr.steps_per_epoch})
        if not self.resumed:
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
            if self.path.exists():
                store.update_h5(self.path, attrs={"status": "interrupted"})
            raise Hw0Error(
                f"Interrupted. Run '{self.run_id}' keeps its last completed epoch in "
                f"{self.path}; run the same command again (or add {_opt('resume')}) to continue "
                "from there.", exit_code=130) from None
        except BaseException:
            self.writer.wait()
            raise
        result = _result_from_record(store.read_h5(self.path, prefixes=("history",)),
                                     self.path, "finished")
        result.resumed_from = start_epoch
        return result

    def epoch(self, epoch: int) -> bool:
        """Train and evaluate one epoch, record it, checkpoint; True when the run is done."""
        cfg, tr, history = self.cfg, self.tr, self.history
        row: dict[str, Any] = {"epoch": epoch, **tr.train_epoch(epoch, self.reporter)}
        if not math.isfinite(row["train_loss"]):
            self._diverged(epoch, row["train_loss"])
        errs = [*history["train_err"], row["train_err"]]
        stalled = (cfg.patience is not None and len(errs) > cfg.patience
                   and min(errs[-cfg.patience:]) > min(errs[:-cfg.patience]) - 1e-3)
        # the full-train pass only once the running error is within 10 points of the target:
        # it costs a third of an epoch, and eval-mode error is below the running one
        target = cfg.until_train_error
        row.update(tr.evaluate(test=False, train=target is not None
                               and row["train_err"] <= target + 0.10))
        reached = target is not None and row["train_eval_err"] <= target
        done = reached or stalled or epoch == cfg.epochs
        if done or epoch % cfg.eval_every == 0:  # a skipped test eval is recorded as NaN
            seconds = row["eval_seconds"]
            row.update({k: v for k, v in tr.evaluate(test=True).items()
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
                row["train_eval_err"] = tr.evaluate(test=False, train=True)["train_eval_err"]
                history["train_eval_err"][-1] = row["train_eval_err"]
            self.attrs["test_acc_views"] = tr.view_accuracy(row["test_err"])
            if "tta_seconds" in row:
                self.attrs["tta_inference_s"] = row["tta_seconds"]
        self.checkpoint("finished" if done else "running")
        if self.reporter:
            self.reporter.on_epoch(row)
        return done

    def _diverged(self, epoch: int, loss: float) -> None:
        self.writer.wait()
        msg = (f"training diverged in epoch {epoch} (train loss {loss}); the checkpoint of "
               f"epoch {epoch - 1} is kept")
        store.update_h5(self.path, attrs={"status": "diverged", "message": msg})
        raise Hw0Error(f"Run '{self.run_id}': {msg} in {self.path}. Lower {_opt('lr')} (now "
                       f"{self.cfg.lr}) and train again with {_opt('force')}.")
