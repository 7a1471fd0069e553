"""Measured execution choices: which precision and compile mode train fastest on this machine.

`--precision auto` and `--compile-mode auto` run a short probe the first time a combination of
device, torch version, width class and batch size is seen: a few training steps of the run's
width and batch size on random images in each candidate, timed; the fastest wins. The figures
are cached in `$HW0_CACHE/probe.json` and recorded in every run file (the `execution`
attribute), so a run says what was measured and what it chose.

Candidates. On a CPU: fp32 and bf16, timed eagerly (a CPU step is dominated by its
convolutions, so eager timings rank the kernels; compiling each candidate would cost more than
the probe saves); torch.compile's only CPU mode is `default`. On CUDA nothing is probed: `auto`
is bf16 (tensor cores at twice TF32's rate and half the bytes; fp32 on GPUs without bf16, since
fp16's loss scaling needs a host sync per step) with `reduce-overhead` (the whole step as one
CUDA graph: a step of this small net is shorter than its launches). Timing candidates there
would mean compiling each, tens of seconds per candidate, more than any choice could save;
`scripts/bench_train.py --variants` measures them side by side instead.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from hw0cli import atomic
from hw0cli.env import cache_dir, device_name, resolve_compile, resolve_precision

if TYPE_CHECKING:
    from hw0cli.train import TrainConfig

PROBE_FILE = "probe.json"
MIN_TIMED_S = 0.5  # a timed window: at least this long, at least one pass
ROUNDS = 3  # timed windows per candidate, interleaved; the best counts


@dataclass(frozen=True)
class Execution:
    """How a run executes: its precision and torch.compile mode (None: eager), and the probe
    figures (images/s per candidate) behind any choice that was `auto`."""

    precision: str
    compile_mode: str | None
    probe: dict[str, Any] | None = None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def precision_candidates(device: torch.device) -> list[str]:
    if device.type == "cuda":  # one: the rule of the module docstring
        return [resolve_precision("auto", device)]
    return ["fp32", "bf16"]


def mode_candidates(device: torch.device) -> list[str]:
    return ["reduce-overhead"] if device.type == "cuda" else ["default"]


def width_class(width: int) -> int:
    """The power of two nearest to the width: speed ratios change slowly with it."""
    return 2 ** round(np.log2(max(1, width)))


def _key_of(cfg: TrainConfig, device: torch.device) -> str:
    """The cache key: the machine, torch, the width class, batch size and compile flag."""
    compiled = resolve_compile(cfg.compile, device)
    return (f"{device_name(device)} | torch {torch.__version__} | width ~{width_class(cfg.width)}"
            f" | batch {cfg.batch_size} | compile {'on' if compiled else 'off'}")


def choose_execution(cfg: TrainConfig, device: torch.device) -> Execution:
    """The run's precision and compile mode: as given, or where `auto` measured (cached) on
    a CPU and by rule on CUDA."""
    precisions = ([resolve_precision(cfg.precision, device)] if cfg.precision != "auto"
                  else precision_candidates(device))
    compiled = resolve_compile(cfg.compile, device)
    modes: list[str | None] = [None]
    if compiled:
        modes = list(mode_candidates(device)) if cfg.compile_mode == "auto" else [cfg.compile_mode]
    if len(precisions) == 1 and len(modes) == 1:
        return Execution(precisions[0], modes[0])
    key = _key_of(cfg, device)
    timed = {(p, m): (p, m if device.type == "cuda" else None)  # what each candidate times
             for p in precisions for m in modes}
    labels = {pm: _label(*t) for pm, t in timed.items()}
    cache = _read_cache()
    figures, cached = cache.get(key), True
    if not isinstance(figures, dict) or not all(lb in figures for lb in labels.values()):
        cached = False
        figures = _measure(device, cfg, timed, labels)
        cache = _read_cache()  # another process may have added figures meanwhile
        cache[key] = figures
        _write_cache(cache)
    best = max(timed, key=lambda pm: figures[labels[pm]])
    probe = {"key": key, "images_per_s": {lb: figures[lb] for lb in labels.values()},
             "cached": cached, "probe_seconds": figures.get("probe_seconds")}
    return Execution(best[0], best[1], probe)


def _measure(device: torch.device, cfg: TrainConfig, timed: dict, labels: dict
             ) -> dict[str, float]:
    """Images/s of every candidate: interleaved rounds, best of each (a busy spell of the
    machine does not decide the choice). Ctrl-C after a full round keeps that round's
    figures in the cache (a later run uses them), then stops as asked."""
    t = time.perf_counter()
    figures = {labels[pm]: 0.0 for pm in timed}
    timers: dict[str, Callable[[], float]] = {}
    try:
        timers = {labels[pm]: make_timer(device, cfg, *timed[pm]) for pm in timed}
        for _ in range(ROUNDS):
            for lb, window in timers.items():
                figures[lb] = max(figures[lb], window())
    except KeyboardInterrupt:
        if all(figures.values()):  # every candidate timed at least once: a usable probe
            figures["probe_seconds"] = time.perf_counter() - t
            cache = _read_cache()
            cache[_key_of(cfg, device)] = figures
            _write_cache(cache)
        raise
    figures["probe_seconds"] = time.perf_counter() - t
    return figures


def _label(precision: str, mode: str | None) -> str:
    return f"{precision}/{mode or 'eager'}"


def make_timer(device: torch.device, cfg: TrainConfig, precision: str,
               compile_mode: str | None) -> Callable[[], float]:
    """A trainer of the run's width and batch size on random images, warmed up by one pass of a
    few steps; the returned function times passes for at least MIN_TIMED_S and gives
    training images/s."""
    from hw0cli.data import CIFAR_CLASSES, CifarData
    from hw0cli.trainer import Trainer

    bs = cfg.batch_size
    n = bs * (4 if device.type == "cpu" else 10)
    rng = np.random.default_rng(0)
    data = CifarData(rng.integers(0, 256, (n, 3, 32, 32), dtype=np.uint8),
                     rng.integers(0, 10, n), np.zeros((1, 3, 32, 32), np.uint8),
                     np.zeros(1, np.int64), tuple(CIFAR_CLASSES))
    probe_cfg = replace(cfg, train_samples=n, epochs=1000, until_train_error=None,
                        patience=None, noise=0.0, drop_last=True)
    tr = Trainer(probe_cfg, data, device, precision, compile_mode)
    tr.train_epoch(1)
    epoch = 1

    def window() -> float:
        nonlocal epoch
        images, seconds = 0, 0.0
        while seconds < MIN_TIMED_S or images == 0:
            epoch += 1
            r = tr.train_epoch(epoch)
            images, seconds = images + r["images"], seconds + r["seconds"]
        return images / seconds

    return window


def _cache_path() -> Path:
    return cache_dir() / PROBE_FILE


def _read_cache() -> dict[str, Any]:
    try:
        data = json.loads(_cache_path().read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _write_cache(cache: dict[str, Any]) -> None:
    """Atomically; a cache that cannot be written is only a lost probe."""
    path = _cache_path()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic.write_text(path, json.dumps(cache, indent=1, sort_keys=True))
    except OSError:
        pass
