"""The pure pieces of training, apart from the device-side trainer: mixed precision, losses,
error rates, the learning-rate schedules, the seeded subset and label noise, and the timing that
separates one-time costs (compile, CUDA-graph capture) from steady ones."""

from __future__ import annotations

import logging
import math
import statistics
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn


def all_finite(tensors: list[torch.Tensor]) -> torch.Tensor:
    """Whether every tensor holds only finite numbers, as a 0-d bool on their device (no host
    sync): one max-abs reduction over them all (NaN propagates through it)."""
    return torch.stack(torch._foreach_norm(tensors, math.inf)).isfinite().all()


def nonfinite_names(named: dict[str, torch.Tensor]) -> list[str]:
    """The names of the tensors holding an inf or NaN."""
    return [k for k, v in named.items() if not bool(v.isfinite().all())]


def worst_view_loss(out: torch.Tensor, out_flip: torch.Tensor, y: torch.Tensor,
                    label_smoothing: float = 0.0) -> torch.Tensor:
    """max(CE(original view), CE(flipped view)): the assignment's min-max objective."""
    return torch.maximum(F.cross_entropy(out, y, label_smoothing=label_smoothing),
                         F.cross_entropy(out_flip, y, label_smoothing=label_smoothing))


def error_rate(logits: torch.Tensor, y: torch.Tensor) -> float:
    """The fraction misclassified, counted exactly (a float32 mean would store 0.92 as
    0.920000001788139)."""
    return (logits.argmax(1) != y).sum().item() / max(1, len(y))


class FirstCalls:
    """Times the first few calls of a function (synchronized) to separate the one-time cost of
    its first calls (compile, autotune; with CUDA graphs the second call records the graph)
    from its steady cost: the excess of the first `first` calls over the median of the next."""

    def __init__(self, fn: Callable[[], Any], device: torch.device, compiled: bool = True,
                 first: int = 2, steady: int = 3) -> None:
        self.fn, self.device, self.compiled = fn, device, compiled
        self.first, self.calls = first, first + steady
        self.times: list[float] = []

    def _sync(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    def __call__(self, *args: Any) -> Any:
        if len(self.times) >= self.calls:
            return self.fn(*args)
        self._sync()
        t = time.perf_counter()
        out = self.fn(*args)
        self._sync()
        self.times.append(time.perf_counter() - t)
        return out

    @property
    def one_time_s(self) -> float:
        """Excess of the first calls over the steady call time; with too few calls to tell,
        over the later calls seen; a lone call is all one-time if compiled, none if eager."""
        later = self.times[self.first:] or self.times[1:]
        if not later:
            return sum(self.times) if self.compiled else 0.0
        steady = statistics.median(later)
        return sum(max(0.0, t - steady) for t in self.times[:len(self.times) - len(later)])


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


def lr_at(step: int, total_steps: int, base_lr: float, schedule: str,
          warmup: float = 0.25) -> float:
    """Learning rate for optimizer step `step` (0-based) of `total_steps`.

    constant: base. step: base x 0.1 after 50% and again after 75% of training.
    cosine: base * (1 + cos(pi t)) / 2. onecycle: linear from base/10 up to base over the first
    `warmup` fraction of steps, then linear down to 0 (the triangular schedule of fast CIFAR
    training). triangle: the same from 0 (Page's piecewise-linear [0, 5, 24] -> [0, lr, 0]).
    """
    t = step / max(1, total_steps)
    if schedule == "constant":
        return base_lr
    if schedule == "step":
        return base_lr * (0.1 ** ((t >= 0.5) + (t >= 0.75)))
    if schedule == "cosine":
        return base_lr * 0.5 * (1.0 + math.cos(math.pi * t))
    if schedule in ("onecycle", "triangle"):
        start = 0.1 if schedule == "onecycle" else 0.0
        if t < warmup:
            return base_lr * (start + (1.0 - start) * t / warmup)
        return base_lr * max(0.0, (1.0 - t) / (1.0 - warmup))
    raise ValueError(schedule)


# the TrainConfig fields that describe the model `cnn_from_config` builds
MODEL_KEYS = ("width", "batchnorm", "bias", "logit_scale", "normalize", "init", "init_scale",
              "dirac", "activation", "freeze_bn_scale", "bn_momentum")

LOOKAHEAD_EVERY = 5  # steps between pulls towards the slow weights (airbench)
LOOKAHEAD_DECAY = 0.95 ** 5  # the slow weights' decay at the end of the run; it rises as t^3,
# so early pulls are strong (the slow copy follows the fast weights closely) and late ones
# average over the last ~100 steps


class Lookahead:
    """Lookahead on a model's floating-point state (weights and BatchNorm statistics): every
    LOOKAHEAD_EVERY steps, slow <- slow + (1 - d) (fast - slow) and fast <- slow, with
    d = LOOKAHEAD_DECAY (t / T)^3 at step t of T; after the last step, fast <- slow. Applied
    between compiled steps, so the step's graph is unchanged."""

    def __init__(self, model: nn.Module, total_steps: int) -> None:
        self.total = max(1, total_steps)
        self.live = {k: v for k, v in model.state_dict().items() if v.is_floating_point()}
        self.slow = {k: v.detach().clone() for k, v in self.live.items()}

    def decay(self, step: int) -> float:
        return LOOKAHEAD_DECAY * (step / self.total) ** 3

    @torch.no_grad()
    def after_step(self, step: int) -> None:
        """After optimizer step `step` (1-based, counted over the whole run)."""
        live, slow = list(self.live.values()), list(self.slow.values())
        if step % LOOKAHEAD_EVERY == 0:
            torch._foreach_lerp_(slow, live, 1.0 - self.decay(step))
            torch._foreach_copy_(live, slow)
        if step == self.total:
            torch._foreach_copy_(live, slow)

    def load(self, arrays: dict[str, np.ndarray]) -> None:
        """The slow weights of a checkpoint (a file without them: the current weights)."""
        with torch.no_grad():
            for k, v in self.slow.items():
                v.copy_(torch.from_numpy(np.array(arrays[k])) if k in arrays else self.live[k])


KINDS_OF_RUN_PER_PROCESS = 64  # compiled step variants one process may hold


def compile_step(fn: Callable, compile_mode: str | None, device: torch.device,
                 fullgraph: bool) -> Callable:
    """The training step compiled with `compile_mode` (None: `fn` itself, eager)."""
    if compile_mode is None:
        return fn
    if device.type == "cpu":  # inductor's harmless "no CUDA runtime" note
        logging.getLogger("torch.utils.cpp_extension").setLevel(logging.ERROR)
    if fullgraph:
        torch._dynamo.config.trace_autograd_ops = True  # loss.backward() inside the graph
    # one cache entry of the step's code per kind of run (width, batch size, augmentation,
    # loss): a process training many kinds (hw0 all, a sweep) would pass Dynamo's default
    # limit of 8, which fullgraph=True turns into an error
    dyn = torch._dynamo.config
    dyn.recompile_limit = max(dyn.recompile_limit, KINDS_OF_RUN_PER_PROCESS)
    mode = None if compile_mode == "default" else compile_mode
    return torch.compile(fn, fullgraph=fullgraph, dynamic=False, mode=mode)


def ema_update(ema_model: nn.Module, ema_params: list[torch.Tensor], model: nn.Module,
               params: list[torch.Tensor], k: torch.Tensor, decay: float) -> None:
    """ema <- ema + (1 - d) (w - ema), d = min(decay, (1 + k) / (10 + k)): the warm-up
    keeps the average from remembering the random initialization."""
    kf = k.float()
    d = torch.clamp((1.0 + kf) / (10.0 + kf), max=decay)
    torch._foreach_lerp_(ema_params, params, 1.0 - d)
    for b_ema, b in zip(ema_model.buffers(), model.buffers(), strict=True):
        b_ema.copy_(b)
