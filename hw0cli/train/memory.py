"""What training a Myrtle5 holds at its peak (weights, gradients, optimizer state, activations,
images), checked against the memory available before a run starts, and the message when an
allocation fails anyway (the estimate itself: `hw0cli.memory`)."""

from __future__ import annotations

from pathlib import Path

import torch

from hw0cli.env import resolve_precision
from hw0cli.errors import Hw0Error
from hw0cli.memory import MemoryEstimate, check_fits, size_text, where
from hw0cli.options import flag
from hw0cli.train.config import TrainConfig

CIFAR_IMAGE_BYTES = 3 * 32 * 32  # uint8 on the device
# floats per image and unit of width that a Myrtle5 training step keeps for its backward pass
# (conv, BatchNorm and ReLU outputs of the four blocks and the pooled maps: 14,720 c; the
# growth from width 128 to 256 measured on the CPU: ~14,000 c; a little below, as a bound)
TRAIN_FLOATS_PER_WIDTH = 13_000
# and that an evaluation chunk holds at once (no grad): the widest block's output, twice
EVAL_FLOATS_PER_WIDTH = 2 * 2 * 32 * 32


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
    opt_states = 2 if cfg.optimizer == "adam" else int(cfg.momentum > 0
                                                       or cfg.optimizer == "muon")
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


def check_training_fits(cfg: TrainConfig, device: torch.device, n_test: int) -> None:

    def opt(name: str) -> str:
        return flag(TrainConfig, name)
    check_fits(training_estimate(cfg, device, n_test), device,
               f"Training at {opt('width')} {cfg.width} and {opt('batch_size')} "
               f"{cfg.batch_size}", f"Use a smaller {opt('width')} or {opt('batch_size')}, or "
               "free memory (other processes) first.")


def out_of_memory_error(cfg: TrainConfig, device: torch.device, n_test: int,
                        exc: BaseException, path: Path) -> Hw0Error:
    """What to tell the user when training failed to allocate despite the check."""
    first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
    est = training_estimate(cfg, device, n_test)
    return Hw0Error(
        f"Training ran out of memory on {where(device)} ({first}); at "
        f"{flag(TrainConfig, 'width')} {cfg.width} and {flag(TrainConfig, 'batch_size')} "
        f"{cfg.batch_size} it needs at least {size_text(est.total)} ({est.text()}), and other "
        f"processes may hold the rest. The last completed epoch, if any, is kept in {path}. "
        f"Use a smaller {flag(TrainConfig, 'width')} or {flag(TrainConfig, 'batch_size')}, or "
        "free memory first.")
