"""One name per quantity: a run's full-train error is called and valued the same in `hw0
runs`, `hw0 grid status`, `hw0 all`'s step line, the report and the history's CSV; the running
train error is never shown under that name."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from hw0cli import runs, store
from hw0cli.cli import app
from hw0cli.quantities import FULL_TRAIN, LABELS, TRAIN_RUNNING, strict_json

runner = CliRunner()


@pytest.mark.slow
def test_the_full_train_error_has_one_name_and_one_value_everywhere(cifar_root, tmp_path):
    grid = ["--widths", "2", "--noise", "1", "--train-samples", "200", "--batch-size", "50",
            "--epochs", "3", "--precision", "fp32", "--no-compile", "--device", "cpu",
            "--data-dir", str(cifar_root), "--out", str(tmp_path)]
    assert runner.invoke(app, ["grid", "run", "--index", "0", *grid]).exit_code == 0
    (r,) = runs.list_runs(tmp_path)
    h = store.read_h5(r.path, prefixes=("history/",)).group("history")
    full, running = runs.last_finite(h[FULL_TRAIN]), runs.last_finite(h[TRAIN_RUNNING])
    assert full != running  # eval mode on the final weights vs train mode over the epoch
    shown = f"{100 * full:.2f}%"
    name = LABELS[FULL_TRAIN]

    listing = runner.invoke(app, ["runs", "--out", str(tmp_path)]).output
    assert "full-train" in listing and shown in listing
    assert f"{100 * running:.2f}%" not in listing
    assert json.loads(runner.invoke(app, ["runs", "--json", "--out", str(tmp_path)])
                      .stdout)[0][FULL_TRAIN] == full

    status = runner.invoke(app, ["grid", "status", *grid]).output
    assert name in status and shown in status
    cell = json.loads(runner.invoke(app, ["grid", "status", "--json", *grid]).stdout)[0]
    assert cell[FULL_TRAIN] == full and cell["train_err_running"] == running

    from hw0cli.pipeline import _train_step
    from hw0cli.train.config import make_config
    step = _train_step(make_config(**{**r.config, "data_dir": cifar_root, "out": tmp_path}))
    assert step(None).endswith(f"{name} {shown}")

    from hw0cli.report.grid import problem2_section
    sec = problem2_section(runs.list_runs(tmp_path), tmp_path / "fig")
    header, rows = next(b.table for b in sec.blocks if b.kind == "table")
    assert rows[0][header.index(name)] == shown

    csv = runner.invoke(app, ["runs", "history", "--csv", "--out", str(tmp_path),
                              r.run_id]).stdout.splitlines()
    last = dict(zip(csv[0].split(","), csv[-1].split(","), strict=True))
    assert float(last[FULL_TRAIN]) == full and float(last[TRAIN_RUNNING]) == running


def test_strict_json_turns_every_non_finite_number_into_null():
    import numpy as np
    got = strict_json({"a": float("nan"), "b": [1.0, float("inf"), np.float32("nan")],
                       "c": (np.float64(0.5), "x"), "d": {"e": -float("inf")}})
    assert got == {"a": None, "b": [1.0, None, None], "c": [0.5, "x"], "d": {"e": None}}
    json.dumps(got, allow_nan=False)
