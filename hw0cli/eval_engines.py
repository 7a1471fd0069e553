"""The inference paths `hw0 eval` can take, each as an engine: uint8 images in, logits out.

onnxruntime runs through IO binding (`hw0cli.sessions.bound_run`): the uint8 images (the graph
divides by 255 itself) are put on the provider's device once, and every batch reads its slice
there and writes its logits into one output buffer there, so a GPU provider moves one byte per
pixel in and the logits out once, with no copy per call; the CPU provider takes the same path
with host buffers. Torch runs eager fp32 (NCHW, the reference) or its best path: bf16 autocast,
channels_last weights, torch.compile (what `scripts/bench_eval.py` measured fastest on an H100).

A candidate names one path (backend, provider or device, precision, compiled); `build()` makes
its engine or raises `Unavailable` with the reason (a provider library that does not load, a
session that fell back to the CPU), which the caller prints before going on without it.
"""

from __future__ import annotations

import contextlib
import copy
import os
import re
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from hw0cli.env import setup_compile_cache
from hw0cli.errors import Hw0Error
from hw0cli.export import fp16_variant
from hw0cli.sessions import bound_run, open_session
from hw0cli.views import predict_logits

ORT_NAMES = {"tensorrt": "TensorRT", "cuda": "CUDA", "cpu": "CPU"}
GPU_BATCH_SIZES = (1_000, 5_000, 10_000)  # onnxruntime on a GPU: each timed, the fastest kept
ONE_GPU_BATCH = 10_000  # torch and TensorRT on a GPU


class Unavailable(Exception):
    """A candidate that cannot run here; the message says why."""


@dataclass(frozen=True)
class Candidate:
    backend: str  # onnxruntime | torch
    provider: str  # onnxruntime: tensorrt | cuda | cpu; torch: its device type (cuda | cpu)
    precision: str  # fp32 | fp16 (the fp16 ONNX model) | bf16 (torch autocast)
    compiled: bool = False  # torch.compile with channels_last weights (torch only)

    @property
    def label(self) -> str:
        if self.backend == "torch":
            return f"torch {self.precision} {'compiled' if self.compiled else 'eager'}"
        return f"onnxruntime {ORT_NAMES[self.provider]} {self.precision}"

    @property
    def on_gpu(self) -> bool:
        return self.provider != "cpu"

    def batch_sizes(self, given: int | None) -> tuple[int, ...]:
        """The batch sizes to time: the one given, else the tuning list of its kind."""
        if given:
            return (given,)
        if not self.on_gpu:
            return (1_000,)
        # one shape for torch.compile and TensorRT: each new batch size compiles again
        return GPU_BATCH_SIZES if self.provider == "cuda" and self.backend == "onnxruntime" \
            else (ONE_GPU_BATCH,)


@dataclass
class Engine:
    """A built candidate: `run(x, batch_size)` gives float32 logits (N, 10) on the host."""

    candidate: Candidate
    run: Callable[[np.ndarray, int], np.ndarray]
    provider: str  # what really runs it, as stored: 'cuda', 'cpu', 'torch cuda bf16 compiled'
    build_s: float = 0.0  # session creation / model copy (compilation comes with the first run)
    onnx_file: Path | None = None
    keep: list[Any] = field(default_factory=list)  # what must live as long as the engine


def gpu_candidates(providers: list[str], bf16: bool) -> list[Candidate]:
    """What `--backend auto` measures on a GPU: onnxruntime fp32 and fp16 on each GPU provider
    it has, torch's best path and torch eager fp32."""
    out = [Candidate("onnxruntime", p, prec) for p in providers for prec in ("fp32", "fp16")]
    return [*out, Candidate("torch", "cuda", "bf16" if bf16 else "fp32", compiled=True),
            Candidate("torch", "cuda", "fp32")]


@contextlib.contextmanager
def captured_stderr() -> Iterator[list[str]]:
    """Collect what native code writes to file descriptor 2 (onnxruntime logs why a provider
    library did not load there, and raises nothing); the lines are in the list afterwards."""
    lines: list[str] = []
    with tempfile.TemporaryFile(mode="w+b") as tmp:
        saved = os.dup(2)
        os.dup2(tmp.fileno(), 2)
        try:
            yield lines
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            tmp.seek(0)
            lines += tmp.read().decode(errors="replace").splitlines()


def load_error(lines: list[str]) -> str:
    """The reason in onnxruntime's 'Failed to load library ... with error: X' log line."""
    for line in lines:
        m = re.search(r"Failed to load library (\S+) with error: (.*)", line)
        if m:
            return f"{Path(m.group(1)).name} did not load: {m.group(2).strip()}"
    return ""


def build(c: Candidate, model: torch.nn.Module, onnx_file: Path | None,
          work: Path) -> Engine:
    """The candidate's engine; Unavailable (with the reason) where it cannot run here."""
    t = time.perf_counter()
    if c.backend == "torch":
        return _torch_engine(c, model, t)
    if onnx_file is None:
        raise Unavailable("no ONNX file")
    path = onnx_file
    if c.precision == "fp16":
        path = work / f"{onnx_file.stem}.fp16.onnx"
        if not path.exists():
            fp16_variant(onnx_file, path)
    failed = None
    with captured_stderr() as log:  # the lines arrive when the block ends
        try:
            session, used = open_session(path, c.provider)
        except Hw0Error as exc:
            failed = re.split(r" (?:Try|Use) ", str(exc))[0]  # without the CLI's advice
    if failed is not None:
        why = load_error(log)
        raise Unavailable(f"{failed}{f' ({why})' if why else ''}")
    return Engine(c, lambda x, bs: bound_run(session, x, bs), used,
                  time.perf_counter() - t, path, [session])


def _torch_engine(c: Candidate, model: torch.nn.Module, t: float) -> Engine:
    device = torch.device(c.provider)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise Unavailable("torch sees no CUDA GPU")
    m = copy.deepcopy(model).to(device).eval()
    fwd: Any = m
    if c.compiled:
        setup_compile_cache()
        m = m.to(memory_format=torch.channels_last)
        fwd = torch.compile(m)

    def run(x: np.ndarray, batch_size: int) -> np.ndarray:
        x = np.ascontiguousarray(x)
        xd = torch.from_numpy(x if x.flags.writeable else x.copy()).to(device)  # once
        with torch.no_grad():
            out = predict_logits(fwd, xd, device, c.precision, batch_size)
        return out.float().cpu().numpy()

    how = f"{c.precision} {'compiled' if c.compiled else 'eager'}"
    return Engine(c, run, f"torch {device.type} {how}", time.perf_counter() - t, None, [m])


@dataclass
class Inference:
    """What ran and what it gave: logits of every view, seconds, backend, provider, files."""

    logits: np.ndarray
    seconds: float
    backend: str
    why: str
    provider: str
    onnx_file: Path | None = None
    variant_info: dict[str, Any] | None = None
    choice: dict[str, Any] | None = None  # auto on a GPU: the measurement (eval_measure)
