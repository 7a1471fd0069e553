"""hw0 grid through the CLI: listed commands, status, report, bad input."""

import json
import shlex

import pytest
from typer.testing import CliRunner

from hw0cli import runs, store
from hw0cli.batch import grid
from hw0cli.cli import app
from hw0cli.errors import Hw0Error
from hw0cli.train.run import run_train
from tests.helpers import InterruptAt

runner = CliRunner()


def opts(cifar_root, out):
    return ["--widths", "2,4", "--noise", "0,1", "--train-samples", "200", "--batch-size", "50",
            "--epochs", "2", "--precision", "fp32", "--no-compile", "--data-dir",
            str(cifar_root), "--out", str(out)]


def test_list_commands_reproduce_run_ids(cifar_root, tmp_path):
    r = runner.invoke(app, ["grid", "list", "--json", *opts(cifar_root, tmp_path)])
    assert r.exit_code == 0, r.output
    rows = json.loads(r.stdout)
    assert len(rows) == 4 and [x["index"] for x in rows] == [0, 1, 2, 3]
    r = runner.invoke(app, ["grid", "run", "--index", "1", *opts(cifar_root, tmp_path)])
    assert r.exit_code == 0, r.output
    # the listed command for cell 1 finds the finished run: same settings, same id
    args = shlex.split(rows[1]["command"])[1:]
    r = runner.invoke(app, [*args, "--json"])
    assert r.exit_code == 0, r.output
    res = json.loads(r.stdout)
    assert res["status"] == "skipped" and res["run_id"] == rows[1]["run_id"]


@pytest.mark.slow
def test_status_mix_and_report(cifar_root, tmp_path):
    base = opts(cifar_root, tmp_path)
    r = runner.invoke(app, ["grid", "run", "--index", "0", *base])
    assert r.exit_code == 0, r.output
    r = runner.invoke(app, ["grid", "status", "--json", *base])
    states = json.loads(r.stdout)
    # cell 1: interrupted after its first epoch; cell 2: diverged; cell 3: a corrupt leftover
    ids = [s["run_id"] for s in states]
    c1 = grid.cells(grid.GridConfig(widths=(2, 4), noises=(0.0, 1.0), data_dir=cifar_root,
                                    out=tmp_path, train_options=(
                                        ("train_samples", 200), ("batch_size", 50),
                                        ("epochs", 2), ("precision", "fp32"),
                                        ("compile", False))))

    with pytest.raises(Hw0Error):
        run_train(c1[1], reporter=InterruptAt(1))
    run_train(c1[2])
    store.update_h5(runs.run_path(tmp_path, ids[2]), attrs={"status": "diverged",
                                                            "message": "loss nan"})
    runs.run_path(tmp_path, ids[3]).write_bytes(b"half a file")
    r = runner.invoke(app, ["grid", "status", "--json", *base])
    got = [s["state"] for s in json.loads(r.stdout)]
    assert got == ["done", "incomplete", "failed", "corrupt"]
    r = runner.invoke(app, ["grid", "status", *base])
    assert "1 done" in r.output and "1 incomplete" in r.output
    r = runner.invoke(app, ["grid", "report", *base])
    assert r.exit_code == 0, r.output
    assert "missing" in r.output  # cells without a finished run say so
    for png in ("error_vs_noise.png", "learning_curves.png"):  # named by the grid
        (found,) = (tmp_path / "plots").glob(f"grid-*_{png}")
        assert found.stat().st_size > 5000
    # re-running the grid finishes what is missing and resumes the interrupted cell
    runs.run_path(tmp_path, ids[3]).unlink()
    store.update_h5(runs.run_path(tmp_path, ids[2]), attrs={"status": "interrupted"})
    r = runner.invoke(app, ["grid", "run", "--jobs", "2", *base])
    assert r.exit_code == 0, r.output
    r = runner.invoke(app, ["grid", "report", "--json", *base])
    rows = json.loads(r.stdout)["rows"]
    assert all(row["missing"] == 0 and len(row["seeds"]) == 1 for row in rows)
    assert all(0 <= row["train_err"][0] <= 1 for row in rows)


@pytest.mark.parametrize(("args", "msg"), [
    (["--widths", "4,,x"], "--widths"),
    (["--noise", "0,1.5"], "[0, 1]"),
    (["--width", "8"], "not a grid option"),
    (["--lr", "-1"], "--lr"),
    (["--bogus"], "No such option"),
])
def test_grid_bad_input(tmp_path, args, msg):
    r = runner.invoke(app, ["grid", "list", *args, "--out", str(tmp_path)])
    assert r.exit_code == 2, r.output
    assert msg in r.output and "Traceback" not in r.output


def test_index_outside_grid(tmp_path):
    r = runner.invoke(app, ["grid", "run", "--index", "6", "--out", str(tmp_path)])
    assert r.exit_code == 2 and "outside the grid" in r.output


def small(cifar_root, out, samples="200"):
    return ["--widths", "2", "--noise", "0,1", "--train-samples", samples, "--batch-size",
            "50", "--epochs", "1", "--precision", "fp32", "--no-compile", "--device", "cpu",
            "--data-dir", str(cifar_root), "--out", str(out)]


@pytest.mark.slow
def test_status_with_other_options_hints_at_them_and_reports_do_not_overwrite(cifar_root,
                                                                             tmp_path):
    for samples in ("200", "300"):  # two grids under one --out
        r = runner.invoke(app, ["grid", "run", *small(cifar_root, tmp_path, samples)])
        assert r.exit_code == 0, r.output
        r = runner.invoke(app, ["grid", "report", *small(cifar_root, tmp_path, samples)])
        assert r.exit_code == 0, r.output
    plots = sorted(p.name for p in (tmp_path / "plots").glob("grid-*_error_vs_noise.png"))
    assert len(plots) == 2  # one per grid: the second report kept the first one's plot
    # the same grid asked about with another --train-samples: every cell missing, and why
    r = runner.invoke(app, ["grid", "status", *small(cifar_root, tmp_path, "250")])
    assert "2 missing" in r.output and "Hint:" in r.output
    said = " ".join(r.output.split())
    assert "2 with --train-samples 200" in said and "2 with --train-samples 300" in said
    r = runner.invoke(app, ["grid", "status", *small(cifar_root, tmp_path, "200")])
    assert "Hint" not in r.output and "full-train err" in r.output
