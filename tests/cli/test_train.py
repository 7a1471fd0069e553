"""The CLI through Typer's CliRunner: exit codes, messages, nothing written on bad input."""

import json

import pytest
from typer.testing import CliRunner

from hw0cli.cli import app

runner = CliRunner()


def run(*args: str):
    return runner.invoke(app, [str(a) for a in args])


def flat(output: str) -> str:
    """The output's words, unwrapped (click's usage errors come in a box)."""
    return " ".join(output.replace("│", " ").split())


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
    (["--seed", "99999999999999999999"], 2, "--seed must be in [0, 4294967295]"),
    (["--seed", "-1"], 2, "--seed"),
    (["--run-id", "--force"], 2, "may not start with '-'"),
    (["--run-id", "-x"], 2, "may not start with '-'"),
    (["--out", ""], 2, "empty; write . for the current folder"),
    (["--data-dir", ""], 2, "empty; write . for the current folder"),
])
def test_bad_train_options(tmp_path, args, code, msg):
    out = tmp_path / "out"
    r = run("train", "--data-dir", tmp_path / "nodata", "--out", out, *args)
    assert r.exit_code == code, r.output
    assert msg in flat(r.output) and "Traceback" not in r.output
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
    for value in (f"{100 * res['test_err']:.2f}%", f"{100 * res['train_err']:.2f}%"):
        assert value in row  # numbers are never cut to fit a narrow terminal
    assert max(len(line) for line in table.output.splitlines()) <= 80
    views = run("runs", "--views", "--out", out)
    row = next(line for line in views.output.splitlines() if res["run_id"] in line)
    assert f"{100 * res['test_acc_views']['vflip']:.2f}%" in row and "plain" in row


def test_truncated_batch_via_cli(tmp_path):
    from tests.helpers import write_cifar
    root = write_cifar(tmp_path / "d")
    p = root / "cifar-10-batches-py" / "test_batch"
    p.write_bytes(p.read_bytes()[:1000])
    r = run("train", "--data-dir", root, "--out", tmp_path / "o", "--train-samples", "100",
            "--batch-size", "50")
    assert r.exit_code == 1 and "test_batch" in r.output and "Traceback" not in r.output


def test_width_beyond_the_memory_is_refused(cifar_root, tmp_path, monkeypatch):
    """--width 1024 is inside the declared range; where memory is short, the estimate says
    so before anything is allocated or written."""
    from hw0cli import memory
    monkeypatch.setattr(memory, "available_bytes", lambda device: 4 * 10**9)
    out = tmp_path / "out"
    r = run(*tiny_args(cifar_root, out), "--width", "1024")
    assert r.exit_code == 2, r.output
    assert "needs about" in r.output and "4.0 GB is available" in r.output
    assert "--width" in r.output and "Traceback" not in r.output
    assert not out.exists()


def test_out_empty_is_refused_everywhere(tmp_path):
    for args in (["runs", "--out", ""], ["grid", "list", "--out", ""],
                 ["sweep", "list", "--axis", "lr=0.1,0.2", "--out", ""],
                 ["linreg", "--out", ""], ["report", "--out", ""]):
        r = run(*args)
        assert r.exit_code == 2 and "empty; write ." in flat(r.output), (args, r.output)
