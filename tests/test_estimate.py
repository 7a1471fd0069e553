"""The first ETA of `hw0 all`: each step's estimate from images x epochs at the measured rate,
its evaluations and a compile allowance (the logic; no test depends on this machine's
speed)."""

from __future__ import annotations

from pathlib import Path

import pytest

from hw0cli import estimate, pipeline
from hw0cli.estimate import Rates, expected_epochs, step_estimates, train_seconds
from hw0cli.pipeline import AllConfig, Step, plan
from hw0cli.train.config import make_config
from hw0cli.train.run import run_train
from tests.helpers import tiny_config, write_cifar

RATE = 1000.0  # images/s, as if measured


def cfg(**kw):
    base = dict(width=4, epochs=10, train_samples=1000, device="cpu", precision="fp32",
                compile=False)
    return make_config(**{**base, **kw})


def test_training_cost_is_images_times_epochs_at_the_rate():
    one = train_seconds(cfg(epochs=10), RATE, False, False)
    two = train_seconds(cfg(epochs=20), RATE, False, False)
    wide = train_seconds(cfg(epochs=10, train_samples=2000), RATE, False, False)
    # 10 more epochs of 1,000 images at 1,000/s: 10 s of training, plus their test evaluations
    # (10,000 images each, at three times the training rate)
    assert two - one == pytest.approx(10.0 + 10 * 10_000 / (3 * RATE))
    assert wide - one == pytest.approx(10.0 + 1000 / (3 * RATE))  # one more full-train pass
    assert train_seconds(cfg(objective="worst-view"), RATE, False, False) > one + 9.9
    assert train_seconds(cfg(eval_every=5), RATE, False, False) < one - 2.5


def test_compile_allowance_cold_only_for_the_first_run_of_a_graph(tmp_path, monkeypatch):
    monkeypatch.setenv("HW0_CACHE", str(tmp_path / "cache"))  # an empty compile cache
    root = write_cifar(tmp_path / "d")
    same = [cfg(compile=True, data_dir=root, out=tmp_path, seed=s) for s in (0, 1)]
    other = cfg(compile=True, width=8, data_dir=root, out=tmp_path)
    steps = [Step("x", lambda _: "", config=c) for c in (*same, other)]
    est = step_estimates(steps, Rates(measure=lambda c: RATE, measure_eval=lambda c: 3 * RATE))
    cold, warm = estimate.COMPILE_COLD_S, estimate.COMPILE_WARM_S
    assert est[0] - estimate.DATA_LOAD_S - est[1] == pytest.approx(cold)
    assert est[2] > est[1] + cold - 1  # another graph: compiled cold too
    (tmp_path / "cache" / "inductor").mkdir(parents=True)
    (tmp_path / "cache" / "inductor" / "x").write_text("cached kernels")
    est = step_estimates(steps, Rates(measure=lambda c: RATE, measure_eval=lambda c: 3 * RATE))
    assert est[0] - estimate.DATA_LOAD_S == pytest.approx(est[1])  # warm: no cold compile
    no = step_estimates([Step("x", lambda _: "", config=cfg(data_dir=root, out=tmp_path))],
                        Rates(measure=lambda c: RATE, measure_eval=lambda c: 3 * RATE))
    assert no[0] - estimate.DATA_LOAD_S == pytest.approx(est[1] - warm)  # not compiled


def test_a_run_to_a_train_error_target_costs_its_cap_unless_it_memorizes_fast():
    target = dict(until_train_error=0.01, epochs=100, train_samples=1000)
    assert expected_epochs(cfg(width=4, **target)) == 100  # 6,666 parameters, 3,322 bits
    assert expected_epochs(cfg(width=64, **target)) == estimate.FAST_EPOCHS
    assert expected_epochs(cfg(width=64, epochs=7, until_train_error=0.01)) == 7
    assert expected_epochs(cfg(width=4, epochs=12)) == 12


@pytest.mark.slow
def test_finished_steps_cost_nothing_and_the_data_size_is_read_from_the_files(cifar_root,
                                                                             tmp_path):
    done = run_train(tiny_config(cifar_root, tmp_path, epochs=1))
    assert done.status == "finished"
    steps = [Step("a", lambda _: "", config=tiny_config(cifar_root, tmp_path, epochs=1)),
             Step("b", lambda _: "", config=tiny_config(cifar_root, tmp_path, epochs=2))]
    est = step_estimates(steps, Rates(measure=lambda c: RATE, measure_eval=lambda c: 3 * RATE))
    assert est[0] < 1 and est[1] > 1
    # conftest's synthetic CIFAR: 5 x 100 training images, 200 test images
    assert estimate.data_sizes(cifar_root) == (pytest.approx(500, abs=10),
                                               pytest.approx(200, abs=5))
    assert estimate.data_sizes(tmp_path / "none") == (50_000, 10_000)


def test_every_step_of_the_quick_preset_gets_an_estimate(tmp_path: Path):
    steps = plan(AllConfig(preset="quick", data_dir=tmp_path, out=tmp_path, device="cpu"))
    seen: list = []

    def measure(c):
        seen.append(c.width)
        return RATE
    est = step_estimates(steps, Rates(measure=measure, measure_eval=lambda c: 3 * RATE))
    assert len(est) == len(steps) and all(e > 0 for e in est)
    assert set(seen) == {4, 64}  # measured once per width class, batch and execution
    grid64 = [e for s, e in zip(steps, est, strict=True) if s.title.startswith(
        "Problem 2: width 64")]
    grid4 = [e for s, e in zip(steps, est, strict=True) if s.title.startswith(
        "Problem 2: width 4")]
    assert len(grid64) == len(grid4) == 3
    assert pipeline.PRESETS["quick"]["grid"]["train_options"]["train_samples"] == 1000
