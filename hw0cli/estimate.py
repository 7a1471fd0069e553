"""How long each step of `hw0 all` will take, before any runs: the first ETA.

A training step costs its images x epochs at the training rate this machine measured for its
width and batch size (the precision probe's figures, `hw0cli.train.probe`, which training reuses,
so measuring costs nothing extra), its test and full-train evaluations at about three times
that rate (a forward pass is a third of a training step), and a compile allowance: seconds per
compiled run, more for the first run of a graph while the compile cache is empty. A run that
trains until its training error is low (Problem 2's grid) is costed at its epoch cap unless
the net has far more parameters than its random labels have bits (then it interpolates in
about `FAST_EPOCHS`). Other steps take constants measured on this project's CPU machine
(docs/benchmarks.md, "Measured figures"). `StepClock` (hw0cli.pipeline) scales the rest of
the estimate by how the finished steps compared with theirs.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import torch

from hw0cli import runs, store
from hw0cli.data import CIFAR_TEST_FILE, CIFAR_TRAIN_FILES, cifar_dir
from hw0cli.env import resolve_compile, resolve_device, resolve_precision
from hw0cli.linreg import LinregConfig
from hw0cli.models import count_parameters, make_cnn
from hw0cli.paths import cache_dir
from hw0cli.train import choose_execution, make_timer, run_id_for, width_class
from hw0cli.views import predict_logits

EVAL_SPEEDUP = 3.0  # forward only: about a third of a training step's work
MIN_TIMED_S = 0.5  # a timed evaluation window
COMPILE_COLD_S = 60.0  # docs/benchmarks.md: a width-4 run's one-time cost, empty cache 66.9 s
COMPILE_WARM_S = 5.0  # docs/benchmarks.md: 5.3 s with a warm cache
STEP_OVERHEAD_S = 2.0  # trainer set-up, data to the device, checkpoints
DATA_LOAD_S = 10.0  # the first read of CIFAR-10 in the process (8-14 s measured)
FAST_EPOCHS = 15  # docs/benchmarks.md, the grid: c = 64 reached 1% train error in 11-15 epochs
MEMORIZES = 20.0  # parameters per bit of random labels above which a net interpolates fast
FLIP_EVAL_S = 10.0  # export and check the ONNX model, open the session
LINREG_AT_500_S = 40.0  # docs/benchmarks.md: `hw0 linreg --method all` at n = 500, 43 s in all
LINREG_FIXED_S = 5.0  # of which reading MNIST and drawing the plots
WORST_VIEW = 2.0  # the worst-view objective runs each batch and its flip
CUDA_GRAPHS = 3.0  # measured eager rate -> CUDA graphs (docs/benchmarks.md: 42k vs 131k images/s)
BYTES_PER_IMAGE = 3100  # a CIFAR-10 batch file: 3,072 pixel bytes, a label and a file name


def data_sizes(data_dir: Any) -> tuple[int, int]:
    """(training, test) images of the CIFAR-10 copy in `data_dir`, from its files' sizes
    (nothing is read; 50,000 and 10,000 for the real data set)."""
    folder = cifar_dir(data_dir)

    def images(names: tuple[str, ...]) -> int:
        return sum((folder / n).stat().st_size // BYTES_PER_IMAGE for n in names
                   if (folder / n).is_file())
    return images(CIFAR_TRAIN_FILES) or 50_000, images((CIFAR_TEST_FILE,)) or 10_000


@dataclass
class Rates:
    """Training and evaluation images/s per (width, batch size, precision, compile) on this
    machine, measured once each; the measurements are replaceable (tests)."""

    measure: Callable[[Any], float] | None = None
    measure_eval: Callable[[Any], float] | None = None
    seen: dict[tuple, float] = field(default_factory=dict)

    def _get(self, kind: str, cfg: Any, how: Callable[[Any], float]) -> float:
        key = (kind, width_class(cfg.width), cfg.batch_size, cfg.precision, cfg.compile,
               cfg.device)
        if key not in self.seen:
            self.seen[key] = how(cfg)
        return self.seen[key]

    def train(self, cfg: Any) -> float:
        return self._get("train", cfg, self.measure or measured_rate)

    def eval(self, cfg: Any) -> float:
        """Eval-mode images/s: a forward pass in large chunks, which at small widths runs
        far more than three times as fast as a training step (measured: 20x at width 4)."""
        return self._get("eval", cfg, self.measure_eval or measured_eval_rate)


def measured_rate(cfg: Any) -> float:
    """Training images/s of `cfg`'s width and batch size here: the precision probe's figure
    (measured now, and cached for the run, when `--precision auto` has not met this width on
    this machine), else a short timing of the given precision."""
    device = resolve_device(cfg.device)
    small = replace(cfg, train_samples=max(cfg.batch_size, min(cfg.train_samples, 4096)))
    execution = choose_execution(small, device)
    if execution.probe:
        figures = execution.probe["images_per_s"]
        rate = max(figures.values())
    else:
        precision = resolve_precision(execution.precision, device)
        rate = make_timer(device, small, precision, None)()
    if device.type == "cuda" and execution.compile_mode == "reduce-overhead":
        rate *= CUDA_GRAPHS
    return rate


def measured_eval_rate(cfg: Any) -> float:
    """Eval-mode images/s of `cfg`'s width here: timed forward passes over random images in
    the chunks evaluation uses (after one untimed pass)."""


    device = resolve_device(cfg.device)
    precision = resolve_precision("fp32" if cfg.precision == "auto" else cfg.precision, device)
    chunk = 10_000 if device.type == "cuda" else 500  # as the trainer evaluates
    model = make_cnn(cfg.width).to(device)
    x = torch.randint(0, 256, (chunk, 3, 32, 32), dtype=torch.uint8)
    with torch.no_grad():
        predict_logits(model, x, device, precision, chunk)
        images, t0 = 0, time.perf_counter()
        while time.perf_counter() - t0 < MIN_TIMED_S or images == 0:
            predict_logits(model, x, device, precision, chunk)
            images += chunk
        if device.type == "cuda":
            torch.cuda.synchronize(device)
    return images / (time.perf_counter() - t0)


def expected_epochs(cfg: Any) -> int:
    """Epochs a run will train: all of them, or for a run to a train-error target its cap,
    unless the net can memorize its labels fast (many parameters per bit of labels)."""
    if cfg.until_train_error is None:
        return cfg.epochs
    bits = cfg.train_samples * math.log2(10)
    fast = count_parameters(make_cnn(cfg.width)) > MEMORIZES * bits
    return min(cfg.epochs, FAST_EPOCHS) if fast else cfg.epochs


def finished(cfg: Any) -> bool:
    path = runs.run_path(cfg.out, run_id_for(cfg))
    if not path.exists():
        return False
    try:
        return store.read_h5(path, attrs_only=True).attrs.get("status") in ("finished",
                                                                             "diverged")
    except Exception:  # unreadable: the step will say so; it costs nothing to estimate
        return False


def evaluated(cfg: Any) -> bool:
    """Whether the run's flip evaluation is stored already (`hw0 all` skips it)."""
    return store.has_dataset(runs.run_path(cfg.out, run_id_for(cfg)), "eval/vflip/accuracy")


def train_seconds(cfg: Any, rate: float, compiles: bool, cold: bool,
                  sizes: tuple[int, int] = (50_000, 10_000),
                  eval_rate: float | None = None) -> float:
    """A training run: epochs of images, its evaluations, its one-time cost; `sizes`: the
    data set's training and test images; `eval_rate`: eval-mode images/s (by default three
    times the training rate: a forward pass is a third of a step's work)."""
    epochs = expected_epochs(cfg)
    n, n_test = min(cfg.train_samples, sizes[0]), sizes[1]
    per_image = 1.0 / rate * (WORST_VIEW if cfg.objective == "worst-view" else 1.0)
    train = epochs * n * per_image
    test_evals = math.ceil(epochs / cfg.eval_every) + 1
    views = 2 if cfg.tta else 1
    full_train = min(epochs, 5) if cfg.until_train_error is not None else 1
    evals = (test_evals * n_test * views + full_train * n + n_test) / (
        eval_rate or rate * EVAL_SPEEDUP)  # + the flipped test set at the end
    one_time = (COMPILE_WARM_S + (COMPILE_COLD_S if cold else 0.0)) if compiles else 0.0
    return STEP_OVERHEAD_S + train + evals + one_time


def linreg_seconds(cfg: Any) -> float:
    """`hw0 linreg --method all`: its iterations and random features relative to the
    defaults measured at n = 500, growing with n."""
    d = LinregConfig()
    work = (cfg.gd_iters / d.gd_iters + cfg.sgd_iters / d.sgd_iters
            + cfg.overparam_iters / d.overparam_iters
            + sum(cfg.rf_features) / sum(d.rf_features)) / 4
    return LINREG_FIXED_S + LINREG_AT_500_S * work * max(1.0, cfg.n / 500) ** 2


def graph_shape(cfg: Any) -> tuple:
    """What a compiled training step's graph depends on (docs/train.md: one graph per run)."""
    return (cfg.width, cfg.batch_size, cfg.augment, cfg.objective, cfg.batchnorm,
            cfg.precision)


def step_estimates(steps: list[Any], rates: Rates | None = None) -> list[float]:
    """Seconds each step is expected to take (0 for what is already done)."""
    rates = rates or Rates()
    inductor = cache_dir() / "inductor"
    warm = inductor.is_dir() and any(inductor.iterdir())
    shapes: set[tuple] = set()
    loaded = False
    out = []
    for s in steps:
        cfg = s.config
        if s.kind == "linreg":
            out.append(linreg_seconds(cfg))
            continue
        sizes = data_sizes(cfg.data_dir)
        if s.kind == "eval":
            out.append(0.5 if evaluated(cfg) else
                       FLIP_EVAL_S + 2 * sizes[1] / rates.eval(cfg))
        elif cfg is None or finished(cfg):
            out.append(0.5)
        else:
            compiles = resolve_compile(cfg.compile, resolve_device(cfg.device))
            cold = compiles and not warm and graph_shape(cfg) not in shapes
            shapes.add(graph_shape(cfg))
            out.append(train_seconds(cfg, rates.train(cfg), compiles, cold, sizes,
                                     rates.eval(cfg))
                       + (0.0 if loaded else DATA_LOAD_S))
            loaded = True
    return out
