"""Grids and sweeps as Slurm job arrays, submitted to a real single-node Slurm that the test
starts (skipped where the Debian packages slurmctld, slurmd and munge are absent)."""

from __future__ import annotations

import json
import re

import pytest
from typer.testing import CliRunner

from hw0cli.cli import app
from tests.helpers import LocalSlurm, slurm_available, tiny_train_args

runner = CliRunner()


def test_submit_without_slurm_says_so(cifar_root, tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))  # no sbatch here
    r = runner.invoke(app, ["sweep", "slurm", "--axis", "lr=0.1,0.2", "--width", "2",
                            *tiny_train_args(cifar_root, tmp_path), "--submit"])
    assert r.exit_code == 1 and "sbatch is not on PATH" in r.output
    assert (tmp_path / "slurm").glob("*.sbatch")  # the script is written all the same


def _submit(args: list[str]) -> str:
    r = runner.invoke(app, args)
    assert r.exit_code == 0, r.output
    return re.search(r"submitted job (\d+)", r.output).group(1)


@pytest.mark.slow
@pytest.mark.skipif(not slurm_available(), reason="needs root and Debian's slurmctld, slurmd "
                    "and munge (.ci/run installs them)")
def test_sweep_array_on_a_real_slurm(cifar_root, tmp_path, monkeypatch):
    out = tmp_path / "out"
    sweep = ["--axis", "lr=0.05,0.1", "--axis", "width=2,3", *tiny_train_args(cifar_root, out),
             "--name", "slurm-test"]
    args = ["sweep", "slurm", *sweep, "--cpus-per-task", "1", "--time", "00:05:00", "--submit"]
    with LocalSlurm(tmp_path / "cluster") as cluster:
        monkeypatch.setenv("SLURM_CONF", cluster.env["SLURM_CONF"])
        cluster.wait_job(_submit(args), 1800)  # hang guards: a loaded CPU is slow
        status = runner.invoke(app, ["sweep", "status", "--json", *sweep])
        states = json.loads(status.stdout)
        logs = "\n".join(p.read_text() for p in (out / "slurm").glob("*.out"))
        assert [s["state"] for s in states] == ["done"] * 4, logs
        files = sorted((out / "runs").glob("*.h5"))
        assert len(files) == 4
        before = {p: p.stat().st_mtime_ns for p in files}
        cluster.wait_job(_submit(args), 900)  # again: every cell is finished already
    assert {p: p.stat().st_mtime_ns for p in files} == before
    second = [p.read_text() for p in (out / "slurm").glob("*.out")]
    assert sum("already done" in t for t in second) == 4


@pytest.mark.slow
@pytest.mark.skipif(not slurm_available(), reason="needs root and Debian's slurmctld, slurmd "
                    "and munge (.ci/run installs them)")
def test_grid_array_with_a_hostile_output_folder(cifar_root, tmp_path, monkeypatch):
    """`hw0 grid slurm` with an --out holding a space, quotes, ';', '#', '$( )', backquotes and
    '%j': sbatch takes the script, the logs land in that folder, the cells run, nothing else."""
    from tests.batch.test_grid import HOSTILE, assert_ran_exactly, hostile_args
    out = tmp_path / HOSTILE
    args = ["grid", "slurm", *hostile_args(cifar_root, out), "--cpus-per-task", "1", "--time",
            "00:10:00", "--submit"]
    with LocalSlurm(tmp_path / "cluster") as cluster:
        monkeypatch.setenv("SLURM_CONF", cluster.env["SLURM_CONF"])
        cluster.wait_job(_submit(args), 1800)
    logs = sorted((out / "slurm").glob("*.out"))
    assert len(logs) == 2, sorted(tmp_path.rglob("*.out"))
    assert_ran_exactly(tmp_path, out, 2)
