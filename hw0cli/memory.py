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

import torch

from hw0cli.errors import Hw0UsageError

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


def is_out_of_memory(exc: BaseException) -> bool:
    """An allocation failure (CUDA's OutOfMemoryError, the CPU allocator's RuntimeError)."""
    text = str(exc)
    return isinstance(exc, MemoryError) or (isinstance(exc, RuntimeError) and (
        "out of memory" in text or "can't allocate memory" in text))


