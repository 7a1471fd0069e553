"""`hw0 all`'s plan: checked whole before any step runs; the clock's ETA from the steps'
estimates."""

from __future__ import annotations

from pathlib import Path

import pytest

from hw0cli import pipeline
from hw0cli.errors import Hw0UsageError
from hw0cli.pipeline import AllConfig, StepClock, StepResult, run_all, validate_plan
from tests.helpers import write_cifar, write_mnist
from tests.report.test_build import TINY


@pytest.fixture
def tiny(monkeypatch: pytest.MonkeyPatch) -> dict:
    monkeypatch.setitem(pipeline.PRESETS, "tiny", TINY)
    return TINY


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = write_cifar(tmp_path_factory.mktemp("all_data"))
    return write_mnist(root, n_train=100, n_test=50)


def refused(cfg: AllConfig, *words: str) -> None:
    """The plan is refused with one usage error naming `words`; nothing was started."""
    with pytest.raises(Hw0UsageError) as exc:
        run_all(cfg)
    msg = str(exc.value)
    assert "nothing was started" in msg and all(w in msg for w in words), msg
    assert not Path(cfg.out).exists()


def test_cuda_without_a_gpu_is_refused_before_any_step(tiny, data, tmp_path):
    import torch
    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    refused(AllConfig(preset="tiny", data_dir=data, out=tmp_path / "o", device="cuda"),
            "--device cuda", "no CUDA GPU")


def test_missing_data_is_refused_before_any_step(tiny, tmp_path):
    only_cifar = write_cifar(tmp_path / "d")
    refused(AllConfig(preset="tiny", data_dir=only_cifar, out=tmp_path / "o", device="cpu"),
            "MNIST", "hw0 data download")
    refused(AllConfig(preset="tiny", data_dir=tmp_path / "none", out=tmp_path / "o",
                      device="cpu"), "CIFAR-10", "MNIST")


@pytest.mark.parametrize(("part", "change", "words"), [
    ("robust", [{"width": 2, "epochs": 2, "lr": -1.0}], ("--lr",)),
    ("warmup", [{"width": 2, "batch_size": 600, "train_samples": 200}], ("--batch-size",)),
    ("linreg", {"method": "all", "n": 0}, ("--n",)),
    ("grid", {**TINY["grid"], "noises": (0.0, 2.0)}, ("--noise",)),
])
def test_a_bad_step_anywhere_is_refused_before_the_first(part, change, words, data, tmp_path,
                                                        monkeypatch):
    """The warm-up would run fine; a later step's bad option stops the plan before it."""
    monkeypatch.setitem(pipeline.PRESETS, "bad", {**TINY, part: change})
    refused(AllConfig(preset="bad", data_dir=data, out=tmp_path / "o", device="cpu"), *words)


def test_a_good_plan_passes(tiny, data, tmp_path):
    steps = validate_plan(AllConfig(preset="tiny", data_dir=data, out=tmp_path, device="cpu"))
    assert [s.kind for s in steps].count("linreg") == 1 and steps[0].config.width == 2
    assert {s.kind for s in steps} == {"train", "eval", "linreg"}


def test_clock_starts_from_the_estimates_and_follows_the_pace():
    clock = StepClock(estimates=[10.0, 20.0, 30.0, 40.0])
    assert clock.eta(0, 4) == 100.0  # before anything ran: the estimates themselves
    clock.record(StepResult("a", "done", 20.0), 0)  # twice as slow as estimated
    assert clock.eta(1, 4) == pytest.approx(2 * 90.0)
    clock.record(StepResult("b", "skipped", 0.1), 1)  # a skipped step says nothing
    assert clock.eta(2, 4) == pytest.approx(2 * 70.0)
    clock.record(StepResult("c", "done", 300.0), 2)  # the pace is bounded: at most 2x
    assert clock.eta(3, 4) == pytest.approx(2 * 40.0)
    fast = StepClock(estimates=[100.0, 100.0])
    fast.record(StepResult("a", "done", 1.0), 0)
    assert fast.eta(1, 2) == pytest.approx(50.0)  # at least half the estimate
    assert StepClock().eta(0, 3) is None  # no estimates, nothing ran: no ETA
