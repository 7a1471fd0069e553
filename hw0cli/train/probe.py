"""Measured execution choices: which precision and compile mode train fastest on this machine.

`--precision auto` and `--compile-mode auto` run a short probe the first time a combination of
device, torch version, width class and batch size is seen: a few training steps of the run's
width and batch size on random images in each candidate, timed; the fastest wins. The figures
are cached in `$HW0_CACHE/probe.json` and recorded in every run file (the `execution`
attribute), so a run says what was measured and what it chose. A resumed run keeps the
choice its file records (`resumed_execution`): probing again could pick the other precision
and end elsewhere than the uninterrupted run. The cache is shared by every process of the
machine (grid cells start together): a probe runs under a lock beside the cache file, so a
second process waits for the first one's figures instead of measuring beside it, and no
process's entry is lost.

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

import contextlib
import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import filelock
import numpy as np
import torch

from hw0cli import atomic
from hw0cli.data import CIFAR_CLASSES, CifarData
from hw0cli.env import device_name, resolve_compile, resolve_precision
from hw0cli.errors import Hw0UsageError
from hw0cli.options import flag
from hw0cli.paths import cache_dir
from hw0cli.train.config import TrainConfig
from hw0cli.train.trainer import Trainer

PROBE_FILE = "probe.json"
MIN_TIMED_S = 0.5  # a timed window: at least this long, at least one pass
ROUNDS = 3  # timed windows per candidate, interleaved; the best counts
# A candidate this many times slower than the leader after a round cannot win, and is not
# timed again: bf16 on a CPU without bf16 arithmetic runs ~15x slower than fp32 (a 2-core AMD
# EPYC without AVX512-BF16, width 64: 6 vs 91 images/s), so each of its windows took minutes.
OUT_OF_RACE = 4.0
LOCK_WAIT_S = 600  # how long a process waits for another's probe before measuring its own


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
    key = probe_key(cfg, device)
    timed = {(p, m): (p, m if device.type == "cuda" else None)  # what each candidate times
             for p in precisions for m in modes}
    labels = {pm: _label(*t) for pm, t in timed.items()}
    with _cache_lock():
        figures = _read_cache().get(key)
        cached = isinstance(figures, dict) and all(lb in figures for lb in labels.values())
        if not cached:
            figures = _measure(device, cfg, {labels[pm]: timed[pm] for pm in timed}, key)
            _store(key, figures)
    assert isinstance(figures, dict)
    best = max(timed, key=lambda pm: figures[labels[pm]])
    probe = {"key": key, "images_per_s": {lb: figures[lb] for lb in labels.values()},
             "cached": cached, "probe_seconds": figures.get("probe_seconds")}
    return Execution(best[0], best[1], probe)


def probe_key(cfg: TrainConfig, device: torch.device) -> str:
    """What a probe's figures are valid for: the cache's key. Whether the run compiles is not
    in it: only a CPU is probed, and there every candidate is timed eagerly."""
    return (f"{device_name(device)} | torch {torch.__version__} | width ~{width_class(cfg.width)}"
            f" | batch {cfg.batch_size}")


def _measure(device: torch.device, cfg: TrainConfig,
             candidates: dict[str, tuple[str, str | None]], key: str) -> dict[str, float]:
    """Images/s of each candidate (label -> (precision, compile mode)), and the probe's
    seconds: interleaved rounds, best of each (a busy spell of the machine does not decide
    the choice); a candidate out of the race after a round is not timed again. Ctrl-C after
    a full round keeps that round's figures in the cache under `key` (a later run uses them),
    then stops as asked."""
    t = time.perf_counter()
    figures = {lb: 0.0 for lb in candidates}
    try:
        timers = {lb: make_timer(device, cfg, *pm) for lb, pm in candidates.items()}
        for _ in range(ROUNDS):
            for lb, window in timers.items():
                figures[lb] = max(figures[lb], window())
            lead = max(figures.values())
            timers = {lb: w for lb, w in timers.items() if figures[lb] * OUT_OF_RACE >= lead}
    except KeyboardInterrupt:
        if all(figures.values()):  # every candidate timed at least once: a usable probe
            figures["probe_seconds"] = time.perf_counter() - t
            _store(key, figures)
        raise
    figures["probe_seconds"] = time.perf_counter() - t
    return figures


def resumed_execution(cfg: TrainConfig, device: torch.device, attrs: dict[str, Any],
                      run_id: str) -> Execution:
    """The execution a resumed run continues with: the one its file records (`attrs`), so it
    ends where an uninterrupted run would. An explicit option asking for another one is a
    usage error naming the option; files from before the record choose as new runs do."""
    rec = attrs.get("execution")
    if not isinstance(rec, dict) or rec.get("precision") not in ("bf16", "fp16", "fp32"):
        return choose_execution(cfg, device)
    precision, mode = str(rec["precision"]), rec.get("compile_mode")

    def refuse(name: str, asked: str, recorded: str) -> Hw0UsageError:
        return Hw0UsageError(
            f"Run '{run_id}' trained its first {attrs.get('epochs_done', 0)} epoch(s) with "
            f"{recorded}; resuming it with {asked} would not end where an uninterrupted run "
            f"does. Leave {flag(TrainConfig, name)} out (the run continues as recorded), or "
            f"pass {flag(TrainConfig, 'force')} to train it again from scratch.")

    if cfg.precision != "auto" and cfg.precision != precision:
        raise refuse("precision", f"--precision {cfg.precision}", f"precision {precision}")
    if cfg.compile is not None and cfg.compile != (mode is not None):
        raise refuse("compile", "--compile" if cfg.compile else "--no-compile",
                     f"torch.compile {'on' if mode else 'off'}")
    if mode is not None and cfg.compile_mode not in ("auto", mode):
        raise refuse("compile_mode", f"--compile-mode {cfg.compile_mode}",
                     f"compile mode {mode}")
    resolve_precision(precision, device)  # fp16 on a CPU: the usage error says so
    return Execution(precision, mode, rec.get("probe"))


def _label(precision: str, mode: str | None) -> str:
    return f"{precision}/{mode or 'eager'}"


def make_timer(device: torch.device, cfg: TrainConfig, precision: str,
               compile_mode: str | None) -> Callable[[], float]:
    """A trainer of the run's width and batch size on random images, warmed up by one pass of a
    few steps; the returned function times passes for at least MIN_TIMED_S and gives
    training images/s."""

    bs = cfg.batch_size
    n = bs * (2 if device.type == "cpu" else 10)  # a pass: 2 steps on a CPU, a window's unit
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


@contextlib.contextmanager
def _cache_lock() -> Any:
    """Held while a process reads, measures and writes its entry; a cache folder that cannot
    hold a lock (read-only) means probing unlocked: the cache is only an optimization."""
    path = _cache_path()
    lock: filelock.FileLock | None = filelock.FileLock(str(path) + ".lock",
                                                      timeout=LOCK_WAIT_S)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        lock.acquire()
    except (OSError, filelock.Timeout):
        lock = None
    try:
        yield
    finally:
        if lock is not None:
            lock.release()


def _read_cache() -> dict[str, Any]:
    try:
        data = json.loads(_cache_path().read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _store(key: str, figures: dict[str, float]) -> None:
    """Add one entry to the cache as it is on disk now (under `_cache_lock`), atomically; a
    cache that cannot be written is only a lost probe."""
    cache = _read_cache()
    cache[key] = figures
    with contextlib.suppress(OSError):
        atomic.write_text(_cache_path(), json.dumps(cache, indent=1, sort_keys=True))
