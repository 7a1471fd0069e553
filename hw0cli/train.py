"""Training Myrtle5 on CIFAR-10: a run's options and recipes, and its life cycle.

The options (`TrainConfig`) and named recipes live here; the device-side work (the compiled
training step, epochs, evaluation) is `hw0cli.trainer.Trainer`. A run's life cycle: resolve the
execution choices (device, precision and compile mode, measured once per machine when `auto`:
`hw0cli.probe`), resume from the run file if it exists, train epoch by epoch, and write a
checkpoint (weights, optimizer state, history) after every epoch. A checkpoint is copied to the
host at the epoch's end and written atomically by a background thread while the next epoch
trains, so a kill at any moment leaves the previous complete file. The learning rate is a pure
function of the step, so no scheduler state needs saving.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch

from hw0cli import runs, store
from hw0cli.data import CIFAR_TRAIN_SIZE, CifarData, cifar_identity, default_data_dir, load_cifar10
from hw0cli.env import PRECISIONS, environment, resolve_device, setup_compile_cache
from hw0cli.errors import Hw0Error, Hw0UsageError, check
from hw0cli.models import MAX_WIDTH, readable_names
from hw0cli.probe import Execution, choose_execution
from hw0cli.trainer import (  # re-exported: the trainer's pure pieces are part of this API
    PAD_MODES,
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

__all__ = ["TrainConfig", "Trainer", "augment_batch", "epoch_draws", "hflip", "lr_at",
           "make_config", "noisy_labels", "parse_augment", "predict_logits", "run_train",
           "subset_indices", "vflip", "worst_view_loss"]

OPTIMIZERS = ("sgd", "adam")
SCHEDULES = ("constant", "step", "cosine", "onecycle", "triangle")
OBJECTIVES = ("standard", "worst-view")
RECIPES = ("notebook", "fast", "page")
COMPILE_MODES = ("auto", "default", "reduce-overhead", "max-autotune")

# The fields that change what a run computes; they, and only they, determine the run id.
SCIENCE_FIELDS = (
    "width", "noise", "epochs", "batch_size", "lr", "momentum", "nesterov", "weight_decay",
    "optimizer", "schedule", "augment", "label_smoothing", "objective", "tta", "train_samples",
    "batchnorm", "seed", "until_train_error", "patience",
    "warmup", "drop_last", "pad_mode", "cutout", "normalize", "bias", "logit_scale",
    "tta_shift", "ema",
)
# Fields added after run ids were first handed out: they enter the id only when they differ
# from their default, so every earlier run keeps its id.
LATER_FIELDS = SCIENCE_FIELDS[SCIENCE_FIELDS.index("warmup"):]


@dataclass(frozen=True)
class TrainConfig:
    """One training run. Defaults are the course notebook's recipe."""

    width: int = 64  # channels of the first conv; the net has c, 2c, 4c, 8c
    noise: float = 0.0  # probability that a training label is replaced by a uniform draw
    epochs: int = 20  # passes over the training set (the cap, with until_train_error)
    batch_size: int = 128  # images per SGD step
    lr: float = 0.1  # peak learning rate (per-step; no batch-size scaling applied)
    momentum: float = 0.0  # SGD momentum (the notebook uses plain SGD)
    nesterov: bool = False  # Nesterov momentum (needs momentum > 0)
    weight_decay: float = 0.0  # L2 coefficient added to the gradient (torch convention)
    optimizer: str = "sgd"  # sgd | adam
    schedule: str = "constant"  # constant | step | cosine | onecycle | triangle, over all epochs
    augment: str = "none"  # none, or any of hflip, vflip, crop joined by '+' or ','
    label_smoothing: float = 0.0  # cross-entropy target smoothing (0 = plain CE)
    objective: str = "standard"  # standard | worst-view (max of loss on batch and its vflip)
    tta: bool = False  # also report test error averaged over the image and its mirror
    train_samples: int = CIFAR_TRAIN_SIZE  # seeded random subset of the 50,000 train images
    batchnorm: bool = True  # False drops every BatchNorm layer
    seed: int = 0  # seeds init, subset, label noise, batch order and augmentation
    until_train_error: float | None = None  # stop once full-train-set error <= this (0-1)
    patience: int | None = None  # stop when train error has not improved for this many epochs
    warmup: float = 0.25  # fraction of steps the onecycle/triangle lr rises over
    drop_last: bool = False  # skip each epoch's partial last batch (Page, airbench) or not
    pad_mode: str = "zeros"  # crop padding: zeros | reflect (Page)
    cutout: int = 0  # side in pixels of a square zeroed per training image (Page: 8); 0 = off
    normalize: bool = False  # standardize inputs per channel (CIFAR-10 mean/std)
    bias: bool = True  # conv and linear biases (a bias before BatchNorm is dead weight)
    logit_scale: float = 1.0  # multiply the logits by this (Page: 0.125)
    tta_shift: int = 0  # TTA also over images moved by +-this many pixels (needs --tta)
    ema: float = 0.0  # decay per step of an average of the weights that is evaluated; 0 = off
    eval_every: int = 1  # test-set evaluation every N epochs (always after the last)
    recipe: str = "notebook"  # the named defaults these settings came from (informative)
    # -- execution: how, not what (not part of the run id) --
    device: str = "auto"  # auto | cuda | cpu
    precision: str = "auto"  # auto (measured fastest here) | bf16 | fp16 | fp32
    compile: bool | None = None  # torch.compile; None = on where it works (CUDA, CPU + C++)
    compile_mode: str = "auto"  # auto (measured) | default | reduce-overhead (CUDA graphs of
    # the whole step) | max-autotune (longer compile, tuned kernels)
    data_dir: Path = field(default_factory=default_data_dir)
    out: Path = Path("artifacts")
    run_id: str | None = None  # None: derived from the science fields
    resume: bool = False  # require an existing unfinished run and continue it
    force: bool = False  # retrain even when a finished run with this id exists

    def science(self) -> dict[str, Any]:
        return science_of({k: getattr(self, k) for k in SCIENCE_FIELDS})


def science_of(stored: dict[str, Any]) -> dict[str, Any]:
    """The science settings of a stored config, as `TrainConfig.science()` gives them (keys
    that older files lack take their defaults), for matching runs to configs."""
    defaults = {f.name: f.default for f in dataclasses.fields(TrainConfig)}
    full = {k: stored.get(k, defaults[k]) for k in SCIENCE_FIELDS}
    return {k: v for k, v in full.items() if k not in LATER_FIELDS or v != defaults[k]}


def recipe_settings(recipe: str) -> dict[str, Any]:
    """The settings a named recipe stands for; explicit options override them.

    notebook: the course's recipe (plain SGD, lr 0.1, batch 128, constant lr, no augmentation).
    fast: same layer widths, a better procedure: the best accuracy found for <= 10 s of H100
      training (see the README for what was measured).
    page: David Page's training of this backbone (cifar10-fast, "How to train your ResNet"),
      option by option; the control that measures what the data costs.
    """
    check(recipe in RECIPES, f"Unknown recipe '{recipe}'. Choose one of: {', '.join(RECIPES)}.")
    if recipe == "notebook":
        return {}
    page = {
        "batch_size": 512,  # Page's batch
        "optimizer": "sgd",
        "lr": 0.4,  # his peak 0.4 / 512 on a summed loss == 0.4 on the mean loss used here
        "momentum": 0.9,  # Nesterov, as his `nesterov` optimizer
        "nesterov": True,
        "weight_decay": 5e-4,  # his 5e-4 x 512 on the summed loss, on every parameter
        "schedule": "triangle",  # piecewise linear [0, 5, 24] epochs -> [0, 0.4, 0]
        "warmup": 5 / 24,
        "augment": "hflip+crop",  # FlipLR and Crop(32, 32) of the 4-pixel padded image
        "pad_mode": "reflect",  # his pad() is np.pad(mode="reflect")
        "cutout": 8,  # Cutout(8, 8), a square inside the image
        "normalize": True,  # normalise() with the CIFAR-10 mean and std
        "bias": False,  # conv_bn(..., bias=False); Linear(512, 10, bias=False)
        "logit_scale": 0.125,  # Mul(weight=0.125) on the classifier output
        "drop_last": True,  # Batches(..., drop_last=True) for training
    }
    if recipe == "page":
        return page
    return {
        **page,
        "cutout": 0,  # measured: c = 16, 10 epochs, 80.10% without; cutout regularizes a net
        # that still underfits at this budget (train error 20%)
        "label_smoothing": 0.2,  # airbench's value: calmer logits, better test error
        "tta": True,  # flip TTA reported beside the plain accuracy
    }


def make_config(recipe: str = "notebook", **options: Any) -> TrainConfig:
    """A TrainConfig from a recipe plus explicit options (None means 'use the default')."""
    settings = recipe_settings(recipe)
    settings.update({k: v for k, v in options.items() if v is not None})
    return TrainConfig(recipe=recipe, **settings)


def validate(cfg: TrainConfig) -> None:
    """Raise Hw0UsageError with a fix-it message for any out-of-range setting."""
    check(1 <= cfg.width <= MAX_WIDTH, f"--width must be between 1 and {MAX_WIDTH} (got "
          f"{cfg.width}); the course uses 4 to 64.")
    check(0.0 <= cfg.noise <= 1.0, f"--noise is a probability: it must be in [0, 1] (got "
          f"{cfg.noise}).")
    check(cfg.epochs >= 1, f"--epochs must be at least 1 (got {cfg.epochs}).")
    check(1 <= cfg.train_samples <= CIFAR_TRAIN_SIZE, "--train-samples must be between 1 and "
          f"{CIFAR_TRAIN_SIZE} (got {cfg.train_samples}).")
    check(1 <= cfg.batch_size <= cfg.train_samples, "--batch-size must be between 1 and the "
          f"number of training images ({cfg.train_samples}); got {cfg.batch_size}.")
    check(cfg.lr > 0 and math.isfinite(cfg.lr), f"--lr must be positive (got {cfg.lr}).")
    check(0.0 <= cfg.momentum < 1.0, f"--momentum must be in [0, 1) (got {cfg.momentum}).")
    check(not cfg.nesterov or cfg.momentum > 0, "--nesterov needs --momentum > 0.")
    check(cfg.weight_decay >= 0, f"--weight-decay must be >= 0 (got {cfg.weight_decay}).")
    check(cfg.optimizer in OPTIMIZERS, f"Unknown optimizer '{cfg.optimizer}'. Choose one of: "
          f"{', '.join(OPTIMIZERS)}.")
    check(cfg.schedule in SCHEDULES, f"Unknown schedule '{cfg.schedule}'. Choose one of: "
          f"{', '.join(SCHEDULES)}.")
    parse_augment(cfg.augment)
    check(0.0 <= cfg.label_smoothing < 1.0, "--label-smoothing must be in [0, 1).")
    check(cfg.objective in OBJECTIVES, f"Unknown objective '{cfg.objective}'. Choose one of: "
          f"{', '.join(OBJECTIVES)}.")
    check(cfg.until_train_error is None or 0.0 <= cfg.until_train_error < 1.0,
          "--until-train-error is a fraction in [0, 1) (e.g. 0.01 for 1%).")
    check(cfg.precision in PRECISIONS, f"Unknown precision '{cfg.precision}'. Choose one of: "
          f"{', '.join(PRECISIONS)}.")
    check(cfg.compile_mode in COMPILE_MODES, f"Unknown compile mode '{cfg.compile_mode}'. "
          f"Choose one of: {', '.join(COMPILE_MODES)}.")
    check(cfg.patience is None or cfg.patience >= 1, "--patience must be at least 1 epoch.")
    check(cfg.eval_every >= 1, f"--eval-every must be at least 1 (got {cfg.eval_every}).")
    check(0.0 < cfg.warmup < 1.0, f"--warmup is a fraction of the steps in (0, 1) (got "
          f"{cfg.warmup}).")
    check(cfg.pad_mode in PAD_MODES, f"Unknown padding mode '{cfg.pad_mode}'. Choose one of: "
          f"{', '.join(PAD_MODES)}.")
    check(0 <= cfg.cutout <= 32, f"--cutout is a square's side in pixels, 0 (off) to 32 (got "
          f"{cfg.cutout}).")
    check(cfg.logit_scale > 0 and math.isfinite(cfg.logit_scale),
          f"--logit-scale must be positive (got {cfg.logit_scale}).")
    check(cfg.ema == 0.0 or 0.5 <= cfg.ema < 1.0, f"--ema is a decay per step in [0.5, 1), "
          f"or 0 for off (got {cfg.ema}); 0.99 averages about the last 100 steps.")
    check(0 <= cfg.tta_shift <= 8, f"--tta-shift must be 0 to 8 pixels (got {cfg.tta_shift}).")
    check(cfg.tta_shift == 0 or cfg.tta, "--tta-shift adds views to the flip TTA: add --tta.")
    check(cfg.run_id is None or runs.valid_run_id(cfg.run_id), "--run-id may use letters, "
          "digits, '.', '_' and '-' only (it names a file).")


def run_id_for(cfg: TrainConfig) -> str:
    """Readable and stable: same science settings, same id."""
    digest = hashlib.sha256(json.dumps(cfg.science(), sort_keys=True).encode()).hexdigest()[:8]
    return f"c{cfg.width}-p{cfg.noise:g}-e{cfg.epochs}-s{cfg.seed}-{digest}"


# ---------------------------------------------------------------------------------------------
# the run


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
        compile_mode=execution.get("compile_mode"),
    )


def _config_json(cfg: TrainConfig) -> dict[str, Any]:
    d = dataclasses.asdict(cfg)
    d["data_dir"], d["out"] = str(cfg.data_dir), str(cfg.out)
    return d


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
                    "Pick another --run-id, or pass --force to replace it.")
            status = rec.attrs.get("status")
            if cfg.force:
                rec = None
            elif status == "finished":
                return _result_from_record(rec, path, "skipped")
            elif status == "diverged":
                raise Hw0Error(f"Run '{run_id}' diverged earlier ({rec.attrs.get('message')}). "
                               "Lower --lr, or pass --force to train it again from scratch.")
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
            "run_id": run_id, "kind": "train", "status": "running", "config": _config_json(cfg),
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
                            for k, v in train_w.items()} or None)
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
                f"{self.path}; run the same command again (or add --resume) to continue from "
                "there.", exit_code=130) from None
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
        self.checkpoint("finished" if done else "running")
        if self.reporter:
            self.reporter.on_epoch(row)
        return done

    def _diverged(self, epoch: int, loss: float) -> None:
        self.writer.wait()
        msg = (f"training diverged in epoch {epoch} (train loss {loss}); the checkpoint of "
               f"epoch {epoch - 1} is kept")
        store.update_h5(self.path, attrs={"status": "diverged", "message": msg})
        raise Hw0Error(f"Run '{self.run_id}': {msg} in {self.path}. Lower --lr (now "
                       f"{self.cfg.lr}) and train again with --force.")
