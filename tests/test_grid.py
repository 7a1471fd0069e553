import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from hw0cli import grid, runs, store
from hw0cli.errors import Hw0Error
from hw0cli.train import run_id_for, run_train
from tests.helpers import config_from_train_args

runner = CliRunner()
ROOT = Path(__file__).resolve().parents[1]


def opts(cifar_root, out):
    return ["--widths", "2,4", "--noise", "0,1", "--train-samples", "200", "--batch-size", "50",
            "--epochs", "2", "--precision", "fp32", "--no-compile", "--data-dir",
            str(cifar_root), "--out", str(out)]


def test_expansion_and_defaults(tmp_path):
    cfg = grid.GridConfig(data_dir=tmp_path, out=tmp_path)
    cs = grid.cells(cfg)
    assert [(c.width, c.noise) for c in cs] == [(4, 0.0), (4, 0.5), (4, 1.0), (64, 0.0),
                                               (64, 0.5), (64, 1.0)]
    assert all(c.optimizer == "adam" and c.until_train_error == 0.01 for c in cs)
    assert len({run_id_for(c) for c in cs}) == 6
    assert grid.parse_list("4,64", int, "--widths") == (4, 64)
    for bad in ("4,,64", "4,x", "4,4"):
        with pytest.raises(Hw0Error):
            grid.parse_list(bad, int, "--widths")


def test_fast_recipe_cells_at_each_width(tmp_path):
    """A grid of the fast recipe runs the recipe's settings of each width, and each cell's
    command line runs exactly that cell (same run id)."""
    cs = grid.cells(grid.GridConfig(widths=(16, 32, 64), noises=(0.0,), recipe="fast",
                                    data_dir=tmp_path, out=tmp_path))
    assert [(c.lr, c.logit_scale) for c in cs] == [(0.8, 0.25), (0.5657, 0.1768), (0.4, 0.125)]
    for c in cs:
        args = grid.train_args(c)
        assert "--lr" not in args
        assert run_id_for(config_from_train_args(args)) == run_id_for(c)


def test_lock_refuses_second_writer(cifar_root, tmp_path):
    c = grid.cells(grid.GridConfig(widths=(2,), noises=(0.0,), data_dir=cifar_root,
                                   out=tmp_path, train_options=(("train_samples", 100),
                                                                ("batch_size", 50))))[0]
    path = runs.run_path(tmp_path, run_id_for(c))
    with store.lock(path), pytest.raises(Hw0Error, match="being written by pid"):
        run_train(c)
    assert store.is_locked(path) is False


def test_grid_sh_syntax_and_dry_run(tmp_path):
    for script in ("grid.sh", "grid.slurm"):
        assert subprocess.run(["bash", "-n", str(ROOT / "scripts" / script)]).returncode == 0
    env = {**os.environ, "HW0": f"{sys.executable} -m hw0cli"}
    r = subprocess.run(["bash", str(ROOT / "scripts" / "grid.sh"), "-j", "2", "--dry-run",
                        "--train-samples", "2000", "--out", str(tmp_path)],
                       capture_output=True, text=True, env=env)
    assert r.returncode == 0, r.stderr
    lines = [ln for ln in r.stdout.splitlines() if ln.startswith("cell ")]
    assert len(lines) == 6 and "--width 64" in lines[0]  # widest first
    assert all("--train-samples 2000" in ln for ln in lines)
