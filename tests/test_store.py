"""The HDF5 store: locking without fcntl, schema-2 self-description, schema-1 files still read."""

from __future__ import annotations

import shutil
import sys
import warnings
from pathlib import Path

import h5py
import numpy as np
import pytest
from typer.testing import CliRunner

from hw0cli import runs, store
from tests.helpers import tiny_config

runner = CliRunner()


def downgrade_to_schema_1(src: Path, dst: Path) -> Path:
    """Rewrite a run file as schema 1 wrote it: float64 epochs, "null" for None, no dataset
    units or descriptions, no data identity, weight names or class names."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy2(src, dst)
    with h5py.File(dst, "r+") as f:
        f.attrs["schema_version"] = 1
        for k in ("data", "weight_names", "classes"):
            f.attrs.pop(k, None)
        f.attrs["reached_train_error_epoch"] = "null"
        epochs = f["history/epoch"][()].astype(np.float64)
        del f["history/epoch"]
        f.create_dataset("history/epoch", data=epochs)

        def strip(name: str, obj: object) -> None:
            if isinstance(obj, h5py.Dataset):
                for a in ("units", "description"):
                    obj.attrs.pop(a, None)
        f.visititems(strip)
    return dst


@pytest.fixture(scope="module")
def trained(cifar_root: Path, tmp_path_factory: pytest.TempPathFactory):
    from hw0cli.train import run_train
    return run_train(tiny_config(cifar_root, tmp_path_factory.mktemp("st"), epochs=2))


def test_every_history_and_eval_dataset_says_its_unit(trained, cifar_root: Path) -> None:
    from hw0cli.evaluate import EvalConfig, run_eval
    run_eval(EvalConfig(run=str(trained.path), views=("original", "vflip"), backend="torch",
                        device="cpu", out=trained.path.parents[1], data_dir=cifar_root))
    seen = []
    with h5py.File(trained.path, "r") as f:
        assert f.attrs["schema_version"] == 2
        assert "reached_train_error_epoch" not in f.attrs  # absent, not "null"
        assert not [k for k, v in f.attrs.items() if isinstance(v, str) and v == "null"]
        assert f["history/epoch"].dtype.kind == "i"

        def check(name: str, obj: object) -> None:
            if isinstance(obj, h5py.Dataset) and name.split("/")[0] in ("history", "eval"):
                seen.append(name)
                assert obj.attrs["units"] is not None, name
                assert len(obj.attrs["description"]) > 10, name
        f.visititems(check)
    assert "history/train_err" in seen and "eval/vflip/accuracy" in seen


def test_run_file_records_data_identity_and_weight_names(trained) -> None:
    a = store.read_h5(trained.path, attrs_only=True).attrs
    assert a["data"]["dataset"] == "cifar10" and a["data"]["official"] is False  # synthetic
    assert set(a["data"]["md5"]) == {*(f"data_batch_{i}" for i in range(1, 6)), "test_batch"}
    model, _ = runs.load_model(trained.path)
    assert set(a["weight_names"]) == set(model.state_dict())  # keys stay loadable
    assert a["weight_names"]["0.weight"] == "conv1.weight"
    assert a["weight_names"]["1.running_mean"] == "bn1.running_mean"
    assert a["weight_names"][f"{len(model) - 1}.weight"] == "classifier.weight"
    assert a["classes"][0] == "airplane"


def test_linreg_datasets_say_their_units(mnist_root: Path, tmp_path: Path) -> None:
    from hw0cli.linreg import LinregConfig, run_linreg
    res = run_linreg(LinregConfig(method="gd", n=100, gd_iters=50, data_dir=mnist_root,
                                  out=tmp_path, device="cpu"))
    missing = []
    with h5py.File(res.path, "r") as f:
        assert f.attrs["data"] and "official" in f.attrs["data"]

        def check(name: str, obj: object) -> None:
            if isinstance(obj, h5py.Dataset) and "units" not in obj.attrs:
                missing.append(name)
        f.visititems(check)
    assert missing == []


def test_schema_1_file_loads_evaluates_and_reports(trained, cifar_root: Path,
                                                   tmp_path: Path) -> None:
    from hw0cli.cli import app
    from hw0cli.evaluate import EvalConfig, run_eval
    old = downgrade_to_schema_1(trained.path, runs.run_path(tmp_path, trained.run_id))
    rec = store.read_h5(old)
    assert rec.attrs["schema_version"] == 1 and rec.attrs["reached_train_error_epoch"] is None
    model, _ = runs.load_model(old)
    assert set(model.state_dict()) == set(rec.group("weights"))
    res = run_eval(EvalConfig(run=str(old), views=("original",), backend="torch", device="cpu",
                              out=tmp_path, data_dir=cifar_root))
    assert res.views["original"].accuracy == pytest.approx(1 - trained.test_err, abs=1e-6)
    r = runner.invoke(app, ["runs", "--json", "--out", str(tmp_path)])
    assert r.exit_code == 0 and trained.run_id in r.output
    r = runner.invoke(app, ["runs", "history", trained.run_id, "--out", str(tmp_path)])
    assert r.exit_code == 0 and r.output.splitlines()[1].startswith("1,")  # integer epochs
    from hw0cli.report import warmup_section
    sec = warmup_section(runs.list_runs(tmp_path), tmp_path / "fig")
    assert any(b.kind == "table" for b in sec.blocks)


@pytest.fixture
def without_fcntl(monkeypatch: pytest.MonkeyPatch):
    """hw0 freshly imported where `import fcntl` fails (as on Windows); restored afterwards."""
    before = dict(sys.modules)
    monkeypatch.setitem(sys.modules, "fcntl", None)
    for name in list(sys.modules):
        if name.startswith(("hw0cli", "filelock")):
            del sys.modules[name]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # filelock: "only soft file lock is available"
        import hw0cli.cli
        import hw0cli.store
    yield hw0cli.cli, hw0cli.store
    for name in list(sys.modules):
        if name.startswith(("hw0cli", "filelock")):
            del sys.modules[name]
    sys.modules.update({k: v for k, v in before.items()
                        if k.startswith(("hw0cli", "filelock"))})


def test_lock_and_cli_work_without_fcntl(without_fcntl, cifar_root: Path,
                                         tmp_path: Path) -> None:
    cli, fresh_store = without_fcntl
    with pytest.raises(ImportError):
        import fcntl  # noqa: F401
    path = tmp_path / "runs" / "x.h5"
    with fresh_store.lock(path):
        assert fresh_store.is_locked(path)
        fresh_error = sys.modules["hw0cli.errors"].Hw0Error  # the re-imported class
        with pytest.raises(fresh_error) as e, fresh_store.lock(path):
            pass
        assert "is being written by" in str(e.value)
    assert not fresh_store.is_locked(path)
    r = runner.invoke(cli.app, ["train", "--width", "4", "--epochs", "1", "--batch-size", "50",
                                "--train-samples", "200", "--device", "cpu", "--precision",
                                "fp32", "--no-compile", "--data-dir", str(cifar_root), "--out",
                                str(tmp_path)])
    assert r.exit_code == 0, r.output
    r = runner.invoke(cli.app, ["runs", "--json", "--out", str(tmp_path)])
    assert r.exit_code == 0 and '"status": "finished"' in r.output


def test_a_file_being_written_is_not_a_run(trained, tmp_path: Path) -> None:
    """A checkpoint being written (or left by a killed writer) is a hidden temp file whose
    name does not end in .h5: `hw0 runs` and run ids see only finished writes."""
    out = tmp_path / "o"
    dst = runs.run_path(out, trained.run_id)
    dst.parent.mkdir(parents=True)
    shutil.copy2(trained.path, dst)
    shutil.copy2(trained.path, store._tmp_path(dst))  # what a killed writer leaves behind
    assert runs.run_ids(out) == [trained.run_id]
    assert [r.run_id for r in runs.list_runs(out)] == [trained.run_id]
