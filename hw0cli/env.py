"""Devices, precision and the environment record stored with every result."""

from __future__ import annotations

import functools
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy
import torch

import hw0cli
from hw0cli.choices import DEVICES, PRECISIONS
from hw0cli.errors import Hw0UsageError
from hw0cli.paths import point_compile_caches


def resolve_device(name: str) -> torch.device:
    """auto -> cuda when available, else cpu; cuda without a GPU is a usage error."""
    if name not in DEVICES:
        raise Hw0UsageError(f"Unknown device '{name}'. Choose one of: {', '.join(DEVICES)}.")
    if name == "cuda" and not torch.cuda.is_available():
        raise Hw0UsageError("--device cuda was asked for, but torch sees no CUDA GPU here "
                            f"(torch {torch.__version__}). Use --device cpu or --device auto.")
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


@functools.lru_cache(maxsize=1)
def _cpu_flags() -> set[str]:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return set()
    for line in text.splitlines():
        if line.startswith("flags"):
            return set(line.split(":", 1)[1].split())
    return set()


def cpu_has_bf16() -> bool:
    """Whether this CPU has bf16 instructions at all (AVX512-BF16 or AMX); Linux only."""
    return bool({"avx512_bf16", "amx_bf16"} & _cpu_flags())


def cpu_has_amx() -> bool:
    """Whether this CPU has AMX-BF16 matrix units (where bf16 convolutions really are fast)."""
    return "amx_bf16" in _cpu_flags()


def setup_compile_cache() -> Path:
    """Point torch.compile's on-disk caches (inductor's FX graphs and kernels, AOTAutograd,
    Triton) into the hw0 cache, shared by every run, process and grid cell on this machine,
    and turn the caches on. Variables the user set already win; torch's own default folder,
    which importing torch._dynamo writes into the environment, does not count as set.
    Returns the cache folder."""
    # torch's compiler modules load its compiler stack: only when compiling
    import torch._functorch.config as functorch_config
    import torch._inductor.config as inductor_config
    from torch._inductor.runtime.cache_dir_utils import default_cache_dir
    root = point_compile_caches(torch_defaults=(os.path.abspath(default_cache_dir()),))
    inductor_config.fx_graph_cache = True
    functorch_config.enable_autograd_cache = True
    return root


def resolve_precision(name: str, device: torch.device) -> str:
    """Check a precision name for the device; `auto` here is the unmeasured choice (bf16 on
    GPUs that have it, else fp32): runs resolve `auto` on a CPU by measuring (`hw0cli.train.probe`),
    since CPU flags do not tell which is faster (bf16 ran slower than fp32 on a Xeon without
    AMX, and 1.9x faster on a Zen 4, both with AVX512-BF16)."""
    if name not in PRECISIONS:
        raise Hw0UsageError(f"Unknown precision '{name}'. Choose one of: "
                            f"{', '.join(PRECISIONS)}.")
    if name != "auto":
        if name == "fp16" and device.type == "cpu":
            raise Hw0UsageError("fp16 autocast is for GPUs; on the CPU use bf16 or fp32.")
        return name
    if device.type == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp32"
    return "fp32"


def resolve_compile(flag: bool | None, device: torch.device) -> bool:
    """None (auto) -> on for CUDA, and on the CPU when a C++ compiler is there for inductor."""
    if flag is not None:
        return flag
    return device.type == "cuda" or any(shutil.which(c) for c in ("g++", "c++", "clang++"))


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"cpu: {platform.processor() or platform.machine()} x{torch.get_num_threads()} threads"


def matmul_peak_gflops(device: torch.device, dtype: torch.dtype = torch.float32,
                       n: int = 2048, repeats: int = 8) -> float:
    """Measured throughput of an n x n matmul on `device` (GFLOP/s, best of `repeats`).

    A practical ceiling for convolution-bound work: a 3x3 conv is a GEMM after im2col, and
    the best libraries reach about this rate, not more.
    """

    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    best = float("inf")
    for i in range(repeats + 2):
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        t = time.perf_counter()
        a @ b
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        if i >= 2:  # the first calls pick and load kernels
            best = min(best, time.perf_counter() - t)
    return 2 * n**3 / best / 1e9


@functools.lru_cache(maxsize=1)
def git_commit() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True,
                             timeout=5, cwd=Path(__file__).resolve().parent)
        return out.stdout.strip() or None if out.returncode == 0 else None
    except (OSError, subprocess.SubprocessError):
        return None


def environment(device: torch.device | None = None) -> dict[str, Any]:
    """Versions and hardware, stored as the `env` attribute of every result file."""


    env: dict[str, Any] = {
        "hw0": hw0cli.__version__, "python": sys.version.split()[0],
        "torch": torch.__version__, "numpy": numpy.__version__,
        "cuda": torch.version.cuda, "cudnn": torch.backends.cudnn.version()
        if torch.backends.cudnn.is_available() else None,
        "platform": platform.platform(), "cpu_threads": torch.get_num_threads(),
        "cpu_bf16": cpu_has_bf16(), "cpu_amx": cpu_has_amx(), "git_commit": git_commit(),
    }
    if device is not None:
        env["device"] = device_name(device)
    return env
