"""`hw0 eval --backend auto` on a GPU: the backend chosen by measurement, cached per machine.

Like `--precision auto` in training (`hw0cli.train.probe`), `auto` on a CUDA GPU times a few batches
of the test images through each candidate (`eval_engines.gpu_candidates`: onnxruntime fp32 and
fp16 on each GPU provider it really gets, the CUDA provider at a few batch sizes; torch's best
path, bf16 channels_last compiled; torch eager fp32) the first time a combination of GPU, torch
version, onnxruntime version and providers, model width and batch size is seen; the fastest
wins. The figures are cached in `$HW0_CACHE/eval_backend.json`, written atomically under a file
lock (a second process waits for a measurement under way, then reuses it), and stored with the
eval results (`eval/<view>/backend_choice`). A candidate that cannot run (a provider library
that does not load) is left out and the reason printed. A reduced-precision winner (the fp16
ONNX model, torch bf16) must give the fp32 model's top-1 on at least 99.5% of the evaluated
images, else the fastest fp32 candidate's logits are the result. Without a GPU nothing is
measured: onnxruntime's CPU provider, the fastest CPU path (`evaluate.resolve_backend`).
"""

from __future__ import annotations

import contextlib
import json
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

import filelock
import numpy as np
import torch

from hw0cli import atomic, sessions
from hw0cli.env import device_name
from hw0cli.errors import Hw0Error
from hw0cli.eval_engines import (
    Candidate,
    Engine,
    Inference,
    Unavailable,
    build,
    gpu_candidates,
)
from hw0cli.export import ensure_onnx
from hw0cli.paths import cache_dir
from hw0cli.runs import RunFile


class EvalChoice(Protocol):
    """What the measurement reads of `hw0 eval`'s settings (an `evaluate.EvalConfig`)."""

    backend: str
    model: str
    provider: str
    batch_size: int | None


CACHE_FILE = "eval_backend.json"
MIN_AGREEMENT = 0.995  # top-1 agreement with fp32 a reduced-precision winner must reach
TIMED_IMAGES = 20_000  # at most this many images per timed pass
ROUNDS = 3  # timed passes per candidate and batch size; the best counts
LOCK_WAIT_S = 900  # for another process's measurement; then measure without the cache

Timer = Callable[[Candidate, Engine, np.ndarray, int], float]  # -> images/s


def time_engine(c: Candidate, engine: Engine, x: np.ndarray, batch_size: int) -> float:
    """Images/s of the engine on up to TIMED_IMAGES of x, after one warm-up batch of this
    size (compilation, autotuning, arena growth), best of ROUNDS passes."""
    xs = x[:TIMED_IMAGES]
    engine.run(xs[:batch_size], batch_size)
    best = 0.0
    for _ in range(ROUNDS):
        t = time.perf_counter()
        engine.run(xs, batch_size)
        best = max(best, len(xs) / max(time.perf_counter() - t, 1e-9))
    return best


@dataclass(frozen=True)
class Measurement:
    """What `auto` measures, and how: injectable (tests fake the timer and the candidates)."""

    candidates: tuple[Candidate, ...] | None = None  # None: this GPU's (gpu_candidates)
    timer: Timer = time_engine


@dataclass
class Verdict:
    """The measured images/s (and batch size) per candidate, and what ran."""

    key: str
    images_per_s: dict[str, float]
    batch_size: dict[str, int]
    unavailable: dict[str, str]  # candidate -> why it could not run
    cached: bool
    measure_s: float = 0.0
    chosen: str = ""
    agreement: float | None = None  # a reduced-precision winner: top-1 agreement with fp32
    notes: list[str] = field(default_factory=list)

    def ranking(self) -> list[str]:
        ran = [lb for lb in self.images_per_s if lb not in self.unavailable]
        return sorted(ran, key=lambda lb: -self.images_per_s[lb])

    def why(self) -> str:
        others = [lb for lb in self.ranking() if lb != self.chosen]
        vs = " vs " + ", ".join(f"{lb} {rate(self.images_per_s[lb])}" for lb in others)
        when = "measured earlier on this machine (cached)" if self.cached else "measured"
        return (f"{when}: {self.chosen} {rate(self.images_per_s.get(self.chosen, 0))}"
                f"{vs if others else ''}")

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def rate(images_per_s: float) -> str:
    return (f"{images_per_s / 1000:,.0f}k img/s" if images_per_s >= 10_000
            else f"{images_per_s:,.0f} img/s")


def applies(cfg: EvalChoice) -> bool:
    """`auto` measures on a CUDA GPU for the fp32 model with the provider left to it."""
    return (cfg.backend == "auto" and cfg.model == "fp32" and cfg.provider == "auto"
            and sessions.gpu_present())


def default_candidates() -> list[Candidate]:
    return gpu_candidates(sessions.gpu_providers(), torch.cuda.is_bf16_supported())


def cache_key(width: int, batch_size: int | None) -> str:
    import onnxruntime as ort
    dev = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    provs = ",".join(p.removesuffix("ExecutionProvider") for p in ort.get_available_providers())
    return (f"{device_name(dev)} | torch {torch.__version__} | onnxruntime {ort.__version__} "
            f"({provs}) | width {width} | batch {batch_size or 'tuned'}")


@contextlib.contextmanager
def locked_cache() -> Iterator[dict[str, Any]]:
    """The cache, read under its lock; written back (atomically) when the block ends. A cache
    that cannot be locked, read or written only costs a measurement."""
    path = cache_dir() / CACHE_FILE
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        lock: Any = filelock.FileLock(str(path) + ".lock", timeout=LOCK_WAIT_S)
        lock.acquire()
    except (OSError, filelock.Timeout):
        lock = None
    try:
        try:
            cache = json.loads(path.read_text())
        except (OSError, ValueError):
            cache = {}
        cache = cache if isinstance(cache, dict) else {}
        before = json.dumps(cache, sort_keys=True)
        yield cache
        if lock is not None and json.dumps(cache, sort_keys=True) != before:
            with contextlib.suppress(OSError):
                atomic.write_text(path, json.dumps(cache, indent=1, sort_keys=True))
    finally:
        if lock is not None:
            lock.release()


def choose(key: str, cands: list[Candidate], make: Callable[[Candidate], Engine],
           x: np.ndarray, timer: Timer, batch_size: int | None) -> tuple[Verdict, Engine]:
    """The fastest candidate's verdict and engine: measured (first use of `key`) or cached."""
    labels = {c.label: c for c in cands}
    with locked_cache() as cache:
        got = cache.get(key)
        if isinstance(got, dict) and set(labels) <= set(got.get("images_per_s", {})):
            verdict = Verdict(key, got["images_per_s"], got["batch_size"],
                              dict(got.get("unavailable", {})), True,
                              got.get("measure_s", 0.0))
            engine = None
        else:
            verdict, engine = _measure(key, cands, make, x, timer, batch_size)
            cache[key] = {k: getattr(verdict, k) for k in
                          ("images_per_s", "batch_size", "unavailable", "measure_s")}
    for lb in verdict.ranking():
        if lb not in labels:
            continue
        if engine is None or engine.candidate.label != lb:
            try:
                engine = make(labels[lb])
            except Unavailable as exc:
                verdict.unavailable[lb] = str(exc)
                verdict.notes.append(f"{lb} was fastest here but cannot run now: {exc}")
                continue
        verdict.chosen = lb
        return verdict, engine
    raise Hw0Error("No inference backend could run here (" + "; ".join(
        f"{lb}: {why}" for lb, why in verdict.unavailable.items()) + "). Try --backend torch "
        "--device cpu.")


def _measure(key: str, cands: list[Candidate], make: Callable[[Candidate], Engine],
             x: np.ndarray, timer: Timer, batch_size: int | None) -> tuple[Verdict, Engine | None]:
    """Time every candidate; keep only the fastest engine so far (GPU memory)."""
    t0 = time.perf_counter()
    verdict = Verdict(key, {}, {}, {}, False)
    best: Engine | None = None
    for c in cands:
        try:
            engine = make(c)
            figures = {bs: timer(c, engine, x, bs) for bs in c.batch_sizes(batch_size)}
        except Unavailable as exc:
            verdict.unavailable[c.label] = str(exc)
            continue
        except Exception as exc:  # a kernel or compiler gap of one path: go on without it
            verdict.unavailable[c.label] = f"{type(exc).__name__}: {str(exc).splitlines()[0]}"
            continue
        bs = max(figures, key=lambda b: figures[b])
        verdict.images_per_s[c.label], verdict.batch_size[c.label] = figures[bs], bs
        if best is None or figures[bs] > verdict.images_per_s[best.candidate.label]:
            best = engine
    for lb in verdict.unavailable:
        verdict.images_per_s.setdefault(lb, 0.0)
    verdict.measure_s = time.perf_counter() - t0
    return verdict, best


def first_conv_width(model: torch.nn.Module) -> int:
    return next(m.out_channels for m in model.modules() if isinstance(m, torch.nn.Conv2d))


def infer_measured(cfg: EvalChoice, run: RunFile, x: np.ndarray, notes: list[str],
                   measure: Measurement | None = None) -> Inference:
    """Logits for x through the measured fastest backend (warm-up excluded from the time)."""
    measure = measure or Measurement()
    cands = list(measure.candidates or default_candidates())
    onnx_file = None
    if any(c.backend == "onnxruntime" for c in cands):
        onnx_file, _, reused = ensure_onnx(run.path, notes=notes, run=run)
        if not reused:
            notes.append(f"exported {onnx_file.name} first")
    with tempfile.TemporaryDirectory() as tmp:
        def make(c: Candidate) -> Engine:
            return build(c, run.model, onnx_file, Path(tmp))

        key = cache_key(first_conv_width(run.model), cfg.batch_size)
        verdict, engine = choose(key, cands, make, x, measure.timer, cfg.batch_size)
        notes += [f"{lb}: not run ({why})" for lb, why in verdict.unavailable.items()]
        logits, seconds = _timed(engine, x, verdict.batch_size[verdict.chosen])
        if engine.candidate.precision != "fp32":
            logits, seconds, engine = _check_agreement(verdict, engine, logits, seconds, x,
                                                       {c.label: c for c in cands}, make)
        notes += verdict.notes
    return Inference(logits, seconds, engine.candidate.backend, verdict.why(),
                      engine.provider + (" (fp16 ONNX model)" if engine.candidate.precision
                                         == "fp16" else ""),
                      onnx_file if engine.candidate.backend == "onnxruntime" else None,
                      choice=verdict.to_json())


def _timed(engine: Engine, x: np.ndarray, batch_size: int) -> tuple[np.ndarray, float]:
    engine.run(x[:batch_size], batch_size)  # warm-up
    t = time.perf_counter()
    logits = engine.run(x, batch_size)
    return logits, time.perf_counter() - t


def _check_agreement(verdict: Verdict, engine: Engine, logits: np.ndarray, seconds: float,
                     x: np.ndarray, cands: dict[str, Candidate],
                     make: Callable[[Candidate], Engine]) -> tuple[np.ndarray, float, Engine]:
    """The reduced-precision logits if their top-1 agrees with the fastest fp32 candidate's on
    >= MIN_AGREEMENT of x, else the fp32 ones."""
    for lb in verdict.ranking():
        if lb not in cands or cands[lb].precision != "fp32":
            continue
        try:
            ref = make(cands[lb])
        except Unavailable:
            continue
        ref_logits, ref_s = _timed(ref, x, verdict.batch_size[lb])
        verdict.agreement = float((ref_logits.argmax(1) == logits.argmax(1)).mean())
        if verdict.agreement >= MIN_AGREEMENT:
            return logits, seconds, engine
        verdict.notes.append(f"{verdict.chosen} agreed with {lb} on only "
                             f"{verdict.agreement:.2%} of the images (< {MIN_AGREEMENT:.1%}): "
                             f"the results are {lb}'s")
        verdict.chosen = lb
        return ref_logits, ref_s, ref
    verdict.notes.append(f"{verdict.chosen}: no fp32 path ran here to check its predictions")
    return logits, seconds, engine
