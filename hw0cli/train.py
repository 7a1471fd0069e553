"""Training Myrtle5 on CIFAR-10: the course recipe, done fast.

Design (after airbench): the whole training set lives on the device as uint8; each epoch draws
one index permutation (and any augmentation decisions) from a CPU generator seeded by
(seed, epoch), so an epoch's randomness does not depend on what ran before it and a resumed run
equals an uninterrupted one. Batches are gathered by index, converted to float and augmented on
the device; metrics accumulate on the device and are read once per epoch (plus a few progress
reads when a reporter is attached). The learning rate is a pure function of the step, so no
scheduler state needs saving. A checkpoint (weights, optimizer state, history) is written
atomically after every epoch.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from hw0cli import runs, store
from hw0cli.data import CIFAR_TRAIN_SIZE, CifarData, default_data_dir, load_cifar10
from hw0cli.env import environment, resolve_compile, resolve_device, resolve_precision
from hw0cli.errors import Hw0Error, Hw0UsageError, check
from hw0cli.models import MAX_WIDTH, make_cnn

OPTIMIZERS = ("sgd", "adam")
SCHEDULES = ("constant", "step", "cosine", "onecycle")
AUGMENTS = ("none", "hflip", "vflip", "crop")
OBJECTIVES = ("standard", "worst-view")
RECIPES = ("notebook", "fast")
COMPILE_MODES = ("default", "reduce-overhead", "max-autotune")
CROP_PAD = 4  # pixels of translation for `crop` (pad 4 + random 32x32 crop, the CIFAR standard)

# The fields that change what a run computes; they, and only they, determine the run id.
SCIENCE_FIELDS = (
    "width", "noise", "epochs", "batch_size", "lr", "momentum", "nesterov", "weight_decay",
    "optimizer", "schedule", "augment", "label_smoothing", "objective", "tta", "train_samples",
    "batchnorm", "seed", "until_train_error", "patience",
)


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
    schedule: str = "constant"  # constant | step | cosine | onecycle, over all epochs
    augment: str = "none"  # none, or any of hflip, vflip, crop joined by '+' or ','
    label_smoothing: float = 0.0  # cross-entropy target smoothing (0 = plain CE)
    objective: str = "standard"  # standard | worst-view (max of loss on batch and its vflip)
    tta: bool = False  # also report test error averaged over the image and its mirror
    train_samples: int = CIFAR_TRAIN_SIZE  # seeded random subset of the 50,000 train images
    batchnorm: bool = True  # False drops every BatchNorm layer
    seed: int = 0  # seeds init, subset, label noise, batch order and augmentation
    until_train_error: float | None = None  # stop once full-train-set error <= this (0-1)
    patience: int | None = None  # stop when train error has not improved for this many epochs
    eval_every: int = 1  # test-set evaluation every N epochs (always after the last)
    recipe: str = "notebook"  # the named defaults these settings came from (informative)
    # -- execution: how, not what (not part of the run id) --
    device: str = "auto"  # auto | cuda | cpu
    precision: str = "auto"  # auto | bf16 | fp16 | fp32
    compile: bool | None = None  # torch.compile; None = on where it works (CUDA, CPU + C++)
    compile_mode: str = "default"  # torch.compile mode: default | reduce-overhead (CUDA
    # graphs: fewer launches for small batches) | max-autotune (longer compile, tuned kernels)
    data_dir: Path = field(default_factory=default_data_dir)
    out: Path = Path("artifacts")
    run_id: str | None = None  # None: derived from the science fields
    resume: bool = False  # require an existing unfinished run and continue it
    force: bool = False  # retrain even when a finished run with this id exists

    def science(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in SCIENCE_FIELDS}


def recipe_settings(recipe: str) -> dict[str, Any]:
    """The settings a named recipe stands for; explicit options override them.

    notebook: the course's recipe (plain SGD, lr 0.1, batch 128, constant lr, no augmentation).
    fast: same net, a better procedure (Page/airbench-style): batch 512, Nesterov SGD with
      momentum 0.9, one-cycle lr peaking at 0.2, weight decay 5e-4, label smoothing 0.2, random
      crop + horizontal flip, and test-time flip averaging reported separately.
    """
    check(recipe in RECIPES, f"Unknown recipe '{recipe}'. Choose one of: {', '.join(RECIPES)}.")
    if recipe == "notebook":
        return {}
    return {
        "batch_size": 512,  # larger batches keep the GPU busy; one-cycle tolerates them
        "optimizer": "sgd",
        "lr": 0.4,  # peak of the one-cycle ramp: Page's value for batch 512 (mean loss)
        "momentum": 0.9,
        "nesterov": True,
        "weight_decay": 5e-4,  # the usual CIFAR value for ResNet-like nets
        "schedule": "onecycle",
        "augment": "hflip+crop",
        "label_smoothing": 0.2,  # airbench's value: calmer logits, better test error
        "tta": True,
    }


def make_config(recipe: str = "notebook", **options: Any) -> TrainConfig:
    """A TrainConfig from a recipe plus explicit options (None means 'use the default')."""
    settings = recipe_settings(recipe)
    settings.update({k: v for k, v in options.items() if v is not None})
    return TrainConfig(recipe=recipe, **settings)


def parse_augment(spec: str) -> tuple[str, ...]:
    """'hflip+crop' -> ('hflip', 'crop'); 'none' -> ()."""
    parts = [p.strip() for p in spec.replace(",", "+").split("+") if p.strip()]
    bad = [p for p in parts if p not in AUGMENTS]
    check(not bad and bool(parts), f"Unknown augmentation '{spec}'. Use none, or any of "
          "hflip, vflip, crop joined by '+' (e.g. --augment hflip+crop).")
    return tuple(p for p in parts if p != "none")


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
    check(cfg.compile_mode in COMPILE_MODES, f"Unknown compile mode '{cfg.compile_mode}'. "
          f"Choose one of: {', '.join(COMPILE_MODES)}.")
    check(cfg.patience is None or cfg.patience >= 1, "--patience must be at least 1 epoch.")
    check(cfg.eval_every >= 1, f"--eval-every must be at least 1 (got {cfg.eval_every}).")
    check(cfg.run_id is None or runs.valid_run_id(cfg.run_id), "--run-id may use letters, "
          "digits, '.', '_' and '-' only (it names a file).")


def run_id_for(cfg: TrainConfig) -> str:
    """Readable and stable: same science settings, same id."""
    digest = hashlib.sha256(json.dumps(cfg.science(), sort_keys=True).encode()).hexdigest()[:8]
    return f"c{cfg.width}-p{cfg.noise:g}-e{cfg.epochs}-s{cfg.seed}-{digest}"


# ---------------------------------------------------------------------------------------------
# pure pieces


def subset_indices(n_total: int, n: int, seed: int) -> np.ndarray:
    """The first n of a seeded permutation, sorted (all indices when n == n_total)."""
    if n >= n_total:
        return np.arange(n_total)
    return np.sort(np.random.default_rng([seed, 1]).permutation(n_total)[:n])


def noisy_labels(y: np.ndarray, p: float, seed: int,
                 num_classes: int = 10) -> tuple[np.ndarray, np.ndarray]:
    """The assignment's label noise: with probability p, replace y_i by a uniform draw.

    Returns (labels_used, mask) where mask[i] says label i was redrawn; the draw may equal the
    true label, so the realized changed fraction is about p * (1 - 1/num_classes).
    Fixed by (seed, p): the same pair always gives the same labels.
    """
    rng = np.random.default_rng([seed, 2, round(p * 1_000_000)])
    mask = rng.random(len(y)) < p
    draws = rng.integers(0, num_classes, len(y))
    return np.where(mask, draws, y).astype(np.int64), mask


def lr_at(step: int, total_steps: int, base_lr: float, schedule: str) -> float:
    """Learning rate for optimizer step `step` (0-based) of `total_steps`.

    constant: base. step: base x 0.1 after 50% and again after 75% of training.
    cosine: base * (1 + cos(pi t)) / 2. onecycle: linear from base/10 up to base over the first
    25% of steps, then linear down to 0 (the triangular schedule of fast CIFAR training).
    """
    t = step / max(1, total_steps)
    if schedule == "constant":
        return base_lr
    if schedule == "step":
        return base_lr * (0.1 ** ((t >= 0.5) + (t >= 0.75)))
    if schedule == "cosine":
        return base_lr * 0.5 * (1.0 + math.cos(math.pi * t))
    if schedule == "onecycle":
        warm = 0.25
        if t < warm:
            return base_lr * (0.1 + 0.9 * t / warm)
        return base_lr * max(0.0, (1.0 - t) / (1.0 - warm))
    raise ValueError(schedule)


def vflip(x: torch.Tensor) -> torch.Tensor:
    """Upside-down images: reverse the height axis of (N, C, H, W)."""
    return x.flip(-2)


def hflip(x: torch.Tensor) -> torch.Tensor:
    """Mirror images: reverse the width axis of (N, C, H, W)."""
    return x.flip(-1)


@dataclass
class EpochDraws:
    """All random decisions of one epoch, aligned with the permutation's positions."""

    perm: torch.Tensor  # (n,) int64
    hflip: torch.Tensor | None  # (n,) bool
    vflip: torch.Tensor | None
    shift: torch.Tensor | None  # (n, 2) int64 crop offsets in [0, 2 * CROP_PAD]


def epoch_draws(n: int, seed: int, epoch: int, ops: tuple[str, ...],
                device: torch.device) -> EpochDraws:
    g = torch.Generator().manual_seed(seed * 100_003 + epoch)
    perm = torch.randperm(n, generator=g)
    hf = torch.rand(n, generator=g) < 0.5 if "hflip" in ops else None
    vf = torch.rand(n, generator=g) < 0.5 if "vflip" in ops else None
    sh = torch.randint(0, 2 * CROP_PAD + 1, (n, 2), generator=g) if "crop" in ops else None
    return EpochDraws(*(t.to(device) if t is not None else None for t in (perm, hf, vf, sh)))


def augment_batch(x: torch.Tensor, hf: torch.Tensor | None, vf: torch.Tensor | None,
                  shift: torch.Tensor | None) -> torch.Tensor:
    """Apply per-image flips (bool masks (B,)) and crops (offsets (B, 2)) to x (B, C, H, W)."""
    if hf is not None:
        x = torch.where(hf[:, None, None, None], hflip(x), x)
    if vf is not None:
        x = torch.where(vf[:, None, None, None], vflip(x), x)
    if shift is not None:
        b, _, h, w = x.shape
        padded = F.pad(x, (CROP_PAD,) * 4)  # zero padding, as in the standard recipe
        rows = (shift[:, 0:1] + torch.arange(h, device=x.device))[:, None, :, None]
        cols = (shift[:, 1:2] + torch.arange(w, device=x.device))[:, None, None, :]
        bidx = torch.arange(b, device=x.device)[:, None, None, None]
        cidx = torch.arange(x.shape[1], device=x.device)[None, :, None, None]
        x = padded[bidx, cidx, rows, cols]
    return x


def to_input(xb_uint8: torch.Tensor) -> torch.Tensor:
    """uint8 (B, 3, 32, 32) -> float in [0, 1], channels_last (the notebook's x / 255)."""
    return (xb_uint8.float() * (1.0 / 255.0)).contiguous(memory_format=torch.channels_last)


def autocast(device: torch.device, precision: str) -> torch.autocast:
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(precision, torch.float32)
    return torch.autocast(device_type=device.type, dtype=dtype, enabled=precision != "fp32")


@torch.inference_mode()
def predict_logits(model: nn.Module, x: torch.Tensor, device: torch.device, precision: str,
                   batch_size: int = 1000, view: Callable | None = None) -> torch.Tensor:
    """Eval-mode logits (N, 10) float32 on `device` for uint8 images x (N, 3, 32, 32)."""
    was_training = model.training
    model.eval()
    out = []
    for i in range(0, len(x), batch_size):
        xb = x[i:i + batch_size].to(device, non_blocking=True)
        if view is not None:
            xb = view(xb)
        with autocast(device, precision):
            out.append(model(to_input(xb)).float())
    model.train(was_training)
    return torch.cat(out) if out else torch.empty(0, 10, device=device)


# ---------------------------------------------------------------------------------------------
# state <-> arrays


def state_to_arrays(model: nn.Module, opt: torch.optim.Optimizer) -> tuple[dict, list]:
    arrays = {f"weights/{k}": v.detach().cpu().numpy() for k, v in model.state_dict().items()}
    sd = opt.state_dict()
    for idx, st in sd["state"].items():
        for k, v in st.items():
            arrays[f"optim/state/{idx}/{k}"] = (v.detach().cpu().numpy()
                                                if torch.is_tensor(v) else np.asarray(v))
    return arrays, sd["param_groups"]


def load_optimizer(opt: torch.optim.Optimizer, rec: store.H5Record, groups: list,
                   device: torch.device) -> None:
    state: dict[int, dict[str, Any]] = {}
    for name, arr in rec.group("optim/state").items():
        idx, key = name.split("/")
        t = torch.from_numpy(np.array(arr))
        state.setdefault(int(idx), {})[key] = t if key == "step" else t.to(device)
    opt.load_state_dict({"state": state, "param_groups": groups})


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
    seconds: float  # training time summed over epochs (eval excluded)
    images_per_s: float
    realized_noise: float  # fraction of training labels that differ from the true ones
    device: str
    precision: str
    one_time_s: float = 0.0  # first epoch's excess over the median epoch: compile, autotune
    test_acc_views: dict[str, float] = field(default_factory=dict)
    test_err_tta: float | None = None
    reached_train_error_epoch: int | None = None
    resumed_from: int = 0

    def to_json(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["path"] = str(self.path)
        return d


HISTORY_KEYS = ("epoch", "train_loss", "train_err", "test_loss", "test_err", "lr", "seconds",
                "eval_seconds", "train_eval_err", "test_err_tta")


def _result_from_record(rec: store.H5Record, path: Path, status: str) -> TrainResult:
    a = rec.attrs
    h = rec.group("history")
    last = {k: float(h[k][-1]) for k in HISTORY_KEYS if k in h and len(h[k])}
    secs = float(np.sum(h["seconds"])) if "seconds" in h else 0.0
    ep = np.asarray(h.get("seconds", []), dtype=float)
    one_time = float(max(0.0, ep[0] - np.median(ep[1:]))) if len(ep) > 1 else 0.0
    n_train = int(a.get("n_train", 0))
    views = a.get("test_acc_views") or {}
    tta = last.get("test_err_tta")
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
    )


def _config_json(cfg: TrainConfig) -> dict[str, Any]:
    d = dataclasses.asdict(cfg)
    d["data_dir"], d["out"] = str(cfg.data_dir), str(cfg.out)
    return d


def _diff(stored: dict[str, Any], cfg: TrainConfig) -> list[str]:
    return [f"{k}: stored {stored.get(k)!r}, now {v!r}" for k, v in cfg.science().items()
            if stored.get(k) != v]


def run_train(cfg: TrainConfig, reporter: TrainReporter | None = None,
              data: CifarData | None = None) -> TrainResult:
    """Train (or resume, or report the finished) run described by `cfg`."""
    validate(cfg)
    device = resolve_device(cfg.device)
    precision = resolve_precision(cfg.precision, device)
    use_compile = resolve_compile(cfg.compile, device)
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
        return _train(cfg, data, device, precision, use_compile, run_id, path, rec,
                      start_epoch, reporter)


class Trainer:
    """Everything one run holds on the device, and one epoch of training or evaluation."""

    def __init__(self, cfg: TrainConfig, data: CifarData, device: torch.device, precision: str,
                 use_compile: bool) -> None:
        self.cfg, self.device, self.precision = cfg, device, precision
        self.ops = parse_augment(cfg.augment)
        available = len(data.train_y)
        if cfg.train_samples > available:
            raise Hw0UsageError(f"--train-samples {cfg.train_samples} exceeds the {available} "
                                f"training images in {cfg.data_dir}.")
        self.idx = subset_indices(available, cfg.train_samples, cfg.seed)
        self.y_true = data.train_y[self.idx]
        self.y_used, self.mask = noisy_labels(self.y_true, cfg.noise, cfg.seed)
        self.realized_noise = float(np.mean(self.y_used != self.y_true))
        self.n = len(self.idx)
        self.x_train = torch.from_numpy(data.train_x[self.idx]).to(device)
        self.y_train = torch.from_numpy(self.y_used).to(device)
        self.x_test = torch.tensor(data.test_x, device=device)  # copies the read-only cache
        self.y_test = torch.tensor(data.test_y, device=device)

        torch.manual_seed(cfg.seed)
        model = make_cnn(cfg.width, batchnorm=cfg.batchnorm)
        self.model = model.to(device, memory_format=torch.channels_last)  # uncompiled handle
        fused = {"fused": True} if device.type == "cuda" else {}  # one kernel per step
        if cfg.optimizer == "sgd":
            self.opt: torch.optim.Optimizer = torch.optim.SGD(
                self.model.parameters(), lr=cfg.lr, momentum=cfg.momentum,
                nesterov=cfg.nesterov, weight_decay=cfg.weight_decay, **fused)
        else:
            self.opt = torch.optim.Adam(self.model.parameters(), lr=cfg.lr,
                                        weight_decay=cfg.weight_decay, **fused)
        if device.type == "cuda":
            torch.backends.cudnn.benchmark = True  # autotune conv algorithms (fixed shapes)
        if use_compile and device.type == "cpu":  # inductor's harmless "no CUDA runtime" note
            logging.getLogger("torch.utils.cpp_extension").setLevel(logging.ERROR)
        # dynamic=False: the partial last batch gets its own compiled graph instead of
        # turning every batch's kernels into slower shape-generic ones
        self.fwd = (torch.compile(self.model, dynamic=False,
                                  mode=None if cfg.compile_mode == "default"
                                  else cfg.compile_mode) if use_compile else self.model)
        self.scaler = torch.amp.GradScaler(device.type, enabled=precision == "fp16")
        self.steps_per_epoch = math.ceil(self.n / cfg.batch_size)
        self.total_steps = self.steps_per_epoch * cfg.epochs
        # evaluation batch: 20,000 flip-eval images in two launches on a GPU (~1.3 GB of
        # activations per layer at c = 64); small on the CPU for cache-friendly blocks
        self.eval_bs = 10_000 if device.type == "cuda" else 500

    def _step(self, xb: torch.Tensor, yb: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        cfg = self.cfg
        with autocast(self.device, self.precision):
            if cfg.objective == "worst-view":
                # one forward over [batch; its vertical flip]; minimize the larger loss
                out, out_f = self.fwd(torch.cat([xb, vflip(xb)])).float().chunk(2)
                loss = worst_view_loss(out, out_f, yb, cfg.label_smoothing)
            else:
                out = self.fwd(xb).float()
                loss = F.cross_entropy(out, yb, label_smoothing=cfg.label_smoothing)
        self.opt.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        self.scaler.step(self.opt)
        self.scaler.update()
        return loss.detach(), out.detach()

    def train_epoch(self, epoch: int, reporter: TrainReporter | None = None,
                    max_steps: int | None = None) -> dict[str, float]:
        """One pass (or its first `max_steps` steps); metrics are read once at the end."""
        cfg, bs = self.cfg, self.cfg.batch_size
        draws = epoch_draws(self.n, cfg.seed, epoch, self.ops, self.device)
        steps = self.steps_per_epoch if max_steps is None else min(max_steps,
                                                                    self.steps_per_epoch)
        report_every = max(1, steps // 25)  # progress reads (host syncs) per epoch
        self.model.train()
        loss_sum = torch.zeros((), device=self.device)
        correct = torch.zeros((), device=self.device, dtype=torch.int64)
        seen, lr = 0, cfg.lr
        t0 = time.perf_counter()
        for s in range(steps):
            lr = lr_at((epoch - 1) * self.steps_per_epoch + s, self.total_steps, cfg.lr,
                       cfg.schedule)
            for g in self.opt.param_groups:
                g["lr"] = lr
            sel = slice(s * bs, (s + 1) * bs)
            bi = draws.perm[sel]
            xb = augment_batch(self.x_train[bi],
                               None if draws.hflip is None else draws.hflip[sel],
                               None if draws.vflip is None else draws.vflip[sel],
                               None if draws.shift is None else draws.shift[sel])
            yb = self.y_train[bi]
            loss, out = self._step(to_input(xb), yb)
            loss_sum += loss * len(bi)
            correct += (out.argmax(1) == yb).sum()
            seen += len(bi)
            if reporter and (s + 1) % report_every == 0:
                reporter.on_step(epoch, s + 1, steps, loss_sum.item() / seen,
                                 correct.item() / seen, seen / (time.perf_counter() - t0))
        train_loss = loss_sum.item() / seen  # the epoch's one host sync
        train_err = 1.0 - correct.item() / seen
        return {"train_loss": train_loss, "train_err": train_err, "lr": lr, "images": seen,
                "seconds": time.perf_counter() - t0}

    def logits(self, x: torch.Tensor, view: Callable | None = None) -> torch.Tensor:
        return predict_logits(self.fwd, x, self.device, self.precision, self.eval_bs, view)

    def evaluate(self, test: bool = True, train: bool = False) -> dict[str, float]:
        """Test loss/error (plain CE) and flip-TTA error when `test`; the full-train error
        (eval mode, on the labels trained on) when `train`; NaN for what was not asked."""
        t1 = time.perf_counter()
        res = {"test_loss": math.nan, "test_err": math.nan, "test_err_tta": math.nan,
               "train_eval_err": math.nan}
        if test:
            logits = self.logits(self.x_test)
            res["test_loss"] = F.cross_entropy(logits, self.y_test).item()
            res["test_err"] = error_rate(logits, self.y_test)
            if self.cfg.tta:
                res["test_err_tta"] = error_rate(logits + self.logits(self.x_test, hflip),
                                                 self.y_test)
        if train:
            res["train_eval_err"] = error_rate(self.logits(self.x_train), self.y_train)
        res["eval_seconds"] = time.perf_counter() - t1
        return res

    def view_accuracy(self, test_err: float) -> dict[str, float]:
        return {"original": 1.0 - test_err,
                "vflip": 1.0 - error_rate(self.logits(self.x_test, vflip), self.y_test)}


def error_rate(logits: torch.Tensor, y: torch.Tensor) -> float:
    return 1.0 - (logits.argmax(1) == y).float().mean().item()


def worst_view_loss(out: torch.Tensor, out_flip: torch.Tensor, y: torch.Tensor,
                    label_smoothing: float = 0.0) -> torch.Tensor:
    """max(CE(original view), CE(flipped view)): the assignment's min-max objective."""
    return torch.maximum(F.cross_entropy(out, y, label_smoothing=label_smoothing),
                         F.cross_entropy(out_flip, y, label_smoothing=label_smoothing))


def _train(cfg: TrainConfig, data: CifarData, device: torch.device, precision: str,
           use_compile: bool, run_id: str, path: Path, rec: store.H5Record | None,
           start_epoch: int, reporter: TrainReporter | None) -> TrainResult:
    tr = Trainer(cfg, data, device, precision, use_compile)
    history: dict[str, list[float]] = {k: [] for k in HISTORY_KEYS}
    attrs: dict[str, Any] = {
        "run_id": run_id, "kind": "train", "status": "running", "config": _config_json(cfg),
        "env": environment(device), "device": runs.device_name(device), "precision": precision,
        "compile": use_compile, "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "n_train": tr.n, "realized_noise": tr.realized_noise, "epochs_done": 0,
        "reached_train_error_epoch": None, "test_acc_views": {}, "message": "",
    }
    if rec is not None:
        tr.model.load_state_dict(runs.state_dict_from(rec, device))
        load_optimizer(tr.opt, rec, rec.attrs["optim_param_groups"], device)
        history = {k: [float(v) for v in rec.group("history").get(k, [])] for k in HISTORY_KEYS}
        attrs.update({k: rec.attrs[k] for k in ("started", "reached_train_error_epoch")
                      if k in rec.attrs})
        attrs["resumed_at"] = [*(rec.attrs.get("resumed_at") or []), start_epoch]
    label_arrays = {"labels/train_used": tr.y_used, "labels/noise_mask": tr.mask,
                    "labels/train_indices": tr.idx, "labels/train_true": tr.y_true}

    def checkpoint(status: str) -> None:
        arrays, groups = state_to_arrays(tr.model, tr.opt)
        arrays.update(label_arrays)
        arrays.update({f"history/{k}": np.asarray(v, dtype=np.float64)
                       for k, v in history.items()})
        attrs.update(status=status, optim_param_groups=groups, epochs_done=len(history["epoch"]))
        if status == "finished":
            attrs["ended"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
        store.write_h5(path, attrs, arrays)

    if reporter:
        reporter.on_start({"run_id": run_id, "path": str(path), "device": attrs["device"],
                           "precision": precision, "compile": use_compile, "n_train": tr.n,
                           "realized_noise": tr.realized_noise, "start_epoch": start_epoch,
                           "epochs": cfg.epochs, "steps_per_epoch": tr.steps_per_epoch})
    if rec is None:
        checkpoint("running")  # epoch 0: resumable even if the first epoch is interrupted
    try:
        for epoch in range(start_epoch + 1, cfg.epochs + 1):
            row: dict[str, Any] = {"epoch": epoch, **tr.train_epoch(epoch, reporter)}
            if not math.isfinite(row["train_loss"]):
                msg = (f"training diverged in epoch {epoch} (train loss {row['train_loss']}); "
                       f"the checkpoint of epoch {epoch - 1} is kept")
                store.update_h5(path, attrs={"status": "diverged", "message": msg})
                raise Hw0Error(f"Run '{run_id}': {msg} in {path}. Lower --lr (now {cfg.lr}) "
                               "and train again with --force.")
            errs = [*history["train_err"], row["train_err"]]
            stalled = (cfg.patience is not None and len(errs) > cfg.patience
                       and min(errs[-cfg.patience:]) > min(errs[:-cfg.patience]) - 1e-3)
            # the full-train pass only once the running error is within 10 points of the
            # target: it costs a third of an epoch, and eval-mode error is below the running one
            target = cfg.until_train_error
            row.update(tr.evaluate(test=False, train=target is not None
                                   and row["train_err"] <= target + 0.10))
            reached = (cfg.until_train_error is not None
                       and row["train_eval_err"] <= cfg.until_train_error)
            done = reached or stalled or epoch == cfg.epochs
            if done or epoch % cfg.eval_every == 0:  # a skipped test eval is recorded as NaN
                seconds = row["eval_seconds"]
                row.update({k: v for k, v in tr.evaluate(test=True).items()
                            if k != "train_eval_err"})
                row["eval_seconds"] += seconds
            for k in HISTORY_KEYS:
                history[k].append(float(row[k]))
            if reached and attrs.get("reached_train_error_epoch") is None:
                attrs["reached_train_error_epoch"] = epoch
            if stalled:
                attrs["stopped_early"] = f"no train-error improvement in {cfg.patience} epochs"
            if done:
                if math.isnan(row["train_eval_err"]):  # final train error, always eval mode
                    row["train_eval_err"] = tr.evaluate(test=False, train=True)["train_eval_err"]
                    history["train_eval_err"][-1] = row["train_eval_err"]
                attrs["test_acc_views"] = tr.view_accuracy(row["test_err"])
            checkpoint("finished" if done else "running")
            if reporter:
                reporter.on_epoch(row)
            if done:
                break
        else:  # nothing left to train (resumed a run whose last epoch was saved as running)
            checkpoint("finished")
    except KeyboardInterrupt:
        if path.exists():
            store.update_h5(path, attrs={"status": "interrupted"})
        raise Hw0Error(
            f"Interrupted. Run '{run_id}' keeps its last completed epoch in {path}; run the "
            "same command again (or add --resume) to continue from there.", exit_code=130,
        ) from None
    result = _result_from_record(store.read_h5(path, prefixes=("history",)), path, "finished")
    result.resumed_from = start_epoch
    return result
