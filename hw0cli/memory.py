"""What a run needs in memory, and what the machine has.

A width or a feature count inside its declared range can still be more than this machine holds
(`--width 1024` at batch 128 in fp32 needs at least 13 GB on a CPU; `--rf-features 1e9`
terabytes).
Checked before anything large is allocated, so the user gets the estimate and a fix instead of an
allocation failure half-way through. The estimates count the large arrays only (weights,
optimizer state, the activations kept for the backward pass, the largest evaluation chunk, the
data on the device), so they stay below what a run really takes: one they refuse could not
have fitted. Measured on the CPU (fp32, batch 128, growth of the training process's peak RSS,
which adds ~0.35 GB of kernels and allocator caches at any width): width 128, 200 test images:
1.24 GB (estimate 0.93 GB); width 256: 2.15 GB (2.0 GB); width 256, 2,000 test images: 2.55 GB
(2.4 GB).

Available memory: on CUDA the free memory of the device (`torch.cuda.mem_get_info`); on the CPU
psutil's figure when installed, else `MemAvailable` of /proc/meminfo, else the free pages
(`os.sysconf`), and at most what the cgroup (a container, a Slurm job) still allows.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from hw0cli.env import resolve_precision
from hw0cli.errors import Hw0Error, Hw0UsageError

if TYPE_CHECKING:
    from hw0cli.linreg import LinregConfig
    from hw0cli.train import TrainConfig

CIFAR_IMAGE_BYTES = 3 * 32 * 32  # uint8 on the device
MNIST_PIXELS = 28 * 28
# floats per image and unit of width that a Myrtle5 training step keeps for its backward pass
# (conv, BatchNorm and ReLU outputs of the four blocks and the pooled maps: 14,720 c; the
# growth from width 128 to 256 measured on the CPU: ~14,000 c; a little below, as a bound)
TRAIN_FLOATS_PER_WIDTH = 13_000
# and that an evaluation chunk holds at once (no grad): the widest block's output, twice
EVAL_FLOATS_PER_WIDTH = 2 * 2 * 32 * 32
GB = 1e9


@dataclass(frozen=True)
class MemoryEstimate:
    """The large allocations of a computation, in bytes, by what they hold."""

    parts: dict[str, int]

    @property
    def total(self) -> int:
        return sum(self.parts.values())

    def text(self) -> str:
        return ", ".join(f"{k} {size_text(v)}" for k, v in self.parts.items() if v)


def size_text(n: float) -> str:
    for unit, scale in (("TB", 1e12), ("GB", 1e9), ("MB", 1e6)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{n / 1e3:.0f} kB"


def myrtle5_parameters(width: int) -> int:
    """Weights of a width-c Myrtle5 with biases and BatchNorm: convolutions, their 15c
    biases, BatchNorm's 2 x 15c scales and shifts, the linear head."""
    c = width
    convs = 9 * (3 * c + c * 2 * c + 2 * c * 4 * c + 4 * c * 8 * c)
    return convs + 15 * c + 30 * c + 8 * c * 10 + 10


def training_estimate(cfg: TrainConfig, device: torch.device, n_test: int) -> MemoryEstimate:
    """What training `cfg` holds at its peak on `device` (see the module docstring)."""
    cpu = device.type == "cpu"
    # activations in fp32, or half that under bf16/fp16 autocast (auto on a CPU may measure
    # either: the smaller, as a bound)
    half = cfg.precision in ("bf16", "fp16") or (cfg.precision == "auto" and (
        cpu or resolve_precision("auto", device) == "bf16"))
    act_bytes = 2 if half else 4
    opt_states = 2 if cfg.optimizer == "adam" else int(cfg.momentum > 0)
    # weights, gradients, optimizer state, the EMA copy; on the CPU also the checkpoint's host
    # copy of the weights and optimizer state
    copies = 2 + opt_states + int(cfg.ema > 0) + ((1 + opt_states) if cpu else 0)
    eval_chunk = min(10_000 if device.type == "cuda" else 500, n_test)
    return MemoryEstimate({
        "weights and optimizer state": 4 * copies * myrtle5_parameters(cfg.width),
        "activations": act_bytes * cfg.width * max(
            TRAIN_FLOATS_PER_WIDTH * cfg.batch_size, EVAL_FLOATS_PER_WIDTH * eval_chunk),
        "images": CIFAR_IMAGE_BYTES * (cfg.train_samples + n_test),
    })


def random_features_estimate(n: int, d: int, dim: int, element_size: int) -> MemoryEstimate:
    """What one random-features fit with `dim` features holds: the projection (drawn in
    float64), the features of the n training points with the pseudo-inverse's factors, and the
    test set's blocks (2e8 bytes, at least one row)."""
    return MemoryEstimate({
        "projection": (8 + element_size) * d * dim,
        "features and their pseudo-inverse": 5 * element_size * n * dim,
        "test blocks": 3 * max(int(2e8), element_size * dim),
    })


def available_bytes(device: torch.device) -> int | None:
    """Memory free for this process on `device` now; None where it cannot be told."""
    if device.type == "cuda":
        free, _total = torch.cuda.mem_get_info(device)
        # plus what this process's caching allocator holds but no tensor uses (an earlier run
        # of `hw0 all` or a sweep): it is reused before any new memory is asked for
        cached = torch.cuda.memory_reserved(device) - torch.cuda.memory_allocated(device)
        return int(free + cached)
    found = [b for b in (_host_available(), _cgroup_available()) if b is not None]
    return min(found) if found else None


def _host_available() -> int | None:
    try:
        import psutil
        return int(psutil.virtual_memory().available)
    except ImportError:
        pass
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):  # not on this platform
        return None


def _cgroup_available() -> int | None:
    """The cgroup's limit minus its usage (v2, else v1); None without a limit."""
    for limit, usage in (("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory.current"),
                         ("/sys/fs/cgroup/memory/memory.limit_in_bytes",
                          "/sys/fs/cgroup/memory/memory.usage_in_bytes")):
        try:
            cap = Path(limit).read_text().strip()
            if cap == "max" or int(cap) >= 2**60:  # v1 writes "no limit" as a huge number
                return None
            return max(0, int(cap) - int(Path(usage).read_text().strip()))
        except (OSError, ValueError):
            continue
    return None


def where(device: torch.device) -> str:
    return "the GPU" if device.type == "cuda" else "this machine"


def check_fits(estimate: MemoryEstimate, device: torch.device, what: str, fix: str) -> None:
    """Hw0UsageError naming the estimate when `what` cannot fit in the memory available."""
    have = available_bytes(device)
    if have is not None and estimate.total > have:
        raise Hw0UsageError(
            f"{what} needs about {size_text(estimate.total)} of memory ({estimate.text()}), but "
            f"only {size_text(have)} is available on {where(device)}. {fix}")


def check_training_fits(cfg: TrainConfig, device: torch.device, n_test: int) -> None:
    from hw0cli.options import flag
    from hw0cli.train import TrainConfig

    def opt(name: str) -> str:
        return flag(TrainConfig, name)
    check_fits(training_estimate(cfg, device, n_test), device,
               f"Training at {opt('width')} {cfg.width} and {opt('batch_size')} "
               f"{cfg.batch_size}", f"Use a smaller {opt('width')} or {opt('batch_size')}, or "
               "free memory (other processes) first.")


def check_random_features_fit(cfg: LinregConfig, device: torch.device) -> None:
    """The largest feature count of a linreg run's random-features sweep must fit."""
    from hw0cli.linreg import LinregConfig
    from hw0cli.options import flag
    dim = max(cfg.rf_features)
    est = random_features_estimate(cfg.n, MNIST_PIXELS, dim, 8 if cfg.dtype == "float64" else 4)
    opt = flag(LinregConfig, "rf_features")
    check_fits(est, device, f"The random-features fit with {opt} {dim} at n = {cfg.n}",
               f"Use fewer features in {opt} (the default sweep stops at 20000), or "
               f"--dtype float32 to halve it.")


def is_out_of_memory(exc: BaseException) -> bool:
    """An allocation failure (CUDA's OutOfMemoryError, the CPU allocator's RuntimeError)."""
    text = str(exc)
    return isinstance(exc, MemoryError) or (isinstance(exc, RuntimeError) and (
        "out of memory" in text or "can't allocate memory" in text))


def out_of_memory_error(cfg: TrainConfig, device: torch.device, n_test: int,
                        exc: BaseException, path: Path) -> Hw0Error:
    """What to tell the user when training failed to allocate despite the check."""
    from hw0cli.options import flag
    from hw0cli.train import TrainConfig
    first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
    est = training_estimate(cfg, device, n_test)
    return Hw0Error(
        f"Training ran out of memory on {where(device)} ({first}); at "
        f"{flag(TrainConfig, 'width')} {cfg.width} and {flag(TrainConfig, 'batch_size')} "
        f"{cfg.batch_size} it needs at least {size_text(est.total)} ({est.text()}), and other "
        f"processes may hold the rest. The last completed epoch, if any, is kept in {path}. "
        f"Use a smaller {flag(TrainConfig, 'width')} or {flag(TrainConfig, 'batch_size')}, or "
        "free memory first.")
