import math
import os

import pytest
import torch

from hw0cli import env
from hw0cli.errors import Hw0UsageError


def test_precision_names_are_checked_and_auto_is_only_a_guess():
    cpu = torch.device("cpu")
    assert env.resolve_precision("fp32", cpu) == "fp32"
    assert env.resolve_precision("bf16", cpu) == "bf16"
    assert env.resolve_precision("auto", cpu) == "fp32"  # runs measure instead (probe.py)
    with pytest.raises(Hw0UsageError, match="fp16 autocast is for GPUs"):
        env.resolve_precision("fp16", cpu)
    with pytest.raises(Hw0UsageError, match="Unknown precision"):
        env.resolve_precision("fp8", cpu)


def test_compile_caches_leave_torchs_default_for_hw0s(monkeypatch, tmp_path):
    """Importing torch._dynamo writes inductor's default folder into the environment; setting
    up a compile takes hw0's cache folder instead, and keeps a folder the user chose."""
    from torch._inductor.runtime.cache_dir_utils import default_cache_dir

    from hw0cli import paths
    monkeypatch.setattr(paths, "_pointed", dict(paths._pointed))  # the session's stays as it is
    monkeypatch.setenv("HW0_CACHE", str(tmp_path / "c"))
    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", default_cache_dir())
    assert env.setup_compile_cache() == tmp_path / "c"
    assert os.environ["TORCHINDUCTOR_CACHE_DIR"] == str(tmp_path / "c" / "inductor")
    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", str(tmp_path / "mine"))
    env.setup_compile_cache()
    assert os.environ["TORCHINDUCTOR_CACHE_DIR"] == str(tmp_path / "mine")


def test_matmul_peak_is_a_finite_rate(monkeypatch):
    """2 n^3 FLOPs over the best time: checked with a clock that advances 0.25 s per call."""
    ticks = iter(range(1000))
    monkeypatch.setattr("time.perf_counter", lambda: 0.25 * next(ticks))
    rate = env.matmul_peak_gflops(torch.device("cpu"), n=128, repeats=3)
    assert rate == pytest.approx(2 * 128**3 / 0.25 / 1e9)
    monkeypatch.undo()
    real = env.matmul_peak_gflops(torch.device("cpu"), n=128, repeats=2)
    assert math.isfinite(real) and real > 0
