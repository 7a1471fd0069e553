"""hw0 data: exit codes and messages through Typer's CliRunner."""

import json

from typer.testing import CliRunner

from hw0cli.cli import app
from tests.helpers import write_cifar, write_mnist

runner = CliRunner()


def run(*args):
    return runner.invoke(app, [str(a) for a in args])


def test_data_info_and_runs_empty(cifar_root, tmp_path):
    r = run("data", "info", "--data-dir", cifar_root)  # MNIST missing: exit 1, says the fix
    assert r.exit_code == 1 and "differs" in r.output and "missing" in r.output
    assert "hw0 data download --which mnist" in r.output
    r = run("runs", "--out", tmp_path)
    assert r.exit_code == 0 and "No runs" in r.output


def test_info_exits_0_only_when_every_file_is_there(tmp_path):
    root = write_cifar(tmp_path)
    r = runner.invoke(app, ["data", "info", "--data-dir", str(root), "--json"])
    assert r.exit_code == 1 and json.loads(r.stdout)[0]["dataset"] == "cifar10"
    write_mnist(root)
    r = runner.invoke(app, ["data", "info", "--data-dir", str(root)])
    assert r.exit_code == 0, r.output
