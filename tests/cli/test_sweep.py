"""hw0 sweep through the CLI: listed commands, bad input, diverged cells, status, report, the
batch scripts."""

from __future__ import annotations

import json
import shlex

import pytest
from typer.testing import CliRunner

from hw0cli.cli import app
from tests.helpers import tiny_train_args

runner = CliRunner()
AXES = ["--axis", "lr=0.05,1e12", "--axis", "width=2,3"]


def base(cifar_root, out):
    return [*tiny_train_args(cifar_root, out), "--no-batchnorm"]


def test_list_commands_reproduce_run_ids(cifar_root, tmp_path):
    r = runner.invoke(app, ["sweep", "list", "--json", *AXES, *base(cifar_root, tmp_path)])
    assert r.exit_code == 0, r.output
    rows = json.loads(r.stdout)
    assert [row["point"] for row in rows] == [{"lr": 0.05, "width": 2}, {"lr": 0.05, "width": 3},
                                              {"lr": 1e12, "width": 2}, {"lr": 1e12, "width": 3}]
    r = runner.invoke(app, ["sweep", "run", "--index", "0", *AXES, *base(cifar_root, tmp_path)])
    assert r.exit_code == 0, r.output
    r = runner.invoke(app, [*shlex.split(rows[0]["command"])[1:], "--json"])
    assert r.exit_code == 0, r.output
    res = json.loads(r.stdout)
    assert res["status"] == "skipped" and res["run_id"] == rows[0]["run_id"]


@pytest.mark.parametrize(("args", "msg"), [
    (["--axis", "learning-rate=0.1"], "not an option a sweep can vary"),
    (["--axis", "lr=0.1,zero"], "'zero' is not a number"),
    (["--axis", "lr=0.1,-0.1"], "--lr must be > 0"),
    (["--axis", "schedule=constant,exp"], "Unknown schedule 'exp'"),
    (["--axis", "width=2,2000"], "--width must be in [1, 1024]"),
    (["--axis", "lr=0.1", "--run-id", "x"], "not a sweep option"),
    (["--axis", "lr=0.1", "--quiet"], "not a sweep option"),
    (["--axis", "lr=0.1", "--bogus"], "No such option"),
    (["--preset", "bn"], "Unknown sweep preset"),
    ([], "at least one --axis"),
])
@pytest.mark.parametrize("command", ["list", "run", "status", "report", "slurm"])
def test_bad_input_exits_2_before_anything_runs(tmp_path, command, args, msg):
    r = runner.invoke(app, ["sweep", command, *args, "--out", str(tmp_path / "out")])
    assert r.exit_code == 2, r.output
    assert msg in r.output and "Traceback" not in r.output
    assert not (tmp_path / "out").exists()


def test_diverged_cell_is_a_result(cifar_root, tmp_path):
    opts = [*AXES, *base(cifar_root, tmp_path)]
    r = runner.invoke(app, ["sweep", "run", "--index", "2", *opts])
    assert r.exit_code == 0, r.output
    assert "diverged" in r.output
    r = runner.invoke(app, ["sweep", "run", "--index", "2", *opts])  # a result: not rerun
    assert r.exit_code == 0 and "already diverged" in r.output
    assert runner.invoke(app, ["sweep", "run", "--index", "0", *opts]).exit_code == 0
    r = runner.invoke(app, ["sweep", "status", "--json", *opts])
    assert [s["state"] for s in json.loads(r.stdout)] == ["done", "missing", "diverged",
                                                          "missing"]
    r = runner.invoke(app, ["sweep", "status", *opts])
    assert "1 done" in r.output and "1 diverged" in r.output and "2 missing" in r.output
    r = runner.invoke(app, ["sweep", "report", "--json", *opts])
    assert r.exit_code == 0, r.output
    rep = json.loads(r.stdout)
    by_point = {(s["point"]["lr"], s["point"]["width"]): s for s in rep["settings"]}
    assert by_point[(1e12, 2)]["diverged"] == 1 and by_point[(0.05, 2)]["diverged"] == 0
    assert 0 <= by_point[(0.05, 2)]["train_err"][0] <= 1
    lr_sentence = next(s for s in rep["sentences"] if s.startswith("Changing lr"))
    assert "diverged (NaN loss) in 1 of 2 cells at 1e+12" in lr_sentence
    assert {p.rsplit("_", 1)[-1] for p in rep["plots"]} == {"axes.png", "curves.png",
                                                            "heatmap.png"}


@pytest.mark.slow
def test_run_all_cells_resumably_then_report(cifar_root, tmp_path):
    opts = [*AXES, *base(cifar_root, tmp_path)]
    r = runner.invoke(app, ["sweep", "run", "--jobs", "2", *opts])
    assert r.exit_code == 0, r.output
    assert "4 cells ran (2 diverged)" in r.output
    r = runner.invoke(app, ["sweep", "run", "--jobs", "2", *opts])
    assert r.exit_code == 0 and "0 cells ran" in r.output and "4 were already" in r.output
    r = runner.invoke(app, ["sweep", "report", *opts])
    assert r.exit_code == 0, r.output
    assert "Changing width" in r.output and "diverged" in r.output
    heat = next((tmp_path / "plots").glob("sweep_*_heatmap.png"))
    assert heat.stat().st_size > 5000
    # the report has the sweep's section; the warm-up section leaves its cells to it
    r = runner.invoke(app, ["report", "--out", str(tmp_path), "--format", "md"])
    assert r.exit_code == 0, r.output
    md = (tmp_path / "report" / "report.md").read_text()
    assert "Warm-up: what changes when you change lr, width" in md
    assert "diverged (NaN loss) in 2 of 2 cells at 1e+12" in md
    assert "No finished training run yet" in md
    assert "Every finished run, ranked" not in md  # nor does Problem 1's ranking list them


def test_slurm_scripts_sized_to_the_cells(cifar_root, tmp_path):
    r = runner.invoke(app, ["sweep", "slurm", *AXES, *base(cifar_root, tmp_path),
                            "--time", "00:10:00", "--name", "demo"])
    assert r.exit_code == 0, r.output
    text = (tmp_path / "slurm" / "demo.sbatch").read_text()
    assert "#SBATCH --array=0-3\n" in text and "--gres" not in text
    assert "#SBATCH --time=00:10:00" in text and "sweep run --axis lr=0.05,1000000000000.0" in text
    r = runner.invoke(app, ["grid", "slurm", "--widths", "2", "--noise", "0,1", "--gpus", "1",
                            "--parallel", "1", *tiny_train_args(cifar_root, tmp_path)])
    assert r.exit_code == 0, r.output
    (script,) = (tmp_path / "slurm").glob("grid-*.sbatch")
    text = script.read_text()
    assert "#SBATCH --array=0-1%1\n" in text and "#SBATCH --gres=gpu:1\n" in text
    r = runner.invoke(app, ["grid", "slurm", "--time", "soon", "--out", str(tmp_path)])
    assert r.exit_code == 2 and "--time" in r.output


@pytest.mark.slow
def test_one_at_a_time_report_compares_each_axis_at_the_base(cifar_root, tmp_path):
    opts = ["--axis", "batch-size=50,100", "--axis", "optimizer=sgd,adam", "--one-at-a-time",
            "--width", "2", *tiny_train_args(cifar_root, tmp_path)]
    opts.remove("--batch-size")
    opts.remove("50")  # the base batch size is the recipe's, 128
    for i in range(4):
        assert runner.invoke(app, ["sweep", "run", "--index", str(i), *opts]).exit_code == 0
    r = runner.invoke(app, ["sweep", "report", "--json", *opts])
    rep = json.loads(r.stdout)
    points = [s["point"] for s in rep["settings"]]
    assert points == [{"batch_size": 128, "optimizer": "sgd"},
                      {"batch_size": 50, "optimizer": "sgd"},
                      {"batch_size": 100, "optimizer": "sgd"},
                      {"batch_size": 128, "optimizer": "adam"}]
    err = {(p["batch_size"], p["optimizer"]): s["test_err"][0]
           for p, s in zip(points, rep["settings"], strict=True)}
    sentences = {s.split(":")[0]: s for s in rep["sentences"]}
    # each axis at every value, the others at the base: sgd only for batch size
    assert f"{100 * err[(50, 'sgd')]:.1f}% at 50" in sentences["Changing batch size"]
    assert f"{100 * err[(128, 'sgd')]:.1f}% at 128" in sentences["Changing batch size"]
    assert f"{100 * err[(128, 'adam')]:.1f}% at adam" in sentences["Changing optimizer"]
    assert "heatmap" not in " ".join(rep["plots"])  # not a product of two axes


def test_list_null_keeps_each_command_whole(cifar_root, tmp_path):
    out = tmp_path / "a b\nc"  # a newline would split a line-per-command listing
    args = ["sweep", "list", *AXES, *base(cifar_root, out)]
    lines = runner.invoke(app, args).stdout
    r = runner.invoke(app, [*args, "--null"])
    assert r.exit_code == 0, r.output
    *records, rest = r.stdout.split("\0")  # each command ends with a NUL
    assert rest == "" and len(records) == 4 and "\n".join(records) + "\n" == lines
    for cmd in records:  # one command each, its folder one argument
        argv = shlex.split(cmd)
        assert argv[:2] == ["hw0", "train"] and argv[argv.index("--out") + 1] == str(out)


@pytest.mark.slow
def test_run_leaves_cells_held_elsewhere_to_their_process(cifar_root, tmp_path):
    """A cell another process trains is not a failure of this sweep run: exit 0, said."""
    from hw0cli import runs, store
    args = [*AXES[2:], *base(cifar_root, tmp_path)]  # width=2,3 at lr 0.05
    ids = [row["run_id"] for row in json.loads(
        runner.invoke(app, ["sweep", "list", "--json", *args]).stdout)]
    with store.lock(runs.run_path(tmp_path, ids[1])):
        r = runner.invoke(app, ["sweep", "run", *args])
    assert r.exit_code == 0, r.output
    flat = " ".join(r.output.split())
    assert "1 cells ran (0 diverged)" in flat
    assert "1 of 2 cells were running in another process (cells 1)" in flat
