import math

import pytest
import torch

from hw0cli import env
from hw0cli.errors import Hw0UsageError


def test_precision_auto_on_cpu_follows_amx(monkeypatch):
    cpu = torch.device("cpu")
    monkeypatch.setattr(env, "_cpu_flags", lambda: {"avx512_bf16"})
    assert env.resolve_precision("auto", cpu) == "fp32"  # bf16 without AMX ran slower
    monkeypatch.setattr(env, "_cpu_flags", lambda: {"avx512_bf16", "amx_bf16"})
    assert env.resolve_precision("auto", cpu) == "bf16"
    assert env.resolve_precision("fp32", cpu) == "fp32"
    with pytest.raises(Hw0UsageError, match="fp16 autocast is for GPUs"):
        env.resolve_precision("fp16", cpu)
    with pytest.raises(Hw0UsageError, match="Unknown precision"):
        env.resolve_precision("fp8", cpu)


def test_matmul_peak_is_a_finite_rate(monkeypatch):
    """2 n^3 FLOPs over the best time: checked with a clock that advances 0.25 s per call."""
    ticks = iter(range(1000))
    monkeypatch.setattr("time.perf_counter", lambda: 0.25 * next(ticks))
    rate = env.matmul_peak_gflops(torch.device("cpu"), n=128, repeats=3)
    assert rate == pytest.approx(2 * 128**3 / 0.25 / 1e9)
    monkeypatch.undo()
    real = env.matmul_peak_gflops(torch.device("cpu"), n=128, repeats=2)
    assert math.isfinite(real) and real > 0
