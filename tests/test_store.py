"""The HDF5 store: locking without fcntl, self-description, schema-1 and -2 files still read,
checksums, damaged files and full disks."""

from __future__ import annotations

import json
import shutil
import sys
import warnings
from pathlib import Path

import h5py
import numpy as np
import pytest
from typer.testing import CliRunner

from hw0cli import runs, store
from hw0cli.errors import DamagedFileError, Hw0Error
from tests.helpers import (
    DAMAGE_MODES,
    FullDisk,
    damage,
    flip_dataset_signs,
    temp_files_left,
    tiny_config,
)

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
        for k in ("attrs_sha256", "datasets"):  # no checksums before schema 3
            f.attrs.pop(k, None)
        epochs = f["history/epoch"][()].astype(np.float64)
        del f["history/epoch"]
        f.create_dataset("history/epoch", data=epochs)

        def strip(name: str, obj: object) -> None:
            if isinstance(obj, h5py.Dataset):
                for a in ("units", "description", "sha256"):
                    obj.attrs.pop(a, None)
        f.visititems(strip)
    return dst


@pytest.fixture(scope="module")
def trained(cifar_root: Path, tmp_path_factory: pytest.TempPathFactory):
    from hw0cli.train.run import run_train
    return run_train(tiny_config(cifar_root, tmp_path_factory.mktemp("st"), epochs=2))


def test_every_history_and_eval_dataset_says_its_unit(trained, cifar_root: Path) -> None:
    from hw0cli.evaluate import EvalConfig, run_eval
    run_eval(EvalConfig(run=str(trained.path), views=("original", "vflip"), backend="torch",
                        device="cpu", out=trained.path.parents[1], data_dir=cifar_root))
    seen = []
    with h5py.File(trained.path, "r") as f:
        assert f.attrs["schema_version"] == store.SCHEMA_VERSION == 3
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
    from hw0cli.linreg.config import LinregConfig
    from hw0cli.linreg.run import run_linreg
    res = run_linreg(LinregConfig(method="gd", n=100, gd_iters=50, data_dir=mnist_root,
                                  out=tmp_path, device="cpu"))
    missing = []
    with h5py.File(res.path, "r") as f:
        assert f.attrs["data"] and b"official" in f.attrs["data"]  # fixed-length: bytes

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
    from hw0cli.report.build import warmup_section
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


# ---------------------------------------------------------------------------------------------
# checksums and damaged files


@pytest.fixture(scope="module")
def linreg_file(mnist_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from hw0cli.linreg.config import LinregConfig
    from hw0cli.linreg.run import run_linreg
    return run_linreg(LinregConfig(method="gd", n=100, gd_iters=50, data_dir=mnist_root,
                                   out=tmp_path_factory.mktemp("lr"), device="cpu")).path


def copy_of(path: Path, folder: Path) -> Path:
    dst = folder / path.name
    dst.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy2(path, dst)
    return dst


def _dataset_names(f: h5py.File) -> list[str]:
    names: list[str] = []
    f.visititems(lambda n, o: names.append(n) if isinstance(o, h5py.Dataset) else None)
    return names


def test_every_array_and_the_attributes_carry_a_checksum(trained, linreg_file) -> None:
    for path in (trained.path, linreg_file):
        with h5py.File(path, "r") as f:
            assert len(f.attrs["attrs_sha256"]) == 64
            names = _dataset_names(f)
            assert json.loads(f.attrs["datasets"]) == sorted(names)
            assert [n for n in names if len(f[n].attrs.get("sha256", b"")) != 64] == [], path


def test_flipped_weights_are_caught_by_their_checksum(trained, tmp_path: Path) -> None:
    """The sign bits of the classifier flipped, the HDF5 structure intact: HDF5 reads it
    happily, the checksum does not; what was not damaged still reads."""
    p = copy_of(trained.path, tmp_path)
    flip_dataset_signs(p, "weights/17.weight")
    with h5py.File(p, "r") as f:  # HDF5 itself sees nothing wrong
        assert np.array_equal(-f["weights/17.weight"][()],
                              store.read_h5(trained.path).arrays["weights/17.weight"])
    with pytest.raises(DamagedFileError, match=r"is damaged: .*weights/17\.weight.*--force"):
        runs.load_model(p)
    assert len(store.read_h5(p, prefixes=("history/",)).group("history")["epoch"]) == 2


def test_a_changed_attribute_is_caught(trained, tmp_path: Path) -> None:
    p = copy_of(trained.path, tmp_path)
    with h5py.File(p, "r+") as f:  # a bit flip inside the stored test accuracy
        f.attrs["test_acc_views"] = f.attrs["test_acc_views"].replace(b"0.", b"1.", 1)
    with pytest.raises(DamagedFileError, match="attributes"):
        store.read_h5(p, attrs_only=True)
    assert runs.list_runs(tmp_path) == []  # not listed (tmp_path/runs does not exist)


@pytest.mark.parametrize("mode", DAMAGE_MODES)
@pytest.mark.parametrize("kind", ["run", "linreg"])
def test_damage_is_reported_never_used(trained, linreg_file, tmp_path: Path, kind: str,
                                       mode: str) -> None:
    """Whatever the damage, reading gives either exactly what was written or 'damaged'."""
    src = trained.path if kind == "run" else linreg_file
    pristine = store.read_h5(src)
    p = damage(copy_of(src, tmp_path), mode)
    try:
        rec = store.read_h5(p)
    except DamagedFileError as exc:
        assert str(exc).startswith(f"{p} is damaged: ") and "--force" in str(exc)
        return
    assert mode.endswith("middle"), "damage at the head, tail or a cut must be seen"
    assert rec.attrs == pristine.attrs
    assert rec.arrays.keys() == pristine.arrays.keys()
    for k, v in pristine.arrays.items():
        assert np.array_equal(rec.arrays[k], v, equal_nan=v.dtype.kind == "f"), k


def test_files_of_schema_2_without_checksums_still_load(trained, tmp_path: Path) -> None:
    p = copy_of(trained.path, tmp_path)
    with h5py.File(p, "r+") as f:
        f.attrs["schema_version"] = 2
        del f.attrs["attrs_sha256"], f.attrs["datasets"]
        f.visititems(lambda _, o: o.attrs.pop("sha256", None)
                     if isinstance(o, h5py.Dataset) else None)
    _, attrs = runs.load_model(p)
    assert attrs["schema_version"] == 2 and attrs["run_id"] == trained.run_id
    store.update_h5(p, arrays={"eval/x": np.arange(3)})  # a new array gets its checksum
    assert store.read_h5(p).arrays["eval/x"].tolist() == [0, 1, 2]
    flip = copy_of(p, tmp_path / "f")
    with h5py.File(flip, "r+") as f:
        f["eval/x"][0] = 7
    with pytest.raises(DamagedFileError, match="eval/x"):
        store.read_h5(flip)


@pytest.mark.parametrize("change", ["renamed", "lost"])
def test_a_damaged_name_or_a_lost_array_is_caught(trained, tmp_path: Path, change: str) -> None:
    """Damage to a group's links changes a name or loses a dataset, values intact."""
    p = copy_of(trained.path, tmp_path)
    with h5py.File(p, "r+") as f:
        if change == "renamed":
            f.move("history/test_err", "history/test_exr")
        else:
            del f["history/test_err"]
    with pytest.raises(DamagedFileError, match="history/test_e"):
        store.read_h5(p, prefixes=("history/",))
    assert store.read_h5(p, prefixes=("weights/",)).group("weights")  # the rest still reads


def test_a_schema_3_array_without_its_checksum_is_damaged(trained, tmp_path: Path) -> None:
    p = copy_of(trained.path, tmp_path)
    with h5py.File(p, "r+") as f:
        del f["history/test_err"].attrs["sha256"]
    with pytest.raises(DamagedFileError, match=r"history/test_err.*no checksum"):
        store.read_h5(p, prefixes=("history/",))


def test_update_does_not_vouch_for_damaged_attributes(trained, tmp_path: Path) -> None:
    p = copy_of(trained.path, tmp_path)
    with h5py.File(p, "r+") as f:
        f.attrs["status"] = "finishel"
    before = p.read_bytes()
    with pytest.raises(DamagedFileError):
        store.update_h5(p, attrs={"message": "x"})
    assert p.read_bytes() == before


# ---------------------------------------------------------------------------------------------
# a full disk


def test_background_writer_hands_a_full_disk_to_the_caller(tmp_path: Path, monkeypatch) -> None:
    path = tmp_path / "runs" / "x.h5"
    store.write_h5(path, {"run_id": "x"}, {"a": np.arange(10)})
    before = path.read_bytes()
    disk = FullDisk(monkeypatch, tmp_path, free=5000)
    w = store.BackgroundWriter()
    w.submit(path, {"run_id": "x"}, {"a": np.arange(100_000)})
    with pytest.raises(Hw0Error) as e:
        w.wait()
    msg = str(e.value)
    assert "No space left on device" in msg and str(path) in msg and "disk" in msg
    assert type(e.value) is Hw0Error and disk.failures
    w.wait()  # handed over once
    assert path.read_bytes() == before and temp_files_left(tmp_path) == []
    disk.free = None
    w.submit(path, {"run_id": "x"}, {"a": np.arange(100_000)})
    w.wait()
    assert store.read_h5(path).arrays["a"][-1] == 99_999


@pytest.mark.parametrize("err", ["ENOSPC", "EDQUOT", "EIO"])
def test_foreground_writes_on_a_failing_disk(tmp_path: Path, monkeypatch, err: str) -> None:
    import errno
    import os
    path = tmp_path / "x.h5"
    store.write_h5(path, {"run_id": "x"}, {"a": np.arange(10)})
    before = path.read_bytes()
    real = os.write

    def failing(fd: int, data) -> int:
        if os.readlink(f"/proc/self/fd/{fd}").startswith(str(tmp_path)):
            raise OSError(getattr(errno, err), os.strerror(getattr(errno, err)))
        return real(fd, data)

    monkeypatch.setattr(os, "write", failing)
    for write in (lambda: store.write_h5(path, {"run_id": "y"}, {"a": np.arange(3)}),
                  lambda: store.update_h5(path, attrs={"status": "finished"})):
        with pytest.raises(Hw0Error, match=os.strerror(getattr(errno, err))) as e:
            write()
        assert str(path) in str(e.value) and "untouched" in str(e.value)
        assert path.read_bytes() == before and temp_files_left(tmp_path) == []


# ---------------------------------------------------------------------------------------------
# every reading command on damaged files

GRID = ["--widths", "4", "--noise", "0,0.5", "--train-samples", "200", "--batch-size", "50",
        "--epochs", "1", "--precision", "fp32", "--no-compile", "--device", "cpu"]


def _cli(*args: object):
    r = runner.invoke(_app(), [str(a) for a in args])
    assert "Traceback" not in r.output and r.exit_code in (0, 1), r.output
    assert r.exception is None or isinstance(r.exception, SystemExit), r.exception
    return r


def _app():
    from hw0cli.cli import app
    return app


def _section(md: str, title: str) -> str:
    part = md.split(f"## {title}", 1)[1]
    return part.split("\n## ", 1)[0]


def _listed(rows: list[dict], run_id: str) -> dict | None:
    keep = ("status", "epochs", "train_err", "test_err", "test_acc_views", "config")
    return next(({k: r[k] for k in keep} for r in rows if r["run_id"] == run_id), None)


@pytest.fixture(scope="module")
def results(cifar_root: Path, mnist_root: Path, tmp_path_factory: pytest.TempPathFactory):
    """Two finished grid cells (one exported and evaluated), an interrupted run (a checkpoint)
    and a linreg file; and what the reading commands say about them undamaged."""
    from hw0cli.linreg.config import LinregConfig
    from hw0cli.linreg.run import run_linreg
    from hw0cli.train.config import run_id_for
    from hw0cli.train.run import run_train
    from tests.helpers import InterruptAt
    out = tmp_path_factory.mktemp("dm")
    grid = [*GRID, "--data-dir", cifar_root, "--out", out]
    for i in (0, 1):
        assert _cli("grid", "run", "--index", i, *grid).exit_code == 0
    ids = [c["run_id"] for c in json.loads(_cli("grid", "list", "--json", *grid).stdout)]
    assert _cli("export", ids[0], "--out", out, "--data-dir", cifar_root).exit_code == 0
    ev = json.loads(_cli("eval", ids[0], "--backend", "torch", "--device", "cpu", "--json",
                         "--no-plot", "--out", out, "--data-dir", cifar_root).stdout)
    ckpt = tiny_config(cifar_root, out, epochs=2, seed=7)
    with pytest.raises(Hw0Error):
        run_train(ckpt, reporter=InterruptAt(1))
    lin = run_linreg(LinregConfig(method="gd", n=100, gd_iters=50, data_dir=mnist_root,
                                  out=out, device="cpu")).path
    _cli("report", "--out", out, "--format", "md")
    return {"out": out, "ids": ids, "ckpt": run_id_for(ckpt), "linreg": lin.name,
            "eval": ev["views"], "rows": json.loads(_cli("runs", "--json", "--out", out).stdout),
            "history": _cli("runs", "history", ids[0], "--json", "--out", out).stdout,
            "grid": json.loads(_cli("grid", "status", "--json", *grid).stdout),
            "p3": _section((out / "report" / "report.md").read_text(), "Problem 3")}


@pytest.mark.slow
@pytest.mark.parametrize("mode", [*DAMAGE_MODES, "flip-weights"])
def test_every_reading_command_on_damaged_files(results, cifar_root: Path, tmp_path: Path,
                                                mode: str) -> None:
    """A run file, a checkpoint and a linreg file damaged alike: each command either says
    'damaged' (exit 1, or a warning where it lists) or gives exactly what it gave on the
    whole files; the undamaged run always lists; a damaged array is never used."""
    from hw0cli.train.config import run_id_for
    out = tmp_path / "o"
    shutil.copytree(results["out"], out)
    ids, ckpt = results["ids"], results["ckpt"]
    files = [runs.run_path(out, ids[0]), runs.run_path(out, ckpt),
             out / "linreg" / results["linreg"]]
    for f in files:
        if mode == "flip-weights":
            flip_dataset_signs(f, "solutions/pinv" if f.parent.name == "linreg"
                               else "weights/17.weight")
        else:
            damage(f, mode)
    seen = []  # which files some command reported damaged

    def said(r, path: Path) -> bool:
        hit = f"{path} is damaged" in r.output
        seen.extend([path] if hit else [])
        return hit

    r = _cli("runs", "--json", "--out", out)
    rows = json.loads(r.stdout)
    assert _listed(rows, ids[1]) == _listed(results["rows"], ids[1])  # the other run lists
    for rid, f in ((ids[0], files[0]), (ckpt, files[1])):
        assert (_listed(rows, rid) == _listed(results["rows"], rid) if _listed(rows, rid)
                else said(r, f) and "Warning:" in r.output)
    r = _cli("runs", "--out", out)
    assert r.exit_code == 0 and ids[1] in r.output
    r = _cli("runs", "history", ids[0], "--json", "--out", out)
    assert r.stdout == results["history"] if r.exit_code == 0 else said(r, files[0])
    g = [*GRID, "--data-dir", cifar_root, "--out", out]
    r = _cli("grid", "status", "--json", *g)
    st = json.loads(r.stdout)
    assert st[1] == results["grid"][1]
    assert st[0] == results["grid"][0] or (st[0]["state"] == "corrupt"
                                           and "is damaged" in st[0]["note"])
    seen.extend([files[0]] if st[0]["state"] == "corrupt" else [])
    for named in (True, False):
        r = _cli("eval", *([ids[0]] if named else []), "--backend", "torch", "--device", "cpu",
                 "--json", "--no-plot", "--out", out, "--data-dir", cifar_root)
        if r.exit_code == 0:
            got = json.loads(r.stdout)
            if got["run_id"] == ids[0]:  # its figures are the real model's
                assert got["views"] == results["eval"]
        else:  # unnamed, it may have picked the damaged run: the newest finished one
            assert r.exit_code == 1 and said(r, files[0])
    r = _cli("export", ids[0], "--json", "--out", out, "--data-dir", cifar_root)
    assert r.exit_code == 0 or said(r, files[0])
    r = _cli("export", "--json", "--out", out, "--data-dir", cifar_root)  # the newest run
    assert (json.loads(r.stdout)["run_id"] in ids if r.exit_code == 0
            else r.exit_code == 1 and said(r, files[0]))
    cfg = tiny_config(cifar_root, out, epochs=2, seed=7)
    assert run_id_for(cfg) == ckpt
    r = _cli("train", "--width", "4", "--epochs", "2", "--batch-size", "50", "--train-samples",
             "500", "--seed", "7", "--lr", "0.05", "--precision", "fp32", "--no-compile",
             "--device", "cpu", "--data-dir", cifar_root, "--out", out, "--resume")
    assert r.exit_code == 0 or said(r, files[1])
    r = _cli("report", "--out", out, "--format", "md")
    assert r.exit_code == 0
    md = (out / "report" / "report.md").read_text()
    assert _section(md, "Problem 3") == results["p3"] or said(r, files[2])
    if mode != "zero-middle" and mode != "flip-middle":
        assert set(seen) == set(files), (mode, seen)
