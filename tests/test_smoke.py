"""`hw0 all --smoke`: the preset's plan unchanged but for each step's sizes (and eager, fp32 CPU
execution). The run through to the PDF is in tests/cli/test_report.py."""

import dataclasses
from pathlib import Path

import pytest

from hw0cli import pipeline
from hw0cli.batch import grid, presets, sweep
from hw0cli.smoke import SMOKE_EPOCHS, SMOKE_LINREG, SMOKE_TRAIN_SAMPLES, smoke_preset
from hw0cli.train.config import make_config

CUT = {"train_samples": SMOKE_TRAIN_SAMPLES, "epochs": SMOKE_EPOCHS, "compile": False,
       "precision": "fp32"}


def shrunk(c):
    """What the smoke run must train instead of config c: only the sizes and execution cut."""
    return dataclasses.replace(c, **CUT, batch_size=min(c.batch_size, SMOKE_TRAIN_SAMPLES))


def grid_cells(p):
    g = p["grid"]
    return grid.cells(grid.GridConfig(widths=g["widths"], noises=g["noises"], seeds=g["seeds"],
                                      train_options=tuple(g["train_options"].items())))


def sweep_cells(p):
    s = p["sweep"]
    own = sweep.SweepConfig(axes=tuple(sweep.Axis(k, tuple(v)) for k, v in s["axes"].items()),
                            train_options=tuple(s["train_options"].items()), name=s["name"])
    return sweep.cells(presets.with_preset(own, s["preset"]))


@pytest.mark.parametrize("name", ["full", "quick"])
def test_the_smoke_plan_is_the_presets_with_only_sizes_cut(name):
    full, small = pipeline.PRESETS[name], smoke_preset(pipeline.PRESETS[name])
    for kind in ("warmup", "robust"):
        assert len(small[kind]) == len(full[kind])
        for a, b in zip(full[kind], small[kind], strict=True):
            recipe = a.get("recipe", "notebook")
            unpack = {k: v for k, v in a.items() if k != "recipe"}
            want = shrunk(make_config(recipe, **unpack))
            assert make_config(b.get("recipe", "notebook"),
                               **{k: v for k, v in b.items() if k != "recipe"}) == want
    assert [shrunk(c) for c in grid_cells(full)] == grid_cells(small)
    big, little = sweep_cells(full), sweep_cells(small)
    assert [c.point for c in big] == [c.point for c in little]  # the same study, same axes
    assert [shrunk(c.config) for c in big] == [c.config for c in little]
    assert small["sweep"]["name"] == full["sweep"]["name"]
    assert small["linreg"] == {**full["linreg"], **SMOKE_LINREG}
    assert small["smoke"] and "SMOKE RUN" in small["description"]
    # the step titles are the same but for the epochs
    cfg = {"preset": name, "data_dir": Path("d"), "out": Path("o"), "device": "cpu"}
    titles = [s.title for s in pipeline.plan(pipeline.AllConfig(**cfg))]
    smoke_titles = [s.title for s in pipeline.plan(pipeline.AllConfig(**cfg, smoke=True))]
    assert len(smoke_titles) == len(titles) and smoke_titles[-1] == (
        f"Problem 3: hw0 linreg --method all --n {SMOKE_LINREG['n']}")
    assert [t for t in smoke_titles if "epochs" not in t and "Problem 3" not in t] == \
        [t for t in titles if "epochs" not in t and "Problem 3" not in t]


def test_a_sweep_over_sizes_keeps_its_axes_cut():
    """A one-at-a-time sweep over batch size and training images keeps those axes (their
    values cut, each once), and every cell is valid."""
    p = {**pipeline.PRESETS["quick"], "sweep": {"preset": "warmup-knobs", "name": "knobs"}}
    small = smoke_preset(p)["sweep"]
    assert small["axes"] == {"batch_size": (16,), "train_samples": (16,)}
    assert small["train_options"] == {**CUT, "batch_size": 16}  # the centre of each axis
    cells = sweep_cells(smoke_preset(p))
    assert {c.config.train_samples for c in cells} == {16}
    assert {c.point[2][1] for c in cells} == {"sgd", "adam"}  # the other axes untouched
    # a product sweep over batch sizes: the axis cut, not fixed by an option
    p["sweep"] = {"preset": "bn-study", "name": "bn", "axes": {"batch_size": (8, 64, 256)}}
    small = smoke_preset(p)["sweep"]
    assert small["axes"] == {"batch_size": (8, 16)} and "batch_size" not in small["train_options"]
    cells = sweep_cells(smoke_preset(p))  # each value checked alone at the default batch 128
    assert {c.config.batch_size for c in cells} == {8, 16}
    assert {c.config.train_samples for c in cells} == {128}  # so enough images for it


def test_on_a_gpu_the_smoke_keeps_the_presets_precision():
    small = smoke_preset(pipeline.PRESETS["full"], cpu=False)
    assert "precision" not in small["warmup"][0] and small["warmup"][0]["compile"] is False
