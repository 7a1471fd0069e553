"""Sweeps as a library: axes from the declarations, the cells, presets, recorded definitions."""

from __future__ import annotations

import pytest

from hw0cli.batch import cells, grid, presets, sweep
from hw0cli.errors import Hw0UsageError
from hw0cli.train.config import TrainConfig, make_config, run_id_for
from tests.helpers import config_from_train_args


def cfg(tmp_path, *axes: str, **kw) -> sweep.SweepConfig:
    return sweep.SweepConfig(axes=tuple(sweep.parse_axis(a) for a in axes), data_dir=tmp_path,
                             out=tmp_path, **kw)


def test_parse_axis_types_from_declarations():
    assert sweep.parse_axis("batch-size=64,512") == sweep.Axis("batch_size", (64, 512))
    assert sweep.parse_axis("lr=0.01, 1e-1") == sweep.Axis("lr", (0.01, 0.1))
    assert sweep.parse_axis("batchnorm=on,off") == sweep.Axis("batchnorm", (True, False))
    assert sweep.parse_axis("--init=xavier") == sweep.Axis("init", ("xavier",))
    assert sweep.parse_axis("patience=none,3") == sweep.Axis("patience", (None, 3))


@pytest.mark.parametrize(("text", "msg"), [
    ("lrr=0.1", "not an option a sweep can vary"),
    ("device=cpu,cuda", "not an option a sweep can vary"),  # not in the run id
    ("lr", "NAME=V1,V2"),
    ("batch-size=64,6.5", "not a whole number"),
    ("lr=fast", "not a number"),
    ("batchnorm=maybe", "not on or off"),
    ("lr=0.1,0.1", "twice"),
])
def test_parse_axis_rejects(text, msg):
    with pytest.raises(Hw0UsageError, match=msg):
        sweep.parse_axis(text)


def test_product_of_axes(tmp_path):
    c = cfg(tmp_path, "lr=0.01,0.1", "batch-size=64,128,512", "seed=0,1",
            train_options=(("width", 4),))
    cs = sweep.cells(c)
    assert len(cs) == 12 and [x.index for x in cs] == list(range(12))
    assert [x.point for x in cs[:3]] == [
        (("lr", 0.01), ("batch_size", 64), ("seed", 0)),
        (("lr", 0.01), ("batch_size", 64), ("seed", 1)),
        (("lr", 0.01), ("batch_size", 128), ("seed", 0))]
    assert all(x.config.lr == x.value("lr") and x.config.batch_size == x.value("batch_size")
               and x.config.width == 4 for x in cs)
    assert len({run_id_for(x.config) for x in cs}) == 12


def test_width_axis_takes_the_recipe_at_each_width(tmp_path):
    """The fast recipe's settings depend on the width: a width axis gets them per cell, and
    each cell's command line (no --lr, no --logit-scale) runs exactly that config."""
    c = cfg(tmp_path, "width=16,64", "seed=0,1", recipe="fast")
    cs = sweep.cells(c)
    assert {(x.config.width, x.config.lr, x.config.logit_scale) for x in cs} == {
        (16, 0.5657, 0.25), (64, 0.4, 0.125)}
    for x in cs:
        assert x.config == make_config("fast", width=x.value("width"), seed=x.value("seed"),
                                       data_dir=tmp_path, out=tmp_path)
        args = cells.train_args(x.config)
        assert "--lr" not in args and "--logit-scale" not in args
        assert config_from_train_args(args) == x.config
    lr_axis = sweep.cells(cfg(tmp_path, "lr=0.2,0.4", recipe="fast",
                              train_options=(("width", 16),)))
    assert [x.config.lr for x in lr_axis] == [0.2, 0.4]  # an axis is explicit, so it wins
    args = sweep.options_args("fast", (("width", 16),), tmp_path, tmp_path)
    assert "--lr" not in args and config_from_train_args(args).lr == 0.5657


def test_one_at_a_time_around_the_base(tmp_path):
    c = cfg(tmp_path, "batch-size=32,128,512", "optimizer=sgd,adam", one_at_a_time=True)
    points = [dict(x.point) for x in sweep.cells(c)]
    assert points == [{"batch_size": 128, "optimizer": "sgd"},
                      {"batch_size": 32, "optimizer": "sgd"},
                      {"batch_size": 512, "optimizer": "sgd"},
                      {"batch_size": 128, "optimizer": "adam"}]


@pytest.mark.parametrize(("axes", "options", "msg"), [
    (("lr=0.1,-1",), (), "--lr must be > 0"),
    (("init=kaiming,he",), (), "Unknown initialization 'he'"),
    (("batch-size=64,4096",), (("train_samples", 1000),), "--batch-size must be between"),
    ((), (), "at least one --axis"),
    (("lr=0.1", "lr=0.2"), (), "given twice"),
    (("lr=0.1,0.2",), (("lr", 0.3),), "both an axis and a training option"),
    (("lr=0.1,0.2",), (("force", True),), "not a sweep option"),
])
def test_bad_sweeps_rejected_before_any_cell(tmp_path, axes, options, msg):
    with pytest.raises(Hw0UsageError, match=msg):
        sweep.cells(cfg(tmp_path, *axes, train_options=options))
    assert not (tmp_path / "runs").exists()


def test_random_labels_preset_is_the_grid(tmp_path):
    s = presets.with_preset(cfg(tmp_path), "random-labels")
    g = grid.GridConfig(data_dir=tmp_path, out=tmp_path)
    assert [run_id_for(c.config) for c in sweep.cells(s)] == \
        [run_id_for(c) for c in grid.cells(g)]
    assert s.label() == "random-labels"


def test_preset_names_listed_for_the_cli():
    from typing import get_args

    from hw0cli.choices import SweepPreset
    assert tuple(presets.SWEEP_PRESETS) == get_args(SweepPreset)


def test_presets_adjusted_by_own_axes_and_options(tmp_path):
    s = presets.with_preset(cfg(tmp_path, "width=4", train_options=(("epochs", 1),)), "bn-study")
    assert dict((a.name, a.values) for a in s.axes)["width"] == (4,)
    assert dict(s.train_options)["epochs"] == 1
    assert s.label().startswith("bn-study-") and s.label() != "bn-study"  # not the preset's
    assert len(sweep.cells(s)) == 2 * 3 * 1 * 2 * 2  # bn x lr x width x init x seeds
    knobs = sweep.cells(presets.with_preset(cfg(tmp_path), "warmup-knobs"))
    assert knobs[0].config.width == 4 and knobs[0].config.lr == TrainConfig().lr
    with pytest.raises(Hw0UsageError, match="Unknown sweep preset"):
        presets.with_preset(cfg(tmp_path), "nope")


def test_definition_recorded_and_reloaded(tmp_path):
    c = cfg(tmp_path, "lr=0.01,0.1", "batchnorm=on,off", train_options=(("width", 4),))
    path = sweep.record(c)
    assert path == tmp_path / "sweeps" / f"{c.label()}.json"
    (back,) = sweep.load_recorded(tmp_path)
    assert back.label() == c.label()
    assert [run_id_for(x.config) for x in sweep.cells(back)] == \
        [run_id_for(x.config) for x in sweep.cells(c)]
    (tmp_path / "sweeps" / "broken.json").write_text("{not json")
    assert len(sweep.load_recorded(tmp_path)) == 1


def test_sweep_args_reproduce_the_sweep(tmp_path):
    c = cfg(tmp_path, "lr=0.1,0.30000000000000004", "init=kaiming",
            train_options=(("epochs", 20), ("width", 4)))
    args = sweep.sweep_args(c)
    assert args[:4] == ["--axis", "lr=0.1,0.30000000000000004", "--axis", "init=kaiming"]
    assert "--epochs" in args  # given explicitly, kept even though it is the default
    assert args[args.index("--name") + 1] == c.label()


def test_grid_sh_runs_a_sweep(tmp_path):
    import os
    import subprocess
    import sys
    from pathlib import Path
    script = Path(__file__).resolve().parents[2] / "scripts" / "grid.sh"
    env = {**os.environ, "HW0": f"{sys.executable} -m hw0cli"}
    r = subprocess.run(["bash", str(script), "--sweep", "--dry-run", "--axis", "lr=0.01,0.1",
                        "--axis", "width=4,8", "--out", str(tmp_path)],
                       capture_output=True, text=True, env=env)
    assert r.returncode == 0, r.stderr
    lines = [ln for ln in r.stdout.splitlines() if ln.startswith("cell ")]
    assert len(lines) == 4 and "--width 8 " in lines[0] and "--lr 0.01" in lines[-1]


@pytest.mark.slow
def test_ctrl_c_stops_a_parallel_run(cifar_root, tmp_path):
    """Ctrl-C on `sweep run` interrupts the running cells and starts no other one."""
    import signal
    import subprocess
    import sys
    import time

    from tests.helpers import tiny_train_args
    args = ["--axis", "seed=0,1,2,3", "--width", "2", *tiny_train_args(cifar_root, tmp_path)]
    args[args.index("--epochs") + 1] = "50"  # long enough to be interrupted
    # a shell without job control starts background jobs with SIGINT ignored, and Python then
    # keeps ignoring it: give the sweep the disposition a terminal's Ctrl-C meets
    proc = subprocess.Popen([sys.executable, "-m", "hw0cli", "sweep", "run", *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    end = time.monotonic() + 900  # hang guards: a loaded CPU is slow
    while not list((tmp_path / "runs").glob("*.h5")) and time.monotonic() < end:
        time.sleep(0.2)  # the first cell has written its first checkpoint
    seen = sorted(p.name for p in (tmp_path / "runs").glob("*.h5"))
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=600)
    logs = "".join(p.read_text()[-800:] for p in (tmp_path / "grid_logs").glob("*.log"))
    assert proc.returncode == 130 and "Interrupted" in err, (seen, out[-2000:], err[-2000:], logs)
    assert len(list((tmp_path / "runs").glob("*.h5"))) == 1  # no cell started after Ctrl-C
