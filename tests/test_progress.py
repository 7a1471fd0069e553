"""Progress: a bar with ETA on a terminal's stderr; plain, unwrapped lines in a log."""

from __future__ import annotations

import io
import re
from pathlib import Path

import pytest
from rich.console import Console
from typer.testing import CliRunner

from hw0cli.cli import app
from hw0cli.cli.display import GridProgress, RichReporter
from tests.test_tracking import tb_scalars, train_args

runner = CliRunner()
INFO = {"run_id": "r1", "path": "x.h5", "device": "cpu", "precision": "fp32", "compile": True,
        "compile_mode": "default", "n_train": 500, "realized_noise": 0.0, "start_epoch": 0,
        "epochs": 2, "steps_per_epoch": 10}
ROW = {"epoch": 1, "train_loss": 1.5, "train_err": 0.5, "test_loss": 1.6, "test_err": 0.55,
       "lr": 0.1, "seconds": 1.0, "train_eval_err": float("nan"),
       "test_err_tta": float("nan")}


def test_terminal_gets_a_bar_with_eta_on_stderr_and_status_lines() -> None:
    lines_buf, bar_buf = io.StringIO(), io.StringIO()
    lines = Console(file=lines_buf, width=100)  # stdout redirected to a file
    bar = Console(file=bar_buf, force_terminal=True, width=100)
    with RichReporter(lines, bar) as rep:
        rep.status("loading CIFAR-10 from data")
        rep.on_start(INFO)
        for s in range(1, 11):
            rep.on_step(1, s, 10, 1.0, 0.5, 100.0)
        rep.progress.refresh()  # type: ignore[union-attr]
        drawn = bar_buf.getvalue()
        rep.on_epoch(ROW)
    assert "ETA" in drawn and "epoch 1/2" in drawn and "run" in drawn
    assert "loading CIFAR-10" in drawn and "compiling the training step (one-time" in drawn
    log = lines_buf.getvalue()
    assert "\x1b" not in log and "ETA" not in log
    assert [ln for ln in log.splitlines() if re.match(r"\s+1\s", ln)]


def test_piped_run_logs_one_unwrapped_line_per_epoch(cifar_root: Path, tmp_path: Path) -> None:
    r = runner.invoke(app, train_args(cifar_root, tmp_path))
    assert r.exit_code == 0, r.output
    assert "\x1b" not in r.output
    epoch_lines = [ln for ln in r.stdout.splitlines() if re.match(r"\s+\d+\s+\d+\.\d{4}\s", ln)]
    assert [int(ln.split()[0]) for ln in epoch_lines] == [1, 2, 3]
    done = [ln for ln in r.stdout.splitlines() if ln.startswith("done:")]
    assert len(done) == 1 and len(done[0]) > 100 and done[0].rstrip().endswith(".h5")
    assert "loading CIFAR-10" in r.stderr  # a status line while the data loads


def test_grid_progress_counts_cells_without_a_terminal(capsys: pytest.CaptureFixture) -> None:
    from types import SimpleNamespace
    cfg = SimpleNamespace(width=4, noise=0.0, seed=0, epochs=3)
    with GridProgress(3) as gp:
        gp.start(0, cfg)
        gp.start(1, cfg)
        gp.done(SimpleNamespace(index=0, run_id="a", returncode=0, log="a.log"))
    out = capsys.readouterr().out
    assert "0 done, 2 running, 1 left" in out and "1 done, 1 running, 1 left" in out


@pytest.mark.slow
def test_grid_run_jobs_2_logs_each_cell_to_one_tensorboard_folder(cifar_root: Path,
                                                                  tmp_path: Path) -> None:
    from hw0cli import store
    from hw0cli.runs import run_ids, run_path
    r = runner.invoke(app, ["grid", "run", "--widths", "4", "--noise", "0,1", "--jobs", "2",
                            "--epochs", "2", "--train-samples", "200", "--batch-size", "50",
                            "--device", "cpu", "--precision", "fp32", "--no-compile",
                            "--data-dir", str(cifar_root), "--out", str(tmp_path),
                            "--log", "tensorboard"])
    assert r.exit_code == 0, r.output
    assert "2 done, 0 running, 0 left" in r.output
    (group,) = (tmp_path / "tensorboard").iterdir()
    assert group.name.startswith("grid-")
    ids = run_ids(tmp_path)
    assert sorted(p.name for p in group.iterdir()) == ids and len(ids) == 2
    for rid in ids:
        h = store.read_h5(run_path(tmp_path, rid), prefixes=("history/",)).group("history")
        got = tb_scalars(group / rid)["train/err"]
        assert sorted(got) == list(h["epoch"])
        assert [got[e] for e in h["epoch"]] == pytest.approx(list(h["train_err"]), rel=1e-6)


def test_epoch_lines_show_a_dash_where_nothing_was_measured() -> None:
    """Epochs without a test evaluation (--eval-every) print '-', never nan."""
    buf = io.StringIO()
    with RichReporter(Console(file=buf, width=100)) as rep:
        rep.on_start(INFO)
        rep.on_epoch({**ROW, "test_loss": float("nan"), "test_err": float("nan")})
        rep.on_epoch({**ROW, "epoch": 2, "train_eval_err": 0.25})
    log = buf.getvalue()
    assert "nan" not in log.lower()
    first = next(ln for ln in log.splitlines() if re.match(r"\s+1\s", ln))
    assert first.split()[3:5] == ["-", "-"] and "50.00%" in first
    header = next(ln for ln in log.splitlines() if ln.lstrip().startswith("epoch"))
    assert "train err (running)" in header
    assert "full-train err 25.00%" in log
