"""wandb and TensorBoard: what `--log` and `runs sync` write, read back with each tool's own
reader and compared epoch by epoch with the HDF5 history."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from hw0cli import store
from hw0cli.cli import app
from hw0cli.runs import run_ids, run_path

runner = CliRunner()


def train_args(cifar_root: Path, out: Path, *extra: str) -> list[str]:
    return ["train", "--width", "4", "--epochs", "3", "--batch-size", "50",
            "--train-samples", "500", "--lr", "0.05", "--device", "cpu", "--precision", "fp32",
            "--no-compile", "--data-dir", str(cifar_root), "--out", str(out), *extra]


def history(out: Path) -> dict[str, np.ndarray]:
    (rid,) = run_ids(out)
    return store.read_h5(run_path(out, rid), prefixes=("history/",)).group("history")


def tb_scalars(folder: Path) -> dict[str, dict[int, float]]:
    """Every scalar in a TensorBoard run folder, read with TensorBoard's own event reader."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    acc = EventAccumulator(str(folder))
    acc.Reload()
    return {tag: {e.step: e.value for e in acc.Scalars(tag)} for tag in acc.Tags()["scalars"]}


def assert_tb_matches(scalars: dict[str, dict[int, float]], h: dict[str, np.ndarray]) -> None:
    epochs = [int(e) for e in h["epoch"]]
    for tag, key in (("train/err", "train_err"), ("test/err", "test_err"),
                     ("train/loss", "train_loss"), ("lr", "lr")):
        assert sorted(scalars[tag]) == epochs, tag
        # TensorBoard stores float32
        np.testing.assert_allclose([scalars[tag][e] for e in epochs], h[key], rtol=1e-6)


@pytest.fixture(scope="module")
def tb_run(cifar_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("tb")
    r = runner.invoke(app, train_args(cifar_root, out, "--log", "tensorboard"))
    assert r.exit_code == 0, r.output
    return out


def test_tensorboard_log_equals_the_hdf5_history(tb_run: Path) -> None:
    h = history(tb_run)
    (rid,) = run_ids(tb_run)
    scalars = tb_scalars(tb_run / "tensorboard" / rid)
    assert len(h["epoch"]) == 3 and h["epoch"].dtype.kind == "i"
    assert_tb_matches(scalars, h)
    assert scalars["final/test_err"] == {3: pytest.approx(float(h["test_err"][-1]), rel=1e-6)}


def test_runs_sync_gives_the_same_curves(tb_run: Path) -> None:
    (rid,) = run_ids(tb_run)
    r = runner.invoke(app, ["runs", "sync", rid, "--to", "tensorboard", "--log-group", "replay",
                            "--out", str(tb_run)])
    assert r.exit_code == 0, r.output
    live = tb_scalars(tb_run / "tensorboard" / rid)
    replay = tb_scalars(tb_run / "tensorboard" / "replay" / rid)
    assert replay == live  # every tag, every epoch, the final values too


def test_runs_sync_of_a_schema_1_file(tb_run: Path, tmp_path: Path) -> None:
    from tests.test_store import downgrade_to_schema_1
    (rid,) = run_ids(tb_run)
    old = downgrade_to_schema_1(run_path(tb_run, rid), tmp_path / "runs" / f"{rid}.h5")
    r = runner.invoke(app, ["runs", "sync", str(old), "--to", "tensorboard", "--out",
                            str(tmp_path)])
    assert r.exit_code == 0, r.output
    assert_tb_matches(tb_scalars(tmp_path / "tensorboard" / rid), history(tb_run))


def wandb_records(run_file: Path) -> list[dict]:
    """The records of an offline run, decoded by wandb's own transaction-log reader."""
    out = subprocess.run([sys.executable, "-m", "wandb", "leet", "inspect", str(run_file),
                          "--json"], capture_output=True, text=True, timeout=120, check=True)
    return [json.loads(line) for line in out.stdout.splitlines() if line.strip()]


@pytest.fixture
def wandb_offline(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """A user who never configured wandb: no key, no mode, no ~/.netrc."""
    for var in ("WANDB_API_KEY", "WANDB_MODE", "WANDB_BASE_URL", "NETRC"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("WANDB_CONFIG_DIR", str(tmp_path / "wandb_config"))
    monkeypatch.setenv("WANDB_CACHE_DIR", str(tmp_path / "wandb_cache"))
    monkeypatch.setenv("WANDB_DATA_DIR", str(tmp_path / "wandb_data"))


@pytest.mark.slow
def test_wandb_offline_run_equals_the_hdf5_history(cifar_root: Path, tmp_path: Path,
                                                   wandb_offline: None) -> None:
    from hw0cli.tracking import wandb_mode
    assert wandb_mode() == "offline"
    out = tmp_path / "out"
    r = runner.invoke(app, train_args(cifar_root, out, "--log", "wandb", "--log-group", "g1"))
    assert r.exit_code == 0, r.output
    (run_file,) = (out / "wandb").rglob("offline-run-*/run-*.wandb")
    records = wandb_records(run_file)
    h = history(out)
    rows = {int(rec["history"]["item"]["epoch"]): rec["history"]["item"]
            for rec in records if rec["type"] == "history"}
    assert sorted(rows) == [int(e) for e in h["epoch"]]
    for i, e in enumerate(h["epoch"]):
        assert rows[int(e)]["train/err"] == pytest.approx(h["train_err"][i], rel=1e-12)
        assert rows[int(e)]["test/err"] == pytest.approx(h["test_err"][i], rel=1e-12)
    (run,) = [rec["run"] for rec in records if rec["type"] == "run"]
    (rid,) = run_ids(out)
    assert run["display_name"] == rid and run["run_group"] == "g1"
    assert run["config"]["update"]["run_id"] == rid
    assert run["config"]["update"]["width"] == 4
    summary: dict = {}
    for rec in records:
        if rec["type"] == "summary":
            summary.update(rec["summary"]["update"])
    assert summary["final/test_err"] == pytest.approx(h["test_err"][-1], rel=1e-12)


def test_missing_extra_is_a_clean_error(cifar_root: Path, tmp_path: Path,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "wandb", None)  # import wandb -> ImportError
    r = runner.invoke(app, train_args(cifar_root, tmp_path, "--log", "wandb"))
    assert r.exit_code == 1 and isinstance(r.exception, SystemExit)
    assert "pip install 'hw0[wandb]'" in r.output
    assert not (tmp_path / "runs").exists()  # refused before training
    r = runner.invoke(app, train_args(cifar_root, tmp_path, "--log", "mlflow"))
    assert r.exit_code == 2 and "--log takes wandb or tensorboard" in r.output


def test_history_csv_reads_in_pandas(tb_run: Path) -> None:
    pd = pytest.importorskip("pandas")
    r = runner.invoke(app, ["runs", "history", "--csv", "--out", str(tb_run)])
    assert r.exit_code == 0, r.output
    df = pd.read_csv(io.StringIO(r.stdout))
    h = history(tb_run)
    assert df["epoch"].dtype.kind == "i" and list(df["epoch"]) == list(h["epoch"])
    for k in ("train_err", "test_err", "train_loss", "test_loss", "lr", "seconds"):
        # float64's 15 decimal digits: what the run measured, without binary noise
        np.testing.assert_allclose(df[k].to_numpy(), h[k], rtol=1e-14)
    for k in ("train_err", "test_err"):  # counted errors (wrong / n) come back exactly
        np.testing.assert_array_equal(df[k].to_numpy(), h[k])
    assert df["test_err_tta"].isna().all()  # not measured (no --tta): empty, read as NaN
    r = runner.invoke(app, ["runs", "history", "--json", "--out", str(tb_run)])
    rows = json.loads(r.stdout)
    assert [row["epoch"] for row in rows] == list(h["epoch"])
    assert rows[0]["test_err_tta"] is None and rows[-1]["test_err"] == h["test_err"][-1]


def test_all_groups_grid_cells_like_grid_run(tmp_path: Path) -> None:
    """`hw0 all --log`: the grid's cells share the group `hw0 grid run --log` gives them."""
    from hw0cli import pipeline
    from hw0cli.batch.grid import GridConfig, log_group
    steps = pipeline.plan(pipeline.AllConfig(preset="quick", data_dir=tmp_path, out=tmp_path,
                                             log=("tensorboard",)))
    groups = {s.group for s in steps if s.title.startswith("Problem 2")}
    g = pipeline.PRESETS["quick"]["grid"]
    grid = GridConfig(widths=g["widths"], noises=g["noises"], seeds=g["seeds"],
                      train_options=tuple(sorted({**g["train_options"],
                                                  "device": "auto"}.items())),
                      data_dir=tmp_path, out=tmp_path)
    assert groups == {log_group(grid)}
    assert {s.group for s in steps if s.title.startswith("Warm-up")} == {"all-quick"}
    assert [s.group for s in steps if "evaluation" in s.title or "Problem 3" in s.title] == \
        [None, None]
