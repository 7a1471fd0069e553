"""A training run's options, declared once, and the named recipes that stand for sets of them.

`TrainConfig`'s fields are the `hw0 train` options: each field's type, default, bounds and help
are its whole declaration (see `hw0cli.options`), and the command line, the grid's command
lines, the checks and the run id are derived from it. Torch-free, so `hw0 --help` stays fast;
the run itself is `hw0cli.train.run.run_train`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

from annotated_types import Ge, Gt, Interval

from hw0cli.choices import (
    CIFAR_TRAIN_SIZE,
    MAX_SEED,
    RECIPES,
    Activation,
    CompileMode,
    Device,
    Init,
    Objective,
    Optimizer,
    PadMode,
    Precision,
    Recipe,
    Schedule,
)
from hw0cli.errors import check
from hw0cli.options import Opt, check_declared, declarations, flag, id_fields
from hw0cli.paths import DATA_DIR_ENV, OUT_ENV, default_data_dir, default_out_dir

MAX_WIDTH = 1024  # c = 1024 is ~400M parameters: beyond any homework GPU's sensible range

MODEL, OPTIM, DATA, EVAL, EXEC, RUN = ("Model", "Optimization", "Data and augmentation",
                                       "Evaluation and stopping", "Execution (not in the run id)",
                                       "Run and files")
ALWAYS, IF_CHANGED = "always", "if-changed"  # run-id roles: see `Opt.run_id`


@dataclass(frozen=True)
class TrainConfig:
    """One training run. Defaults are the course notebook's recipe."""

    width: Annotated[int, Interval(ge=1, le=MAX_WIDTH), Opt(
        "Myrtle5 width c: the convolutions have c, 2c, 4c, 8c channels; the course uses 4 to 64",
        run_id=ALWAYS, panel=MODEL)] = 64
    noise: Annotated[float, Interval(ge=0, le=1), Opt(
        "Label-noise probability p: a training label is replaced by a uniform draw",
        run_id=ALWAYS, panel=DATA)] = 0.0
    epochs: Annotated[int, Ge(1), Opt(
        "Passes over the training set (the cap, with --until-train-error)", run_id=ALWAYS,
        panel=OPTIM)] = 20
    batch_size: Annotated[int, Ge(1), Opt("Images per SGD step", run_id=ALWAYS,
                                          panel=OPTIM)] = 128
    lr: Annotated[float, Gt(0), Opt("(Peak) learning rate, per step; no batch-size scaling",
                                    run_id=ALWAYS, panel=OPTIM)] = 0.1
    momentum: Annotated[float, Interval(ge=0, lt=1), Opt(
        "SGD momentum (the notebook uses plain SGD)", run_id=ALWAYS, panel=OPTIM)] = 0.0
    nesterov: Annotated[bool, Opt("Nesterov momentum (needs --momentum > 0)", run_id=ALWAYS,
                                  panel=OPTIM)] = False
    weight_decay: Annotated[float, Ge(0), Opt(
        "L2 coefficient added to the gradient (torch convention)", run_id=ALWAYS,
        panel=OPTIM)] = 0.0
    optimizer: Annotated[Optimizer, Opt("Optimizer", run_id=ALWAYS, panel=OPTIM)] = "sgd"
    muon_lr: Annotated[float, Gt(0), Opt(
        "With --optimizer muon: the convolution filters' peak step, relative to their size "
        "(their update is orthogonalized and the filters renormalized each step; airbench: "
        "0.24)", run_id=IF_CHANGED, panel=OPTIM)] = 0.24
    muon_momentum: Annotated[float, Interval(ge=0, lt=1), Opt(
        "With --optimizer muon: the filters' Nesterov momentum (airbench: 0.6)",
        run_id=IF_CHANGED, panel=OPTIM)] = 0.6
    schedule: Annotated[Schedule, Opt("Learning-rate schedule over all epochs", run_id=ALWAYS,
                                      panel=OPTIM)] = "constant"
    augment: Annotated[str, Opt(
        "Training augmentation: none, or any of hflip, vflip, crop joined by '+'",
        run_id=ALWAYS, panel=DATA)] = "none"
    label_smoothing: Annotated[float, Interval(ge=0, lt=1), Opt(
        "Cross-entropy target smoothing (0: plain cross-entropy)", run_id=ALWAYS,
        panel=OPTIM)] = 0.0
    objective: Annotated[Objective, Opt(
        "worst-view: minimize the larger loss of a batch and its vertical flip",
        run_id=ALWAYS, panel=OPTIM)] = "standard"
    tta: Annotated[bool, Opt(
        "Also report test error averaged over the image and its mirror (flip TTA)",
        run_id=ALWAYS, panel=EVAL)] = False
    train_samples: Annotated[int, Interval(ge=1, le=CIFAR_TRAIN_SIZE), Opt(
        "Train on a seeded random subset of this many of the 50,000 images", run_id=ALWAYS,
        panel=DATA)] = CIFAR_TRAIN_SIZE
    batchnorm: Annotated[bool, Opt(
        "BatchNorm after every convolution (--no-batchnorm removes every BatchNorm layer; a "
        "sweep's axis: batchnorm=on,off)", run_id=ALWAYS, panel=MODEL)] = True
    seed: Annotated[int, Interval(ge=0, le=MAX_SEED), Opt(
        "Seeds the initialization, subset, label noise, batch order and augmentation",
        run_id=ALWAYS, panel=DATA)] = 0
    until_train_error: Annotated[float | None, Interval(ge=0, lt=1), Opt(
        "Stop once the full-train-set error is <= this fraction (e.g. 0.01)",
        default_text="off", run_id=ALWAYS, panel=EVAL)] = None
    patience: Annotated[int | None, Ge(1), Opt(
        "Stop when the train error has not improved for this many epochs",
        default_text="off", run_id=ALWAYS, panel=EVAL)] = None
    warmup: Annotated[float, Interval(gt=0, lt=1), Opt(
        "Fraction of the steps the onecycle/triangle learning rate rises over",
        run_id=IF_CHANGED, panel=OPTIM)] = 0.25
    drop_last: Annotated[bool, Opt(
        "Skip each epoch's partial last batch (Page, airbench)", run_id=IF_CHANGED,
        panel=OPTIM)] = False
    pad_mode: Annotated[PadMode, Opt("Padding of the crop augmentation (Page: reflect)",
                                     noun="padding mode", run_id=IF_CHANGED,
                                     panel=DATA)] = "zeros"
    cutout: Annotated[int, Interval(ge=0, le=32), Opt(
        "Side of a square zeroed in each training image (Page: 8); 0 = off", unit="pixels",
        run_id=IF_CHANGED, panel=DATA)] = 0
    crop_pad: Annotated[int, Interval(ge=1, le=16), Opt(
        "How far the crop augmentation moves an image (pads this much, crops 32x32); Page: 4, "
        "airbench: 2", unit="pixels", run_id=IF_CHANGED, panel=DATA)] = 4
    alternate_flip: Annotated[bool, Opt(
        "Mirror each image in every other epoch (its first-epoch flip drawn from the seed, "
        "then inverted each epoch; airbench) instead of a fresh coin each epoch",
        run_id=IF_CHANGED, panel=DATA)] = False
    normalize: Annotated[bool, Opt("Standardize inputs per channel (CIFAR-10 mean and std)",
                                   run_id=IF_CHANGED, panel=DATA)] = False
    bias: Annotated[bool, Opt(
        "Conv and linear biases (a bias before BatchNorm is dead weight)", run_id=IF_CHANGED,
        panel=MODEL)] = True
    whiten: Annotated[bool, Opt(
        "Set the first convolution to +-whitening filters of the training images' 3x3 patches "
        "(the top min(c/2, 27) principal directions, scaled to unit variance; any other "
        "filters keep their random start) and freeze it (airbench)",
        run_id=IF_CHANGED, panel=MODEL)] = False
    logit_scale: Annotated[float, Gt(0), Opt("Multiply the logits by this (Page: 0.125)",
                                             run_id=IF_CHANGED, panel=MODEL)] = 1.0
    tta_shift: Annotated[int, Interval(ge=0, le=8), Opt(
        "With --tta, also average over images moved by +-this many pixels", unit="pixels",
        run_id=IF_CHANGED, panel=EVAL)] = 0
    ema: Annotated[float, Interval(ge=0, lt=1), Opt(
        "Evaluate an average of the weights with this decay per step (0.99: about the last "
        "100 steps), 0 = off, else at least 0.5", run_id=IF_CHANGED, panel=EVAL)] = 0.0
    init: Annotated[Init, Opt(
        "Initialization of the conv and linear weights (biases zeroed); default: PyTorch's",
        noun="initialization", run_id=IF_CHANGED, panel=MODEL)] = "default"
    init_scale: Annotated[float, Gt(0), Opt(
        "Multiply the initial conv and linear weights by this", run_id=IF_CHANGED,
        panel=MODEL)] = 1.0
    dirac: Annotated[bool, Opt(
        "Initialize convs 2-4 as identities on their first Cin output channels (dirac; the "
        "others as --init): the net starts near a shallower one (airbench)",
        run_id=IF_CHANGED, panel=MODEL)] = False
    activation: Annotated[Activation, Opt(
        "Nonlinearity after each BatchNorm (celu: alpha 0.075, Page's bag of tricks; gelu: "
        "airbench's)", run_id=IF_CHANGED, panel=MODEL)] = "relu"
    freeze_bn_scale: Annotated[bool, Opt(
        "Keep every BatchNorm scale at 1, untrained (airbench: the shift alone, at a larger lr)",
        run_id=IF_CHANGED, panel=OPTIM)] = False
    bn_bias_lr: Annotated[float, Interval(gt=0, le=1024), Opt(
        "Learning-rate multiplier of the BatchNorm shifts, with their weight decay divided by "
        "it, so the decay per step is unchanged (airbench: 64; SGD's, and muon's for the "
        "parameters it gives SGD)", unit="x lr",
        run_id=IF_CHANGED, panel=OPTIM)] = 1.0
    bn_momentum: Annotated[float, Interval(gt=0, le=1), Opt(
        "Weight of each batch in BatchNorm's running statistics (torch's convention; "
        "airbench: 0.4, fast enough for lookahead's averaged weights)", run_id=IF_CHANGED,
        panel=OPTIM)] = 0.1
    lookahead: Annotated[bool, Opt(
        "Every 5 steps, pull the weights and BatchNorm statistics towards a slow average of "
        "them and restart from it; the average's decay rises as 0.95^5 (t/T)^3 and the run "
        "ends on it (airbench)", run_id=IF_CHANGED, panel=OPTIM)] = False
    eval_every: Annotated[int, Ge(1), Opt(
        "Evaluate the test set every N epochs (and after the last)", panel=EVAL)] = 1
    recipe: Annotated[Recipe, Opt(
        "Named defaults that explicit options override (the defaults shown here are "
        "notebook's): notebook, the course's recipe; fast, the best accuracy found for 10 s "
        "of GPU training (30 epochs; see docs/train.md); page, David Page's backbone run",
        panel=MODEL)] = "notebook"
    # -- execution: how, not what (not part of the run id) --
    device: Annotated[Device, Opt("Where to train", panel=EXEC)] = "auto"
    precision: Annotated[Precision, Opt(
        "Arithmetic; auto: bf16 on GPUs that have it (else fp32), on a CPU the faster of fp32 "
        "and bf16 as measured there", panel=EXEC)] = "auto"
    compile: Annotated[bool | None, Opt(
        "torch.compile the training step", default_text="on for CUDA, and for the CPU when a "
        "C++ compiler is installed", panel=EXEC)] = None
    compile_mode: Annotated[CompileMode, Opt(
        "auto: reduce-overhead on a GPU, default on a CPU; reduce-overhead: the whole step "
        "as CUDA graphs; max-autotune: longer compile, tuned kernels", panel=EXEC)] = "auto"
    data_dir: Annotated[Path, Opt("Folder holding cifar-10-batches-py/", envvar=DATA_DIR_ENV,
                                  default_text="./data", panel=RUN)] = field(
        default_factory=default_data_dir)
    out: Annotated[Path, Opt("Output folder for run files, models, plots and reports",
                             envvar=OUT_ENV, default_text="./artifacts", panel=RUN)] = field(
        default_factory=default_out_dir)
    run_id: Annotated[str | None, Opt("Name of the run", default_text="derived from the "
                                      "settings", panel=RUN)] = None
    resume: Annotated[bool, Opt("Require an existing unfinished run and continue it (also "
                                "automatic for the same settings)", panel=RUN)] = False
    force: Annotated[bool, Opt("Retrain even when a finished run with this id exists",
                               panel=RUN)] = False

    def science(self) -> dict[str, Any]:
        return science_of({k: getattr(self, k) for k in SCIENCE_FIELDS})


# The fields that change what a run computes; they, and only they, determine the run id.
# Fields added after run ids were first handed out ("if-changed") enter the id only when they
# differ from their default, so every earlier run keeps its id.
LATER_FIELDS = id_fields(TrainConfig, IF_CHANGED)
SCIENCE_FIELDS = (*id_fields(TrainConfig, ALWAYS), *LATER_FIELDS)


def science_of(stored: dict[str, Any]) -> dict[str, Any]:
    """The science settings of a stored config, as `TrainConfig.science()` gives them (keys
    that older files lack take their defaults), for matching runs to configs."""
    defaults = {d.name: d.default for d in declarations(TrainConfig)}
    full = {k: stored.get(k, defaults[k]) for k in SCIENCE_FIELDS}
    return {k: v for k, v in full.items() if k not in LATER_FIELDS or v != defaults[k]}


FAST_TUNED_WIDTH = 64  # the width the fast recipe was tuned at on the GPU
FAST_MAX_WIDTH_FACTOR = 2.0  # narrower nets: lr and logit scale at most x2 (measured: x4 hurts)
# At the narrow end (c <= 16) the fast recipe halves its batch, for twice the steps per epoch,
# with the lr x sqrt(1/2) (width 16, 6 epochs, seed 0: batch 256 at lr 0.57 80.83%, batch 512
# at lr 0.8 79.19%, batch 128 at lr 0.4 80.46%; docs/benchmarks.md)
FAST_NARROW_WIDTH, FAST_NARROW_BATCH = FAST_TUNED_WIDTH // 4, 256
# and its filters take Muon's step, the lr falling from the first steps as in airbench94_muon
# (width 16, 6 epochs, seeds 0-2: 81.35% mean vs 80.38% with SGD; muon lr 0.05 / 0.08 / 0.1 /
# 0.12 / 0.15 at seed 0: 80.52 / 81.31 / 81.12 / 81.34 / 80.37%; the 5/24 warmup: 81.14% mean;
# 10 epochs: 82.72% vs 81.98%; width 4, 10 epochs: 68.24% vs 67.11%), with GELU after each
# BatchNorm, airbench's: a smooth nonlinearity suits the orthogonalized steps (6 epochs, seeds
# 0-2: 81.63% vs 81.35% with ReLU; under SGD it cost 0.6 at seed 0), and BatchNorm as airbench
# trains it beside Muon: scales frozen at 1 (the renormalized filters set the scale), shifts at
# 8x the lr (6 epochs, seeds 0-2: 81.74% vs 81.63%, flip TTA 82.84% vs 82.53%; 10 epochs:
# flip TTA 84.05% vs 83.77%, plain 82.87% vs 82.89%; bn-bias-lr 4 / 16 at seed 0: 81.99 /
# 81.63% vs 81.82%; docs/benchmarks.md). Width 64 on the GPU: not measured, it keeps SGD,
# ReLU and trained BatchNorm scales.
FAST_NARROW = {"optimizer": "muon", "muon_lr": 0.1, "warmup": 0.02, "activation": "gelu",
               "freeze_bn_scale": True, "bn_bias_lr": 8.0}
WIDTH_SCALED = ("lr", "logit_scale", "batch_size", *FAST_NARROW)  # width-dependent settings


def recipe_settings(recipe: str, width: int = FAST_TUNED_WIDTH) -> dict[str, Any]:
    """The settings a named recipe stands for at a width; explicit options override them.

    notebook: the course's recipe (plain SGD, lr 0.1, batch 128, constant lr, no augmentation).
    fast: same layer widths, a better procedure: the best accuracy found for <= 10 s of steady
      GPU training on an H100 (30 epochs: 9.6 s; docs/benchmarks.md has what was measured).
      Narrower nets take a larger lr and logit scale (`fast_width_factor`), and at c <= 16
      a batch of 256 (`FAST_NARROW_BATCH`), Muon for the filters, GELU, and BatchNorm's
      scales frozen with its shifts at 8x the lr (`FAST_NARROW`).
    page: David Page's training of this backbone (cifar10-fast, "How to train your ResNet",
      experiments.ipynb, "Post 4: Architecture - backbone ... test acc 91.1%"), option by
      option; the control that measures what the data costs.
    """
    check(recipe in RECIPES, f"Unknown recipe '{recipe}'. Choose one of: {', '.join(RECIPES)}.")
    if recipe == "notebook":
        return {}
    page = {
        "epochs": 20,  # the backbone's 91.1% run
        "batch_size": 512,  # Page's batch
        "optimizer": "sgd",
        "lr": 0.4,  # his peak 0.4 / 512 on a summed loss == 0.4 on the mean loss used here
        "momentum": 0.9,  # Nesterov, as his `nesterov` optimizer
        "nesterov": True,
        "weight_decay": 5e-4,  # his 5e-4 x 512 on the summed loss, on every parameter
        "schedule": "triangle",  # PiecewiseLinear([0, 4, 20], [0, 0.4, 0]) over epochs
        "warmup": 4 / 20,
        "augment": "hflip+crop",  # FlipLR and Crop(32, 32) of the 4-pixel padded image
        "pad_mode": "reflect",  # his pad() is np.pad(mode="reflect")
        "cutout": 8,  # Cutout(8, 8), a square inside the image
        "normalize": True,  # normalise() with the CIFAR-10 mean and std
        "bias": False,  # conv_bn(..., bias=False); Linear(512, 10, bias=False)
        "logit_scale": 0.125,  # Mul(weight=0.125) on the classifier output
        "drop_last": False,  # the backbone notebook's Batches keeps the partial batch
    }
    if recipe == "page":
        return page
    k = fast_width_factor(width)
    narrow = width <= FAST_NARROW_WIDTH
    batch = FAST_NARROW_BATCH if narrow else page["batch_size"]
    return {
        **page,
        # a narrower net's head reads fewer features (8c), so the same logit scale gives
        # smaller logits and it underfits at width 64's values: c = 16, 10 epochs: x2 on both
        # 81.94%, on lr alone 81.57%, neither 80.77% (docs/benchmarks.md)
        "logit_scale": round(page["logit_scale"] * k, 4),
        # the lr per step follows the square root of the batch (the gradient noise's scale)
        "lr": round(page["lr"] * k * math.sqrt(batch / page["batch_size"]), 4),
        "batch_size": batch,
        "epochs": 30,  # what 10 s of steady training fits on an H100: 9.6 s (32 took 10.4 s
        # over 3 seeds, 31 took 10.0 s; an H200 runs 32 in 9.0 s)
        "warmup": 5 / 24,  # measured on the GPU (docs/benchmarks.md): the peak 0.8 epoch
        "drop_last": True,  # later than page's, the partial batch skipped
        "cutout": 0,  # measured: c = 16, 10 epochs, 80.10% without; cutout regularizes a net
        # that still underfits at this budget (train error 20%)
        "label_smoothing": 0.2,  # airbench's value: calmer logits, better test error
        "alternate_flip": True,  # H200, 32 epochs, 3 seeds: 89.05% vs 88.72% without
        "crop_pad": 2,  # airbench's; c = 64, 32 epochs, 3 seeds: 89.03% (4 pixels: 89.05%);
        # c = 16, 10 epochs: 80.77% vs 80.03% (a small net that underfits wants less distortion)
        "tta": True,  # flip TTA reported beside the plain accuracy
        **(FAST_NARROW if narrow else {}),
    }


def fast_width_factor(width: int) -> float:
    """How much the fast recipe scales its lr and logit scale at width c: sqrt(64 / c) below
    the width it was tuned at, at most 2 (x2 at c <= 16), 1 at and above it (wider nets: not
    measured). 10 epochs on the CPU: c = 16 best at x2 of x1 and x2; c = 4 best at x2 of x1,
    x2 and x4 (65.58%, 68.06%, 63.27%)."""
    # an out-of-range width is refused later, by validate(), with its own message
    ratio = FAST_TUNED_WIDTH / min(max(width, 1), FAST_TUNED_WIDTH)
    return min(math.sqrt(ratio), FAST_MAX_WIDTH_FACTOR)


def make_config(recipe: str = "notebook", **options: Any) -> TrainConfig:
    """A TrainConfig from a recipe plus explicit options (None means 'use the default'); the
    recipe's settings are those at the width given (64 if none)."""
    width = options.get("width") or TrainConfig.width
    settings = recipe_settings(recipe, width)
    settings.update({k: v for k, v in options.items() if v is not None})
    return TrainConfig(recipe=recipe, **settings)


def validate(cfg: TrainConfig) -> None:
    """Raise Hw0UsageError with a fix-it message for any out-of-range setting: the declared
    choices and bounds first, then the rules that tie options together."""
    # runs and augment load torch; the declarations (and `hw0 --help`) load without it
    from hw0cli import runs
    from hw0cli.train.augment import parse_augment
    check_declared(cfg)

    def opt(name: str) -> str:
        return flag(TrainConfig, name)

    check(cfg.batch_size <= cfg.train_samples, f"{opt('batch_size')} must be between 1 and "
          f"the number of training images ({cfg.train_samples}); got {cfg.batch_size}.")
    check(not cfg.nesterov or cfg.momentum > 0, f"{opt('nesterov')} needs "
          f"{opt('momentum')} > 0.")
    parse_augment(cfg.augment)
    check(cfg.ema == 0.0 or cfg.ema >= 0.5, f"{opt('ema')} is a decay per step in [0.5, 1), "
          f"or 0 for off (got {cfg.ema}); 0.99 averages about the last 100 steps.")
    check(not cfg.alternate_flip or "hflip" in parse_augment(cfg.augment),
          f"{opt('alternate_flip')} changes how hflip is drawn: add hflip to {opt('augment')} "
          "(e.g. --augment hflip+crop), or pass --no-alternate-flip (the fast recipe turns it "
          "on).")
    check(not cfg.whiten or cfg.width >= 2, f"{opt('whiten')} needs {opt('width')} >= 2 (a "
          "pair of +- filters per whitened direction).")
    check(cfg.bn_bias_lr == 1.0 or cfg.optimizer != "adam", f"{opt('bn_bias_lr')} scales SGD "
          "steps (muon's included: BatchNorm takes SGD there); Adam's steps do not grow with "
          "the gradient. Use it with --optimizer sgd or muon.")
    check(cfg.optimizer != "muon" or (cfg.batchnorm and cfg.precision != "fp16"),
          f"{opt('optimizer')} muon renormalizes the convolution filters each step, which keeps "
          "the network's function only with BatchNorm after them, and its update has no loss "
          "scaling: train it with BatchNorm (no --no-batchnorm) in bf16 or fp32 (not "
          f"--precision fp16), or use {opt('optimizer')} sgd.")
    check(cfg.batchnorm or not (cfg.freeze_bn_scale or cfg.bn_bias_lr != 1.0),
          f"{opt('freeze_bn_scale')} and {opt('bn_bias_lr')} act on BatchNorm layers, which "
          f"{opt('batchnorm')} removes: drop one or the other.")
    check(cfg.tta_shift == 0 or cfg.tta, f"{opt('tta_shift')} adds views to the flip TTA: add "
          f"{opt('tta')}.")
    check(cfg.run_id is None or runs.valid_run_id(cfg.run_id), f"{opt('run_id')} may use "
          "letters, digits, '.', '_' and '-' only, and may not start with '-' (it names a "
          f"file; got '{cfg.run_id}').")


def run_id_for(cfg: TrainConfig) -> str:
    """Readable and stable: same science settings, same id."""
    digest = hashlib.sha256(json.dumps(cfg.science(), sort_keys=True).encode()).hexdigest()[:8]
    return f"c{cfg.width}-p{cfg.noise:g}-e{cfg.epochs}-s{cfg.seed}-{digest}"


def config_json(cfg: TrainConfig) -> dict[str, Any]:
    """The config as the run file stores it: every declared field, paths as strings."""
    d = dataclasses.asdict(cfg)
    d["data_dir"], d["out"] = str(cfg.data_dir), str(cfg.out)
    return d
