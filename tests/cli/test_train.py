"""The CLI through Typer's CliRunner: exit codes, messages, nothing written on bad input."""

import json

import pytest
from typer.testing import CliRunner

from hw0cli.cli import app

runner = CliRunner()


def run(*args: str):
    return runner.invoke(app, [str(a) for a in args])


def tiny_args(cifar_root, out):
    return ["train", "--width", "4", "--epochs", "1", "--batch-size", "50",
            "--train-samples", "200", "--data-dir", cifar_root, "--out", out,
            "--precision", "fp32", "--no-compile"]


@pytest.mark.parametrize(("args", "code", "msg"), [
    (["--width", "0"], 2, "--width"),
    (["--width", "100000"], 2, "--width"),
    (["--noise", "1.5"], 2, "--noise"),
    (["--noise", "-0.1"], 2, "--noise"),
    (["--epochs", "0"], 2, "--epochs"),
    (["--batch-size", "0"], 2, "--batch-size"),
    (["--batch-size", "99999"], 2, "--batch-size"),
    (["--lr", "0"], 2, "--lr"),
    (["--lr", "-1"], 2, "--lr"),
    (["--optimizer", "rmsprop"], 2, "optimizer"),
    (["--schedule", "exp"], 2, "schedule"),
    (["--augment", "rotate"], 2, "augmentation"),
    (["--train-samples", "0"], 2, "--train-samples"),
    (["--train-samples", "50001"], 2, "--train-samples"),
    (["--device", "tpu"], 2, "device"),
    (["--precision", "fp8"], 2, "precision"),
    (["--pad-mode", "wrap"], 2, "padding mode"),
    (["--cutout", "40"], 2, "--cutout"),
    (["--logit-scale", "0"], 2, "--logit-scale"),
    (["--warmup", "1.5"], 2, "--warmup"),
    (["--tta-shift", "2"], 2, "--tta"),
    (["--crop-pad", "0"], 2, "--crop-pad"),
    (["--alternate-flip", "--augment", "crop"], 2, "add hflip to --augment"),
    (["--recipe", "fast", "--augment", "crop"], 2, "--no-alternate-flip"),
    (["--whiten", "--width", "1"], 2, "--whiten needs --width >= 2"),
    (["--compile-mode", "turbo"], 2, "compile mode"),
])
def test_bad_train_options(tmp_path, args, code, msg):
    out = tmp_path / "out"
    r = run("train", "--data-dir", tmp_path / "nodata", "--out", out, *args)
    assert r.exit_code == code, r.output
    assert msg in r.output and "Traceback" not in r.output
    assert not out.exists()  # nothing written


def test_cuda_without_gpu(tmp_path):
    import torch
    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    r = run("train", "--device", "cuda", "--data-dir", tmp_path, "--out", tmp_path / "o")
    assert r.exit_code == 2 and "no CUDA GPU" in r.output


def test_missing_data_is_runtime_error(tmp_path):
    r = run("train", "--data-dir", tmp_path / "empty", "--out", tmp_path / "o")
    assert r.exit_code == 1
    assert "hw0 data download" in r.output and "Traceback" not in r.output


def test_unwritable_output(cifar_root, tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    try:
        import os
        if os.access(ro, os.W_OK):
            pytest.skip("running as a user who can write anywhere")
        r = run(*tiny_args(cifar_root, ro / "out"))
        assert r.exit_code == 1 and "--out" in r.output
    finally:
        ro.chmod(0o700)


def test_unwritable_output_as_file(cifar_root, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    r = run(*tiny_args(cifar_root, blocker))
    assert r.exit_code == 1 and "--out" in r.output and "Traceback" not in r.output


def test_train_json_runs_and_resume_errors(cifar_root, tmp_path):
    out = tmp_path / "out"
    r = run(*tiny_args(cifar_root, out), "--json")
    assert r.exit_code == 0, r.output
    res = json.loads(r.stdout.strip().splitlines()[-1])
    assert res["status"] == "finished" and 0 <= res["test_err"] <= 1
    again = run(*tiny_args(cifar_root, out), "--json")
    assert json.loads(again.stdout.strip().splitlines()[-1])["status"] == "skipped"
    r = run(*tiny_args(cifar_root, out), "--seed", "5", "--resume")
    assert r.exit_code == 2 and "no run" in r.output
    r = run(*tiny_args(cifar_root, out), "--run-id", res["run_id"], "--lr", "0.5")
    assert r.exit_code == 2 and "different configuration" in r.output
    listing = run("runs", "--out", out, "--json")
    rows = json.loads(listing.stdout)
    assert [x["run_id"] for x in rows] == [res["run_id"]]
    table = run("runs", "--out", out)  # CliRunner's terminal: 80 columns
    assert res["run_id"] in table.output
    row = next(line for line in table.output.splitlines() if res["run_id"] in line)
    for value in (f"{100 * res['test_err']:.2f}%", f"{100 * res['train_eval_err']:.2f}%"):
        assert value in row  # numbers are never cut to fit a narrow terminal
    assert max(len(line) for line in table.output.splitlines()) <= 80
    views = run("runs", "--views", "--out", out)
    lines = views.output.splitlines()
    at = next(i for i, line in enumerate(lines) if res["run_id"] in line)
    assert f"{100 * res['test_acc_views']['vflip']:.2f}%" in lines[at]
    assert "trained with: plain" in lines[at + 1]  # the run's details, on the line below


def test_truncated_batch_via_cli(tmp_path):
    from tests.helpers import write_cifar
    root = write_cifar(tmp_path / "d")
    p = root / "cifar-10-batches-py" / "test_batch"
    p.write_bytes(p.read_bytes()[:1000])
    r = run("train", "--data-dir", root, "--out", tmp_path / "o", "--train-samples", "100",
            "--batch-size", "50")
    assert r.exit_code == 1 and "test_batch" in r.output and "Traceback" not in r.output


def test_users_ctrl_c_is_not_an_error(cifar_root, tmp_path, monkeypatch):
    """The user's own Ctrl-C: "Interrupted:", exit 130, and the message says what is kept."""
    import hw0cli.cli.train as train_cli
    from hw0cli.errors import Hw0Error

    def stopped(*a, **k):
        raise Hw0Error("Interrupted. Run 'r' was stopped before its first epoch finished.",
                       exit_code=130)
    monkeypatch.setattr(train_cli, "run_with_display", stopped)
    r = run(*tiny_args(cifar_root, tmp_path))
    assert r.exit_code == 130 and "Interrupted: Run 'r' was stopped" in r.output
    assert "Error" not in r.output


def test_finished_or_busy_runs_are_reported_before_the_data_is_read(cifar_root, tmp_path,
                                                                    monkeypatch):
    """A finished run says so, and a run another process writes is refused, without reading
    CIFAR-10 (which takes seconds): here the data folder is gone by then."""
    from hw0cli import data, runs, store
    from hw0cli.errors import Hw0Error
    args = tiny_args(cifar_root, tmp_path / "out")
    first = run(*args, "--json")
    assert first.exit_code == 0, first.output
    rid = json.loads(first.stdout.splitlines()[-1])["run_id"]

    def no_reading(*a, **k):
        raise AssertionError("CIFAR-10 was read")
    monkeypatch.setattr(data, "_load_cifar10_cached", no_reading)
    again = run(*args)
    assert again.exit_code == 0 and "already finished" in again.output
    other = run(*args, "--seed", "7")  # a new run: it does read the data
    assert other.exit_code != 0 and "CIFAR-10 was read" in str(other.exception)
    busy = runs.run_path(tmp_path / "out", rid.replace("-s0-", "-s9-"))
    with store.lock(busy):
        from hw0cli.train import run_train
        from tests.helpers import tiny_config
        cfg = tiny_config(cifar_root, tmp_path / "out", epochs=1, seed=9, run_id=busy.stem)
        with pytest.raises(Hw0Error, match="is being written by"):
            run_train(cfg, data=no_reading)


@pytest.mark.slow
def test_batchnorm_flag_both_ways(cifar_root, tmp_path):
    on = run(*tiny_args(cifar_root, tmp_path), "--batchnorm", "--json")
    off = run(*tiny_args(cifar_root, tmp_path), "--no-batchnorm", "--json")
    ids = [json.loads(r.stdout.splitlines()[-1])["run_id"] for r in (on, off)]
    assert ids[0] != ids[1]
    plain = run(*tiny_args(cifar_root, tmp_path), "--json")  # on is the default: same run
    assert json.loads(plain.stdout.splitlines()[-1])["run_id"] == ids[0]
