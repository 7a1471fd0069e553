"""hw0 linreg through the CLI: bad input, missing data, JSON."""

import json

import pytest
from typer.testing import CliRunner

from hw0cli.cli import app
from tests.helpers import write_mnist

runner = CliRunner()


@pytest.mark.parametrize(("args", "msg"), [
    (["--n", "0"], "--n"),
    (["--n", "60001"], "--n"),
    (["--method", "magic"], "Unknown method"),
    (["--bandwidths", "1,-2"], "bandwidths must be positive"),
    (["--bandwidths", "1,,x"], "comma-separated"),
    (["--rf-features", "0,10"], "--rf-features"),
    (["--gd-iters", "0"], "--gd-iters"),
    (["--gd-step", "-1"], "--gd-step"),
    (["--seed", "99999999999999999999"], "--seed must be in [0, 4294967295]"),
    (["--method", "rf", "--rf-features", "1e9"], "--rf-features 1000000000 at n = 500 needs "
     "about"),
    (["--rf-features", "100,1e9"], "TB of memory"),
])
def test_linreg_bad_input(tmp_path, args, msg):
    r = runner.invoke(app, ["linreg", *args, "--data-dir", str(tmp_path), "--out",
                            str(tmp_path / "o")])
    assert r.exit_code == 2, r.output
    assert msg in r.output and "Traceback" not in r.output
    assert not (tmp_path / "o").exists()


def test_linreg_missing_and_truncated_mnist(tmp_path):
    r = runner.invoke(app, ["linreg", "--data-dir", str(tmp_path), "--out", str(tmp_path)])
    assert r.exit_code == 1 and "MNIST not found" in r.output
    root = write_mnist(tmp_path / "d", gz=False)
    f = root / "MNIST" / "raw" / "train-images-idx3-ubyte"
    f.write_bytes(f.read_bytes()[:-100])
    r = runner.invoke(app, ["linreg", "--data-dir", str(root), "--out", str(tmp_path)])
    assert r.exit_code == 1 and "truncated" in r.output


@pytest.mark.slow
def test_linreg_cli_json(tmp_path):
    root = write_mnist(tmp_path / "d", n_train=200, n_test=50)
    r = runner.invoke(app, ["linreg", "--method", "kernel", "--n", "80", "--json",
                            "--data-dir", str(root), "--out", str(tmp_path / "o")])
    assert r.exit_code == 0, r.output
    d = json.loads(r.stdout)
    assert 0 <= d["summary"]["kernel"]["best_test_acc"] <= 1
