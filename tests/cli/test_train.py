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


# ---------------------------------------------------------------------------------------------
# a full disk, a damaged checkpoint


def _weights(path):
    from hw0cli import store
    return store.read_h5(path, prefixes=("weights/",)).group("weights")


def _last_json(r):
    return json.loads(r.stdout.strip().splitlines()[-1])


def test_full_disk_during_a_background_checkpoint_then_resume(cifar_root, tmp_path,
                                                              monkeypatch):
    """The disk fills up while epoch 2's checkpoint is written in the background: one message
    naming the disk and the file, exit 1, no temp file, epoch 1's checkpoint intact; with the
    space back the same command resumes and ends exactly where an uninterrupted run does."""
    import numpy as np

    from hw0cli import runs, store
    from tests.helpers import FullDisk, temp_files_left
    ref = _last_json(run(*tiny_args(cifar_root, tmp_path / "ref"), "--epochs", "3", "--json"))
    size = runs.run_path(tmp_path / "ref", ref["run_id"]).stat().st_size
    out = tmp_path / "full"
    disk = FullDisk(monkeypatch, out, free=2 * size + size // 2)  # epochs 0 and 1 fit
    r = run(*tiny_args(cifar_root, out), "--epochs", "3")
    path = runs.run_path(out, ref["run_id"])
    assert r.exit_code == 1 and disk.failures, r.output
    assert isinstance(r.exception, SystemExit) and r.output.count("Error:") == 1
    assert "No space left on device" in r.output and str(path) in r.output
    assert "the disk mounted at" in r.output and "0 B free" in r.output
    assert temp_files_left(out) == []
    kept = store.read_h5(path, attrs_only=True).attrs
    assert kept["epochs_done"] == 1 and kept["status"] == "running"
    disk.free = None
    res = _last_json(run(*tiny_args(cifar_root, out), "--epochs", "3", "--json"))
    assert res["status"] == "finished" and res["resumed_from"] == 1
    wa, wb = _weights(runs.run_path(tmp_path / "ref", ref["run_id"])), _weights(path)
    for k in wa:
        np.testing.assert_array_equal(wa[k], wb[k], err_msg=k)
    assert res["test_err"] == ref["test_err"] and res["train_loss"] == ref["train_loss"]


def test_damaged_checkpoint_is_refused_and_force_starts_over(cifar_root, tmp_path):
    from hw0cli import runs
    from hw0cli.train.config import run_id_for
    from hw0cli.train.run import run_train
    from tests.helpers import InterruptAt, config_from_train_args, damage
    args = [*tiny_args(cifar_root, tmp_path), "--epochs", "3"]
    cfg = config_from_train_args(args[1:])
    with pytest.raises(Exception, match="Interrupted"):
        run_train(cfg, reporter=InterruptAt(1))
    other = _last_json(run(*tiny_args(cifar_root, tmp_path), "--seed", "1", "--json"))
    path = damage(runs.run_path(tmp_path, run_id_for(cfg)), "flip-tail")
    for extra in ((), ("--resume",)):
        r = run(*args, *extra)
        assert r.exit_code == 1 and f"{path} is damaged" in r.output and "--force" in r.output
        assert isinstance(r.exception, SystemExit)
    listing = run("runs", "--out", tmp_path)
    assert listing.exit_code == 0 and other["run_id"] in listing.output
    assert "Warning:" in listing.output and "damaged" in listing.output
    r = run(*args, "--force", "--json")
    assert r.exit_code == 0 and _last_json(r)["status"] == "finished"


@pytest.mark.slow
def test_full_disk_in_the_compile_cache(cifar_root, tmp_path, monkeypatch):
    """torch.compile's cache under $HW0_CACHE on a full disk: inductor's own error, deep
    inside the compile, becomes the one message naming the cache and its disk; the run files
    already there are untouched, nothing half-written is left, and once the disk has space
    again the same command trains the run."""
    import os
    import subprocess
    import sys

    from tests.helpers import FullDisk, temp_files_left
    cache, out = tmp_path / "cache", tmp_path / "out"
    monkeypatch.setenv("HW0_CACHE", str(cache))
    for var in ("TORCHINDUCTOR_CACHE_DIR", "TRITON_CACHE_DIR"):
        monkeypatch.delenv(var, raising=False)
    # an earlier run, in a process of its own: this one's compile must meet the cache cold
    subprocess.run([sys.executable, "-m", "hw0cli", *tiny_args(cifar_root, out), "--seed", "1"],
                   env={**os.environ, "HW0_CACHE": str(tmp_path / "other")}, check=True,
                   capture_output=True, timeout=900)
    earlier = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    disk = FullDisk(monkeypatch, cache, free=0)
    r = run(*tiny_args(cifar_root, out), "--compile")
    assert r.exit_code == 1 and disk.failures, r.output
    assert isinstance(r.exception, SystemExit) and "InductorError" not in r.output
    assert "No space left on device" in r.output and f"the cache {cache}" in r.output
    assert "0 B free" in r.output
    assert r.output.count("Error:") == 1 and "Traceback" not in r.output
    assert {p: p.read_bytes() for p in earlier} == earlier and temp_files_left(out) == []
    disk.free = None  # space again
    r = run(*tiny_args(cifar_root, out), "--compile")
    assert r.exit_code == 0, r.output
    assert len(list((out / "runs").glob("*.h5"))) == 2


def _mount_tmpfs(folder, size: str) -> bool:
    import os
    import subprocess
    if os.geteuid() != 0:
        return False
    folder.mkdir(parents=True)
    return subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)],
                          capture_output=True).returncode == 0


@pytest.mark.slow
def test_a_real_full_disk_gives_one_message_and_resumes(cifar_root, tmp_path):
    """The issue's reproduction, on a real small filesystem (root only): a background
    checkpoint write hits the full disk. Exit 1 with one message, not a segfault."""
    import os
    import shutil
    import subprocess
    import sys
    from pathlib import Path

    from hw0cli import store
    from tests.helpers import temp_files_left
    disk = tmp_path / "disk"
    if not _mount_tmpfs(disk, "1m"):
        pytest.skip("needs root and a tmpfs mount")
    try:
        fill = disk / "fill"
        fill.write_bytes(b"\0" * (shutil.disk_usage(disk).free - 100 * 1024))
        cmd = [sys.executable, "-m", "hw0cli", "train", "--width", "4", "--epochs", "3",
               "--train-samples", "300", "--batch-size", "50", "--device", "cpu",
               "--precision", "fp32", "--no-compile", "--data-dir", str(cifar_root), "--out",
               str(disk / "out")]
        env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
        p = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
        assert p.returncode == 1, p.stderr[-3000:]
        assert "No space left on device" in p.stderr and "Traceback" not in p.stderr
        assert "Exception ignored" not in p.stderr and temp_files_left(disk) == []
        (path,) = (disk / "out" / "runs").glob("*.h5")  # the first checkpoint, whole
        assert store.read_h5(path, attrs_only=True).attrs["status"] == "running"
        fill.unlink()
        p = subprocess.run([*cmd, "--json"], capture_output=True, text=True, env=env,
                           timeout=600)
        assert p.returncode == 0, p.stderr[-3000:]
        assert json.loads(p.stdout.strip().splitlines()[-1])["epochs_done"] == 3
    finally:
        subprocess.run(["umount", str(disk)], check=False)


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
        from hw0cli.train.run import run_train
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


@pytest.mark.parametrize(("shift", "views"), [(0, "flip TTA"),
                                               (1, "6-view TTA: flip x shift 0, +-1 px")])
def test_the_tta_result_names_the_views_it_averaged(cifar_root, tmp_path, shift, views):
    r = run(*tiny_args(cifar_root, tmp_path), "--tta", "--tta-shift", shift)
    assert r.exit_code == 0, r.output
    out = flat(r.output)
    assert f"test err ({views})" in out and f"with {views}: test accuracy" in out
    assert shift == 0 or "flip TTA" not in out
