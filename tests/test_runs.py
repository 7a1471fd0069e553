"""Run files as listed: one accuracy per view and what measured it, what distinguishes a run,
the history as CSV and JSON, the time a run trained."""

from __future__ import annotations

import json
import math

import pytest
from typer.testing import CliRunner

from hw0cli import runs, store
from hw0cli.cli import app
from hw0cli.errors import Hw0Error
from hw0cli.evaluate import EvalConfig, run_eval
from hw0cli.train import settings
from hw0cli.train.run import run_train
from tests.helpers import tiny_config

runner = CliRunner()


def strict(text: str):
    """json.loads that refuses NaN and Infinity, as strict parsers do."""
    def bad(c: str):
        raise ValueError(f"not JSON: {c}")
    return json.loads(text, parse_constant=bad)


@pytest.fixture(scope="module")
def evaluated(cifar_root, tmp_path_factory):
    """A run evaluated by `hw0 eval` (onnxruntime, fp32) and one that was not."""
    out = tmp_path_factory.mktemp("figs")
    a = run_train(tiny_config(cifar_root, out, epochs=2))
    b = run_train(tiny_config(cifar_root, out, epochs=2, seed=1, augment="vflip"))
    ev = run_eval(EvalConfig(run=a.run_id, views=("original", "vflip"), backend="onnxruntime",
                             out=out, data_dir=cifar_root))
    return out, a, b, ev


@pytest.mark.slow
def test_one_figure_per_view_labelled_by_what_measured_it(evaluated):
    out, a, b, ev = evaluated
    by_id = {r.run_id: r for r in runs.list_runs(out)}
    fa, fb = by_id[a.run_id].figures, by_id[b.run_id].figures
    for view in ("original", "vflip"):  # hw0 eval's result, where it was run
        assert fa[view].accuracy == ev.views[view].accuracy
        assert fa[view].source == "hw0 eval: onnxruntime cpu, fp32"
        assert fb[view].accuracy == b.test_acc_views[view]  # else training's final check
        assert fb[view].source == "training's final check: torch, fp32"
    listing = strict(runner.invoke(app, ["runs", "--json", "--out", str(out)]).stdout)
    row = next(x for x in listing if x["run_id"] == a.run_id)
    assert row["test_acc"]["vflip"] == ev.views["vflip"].accuracy
    assert row["test_acc_source"]["vflip"].startswith("hw0 eval: onnxruntime")
    r = runner.invoke(app, ["runs", "--views", "--out", str(out)])
    lines = r.output.splitlines()
    at = next(i for i, ln in enumerate(lines) if a.run_id in ln)
    assert f"{100 * ev.views['vflip'].accuracy:.2f}%" in lines[at]
    assert "accuracy by hw0 eval: onnxruntime cpu, fp32" in " ".join(lines[at + 1:at + 3])
    # the report's ranking shows the same figures, with what measured them
    from hw0cli.report.build import problem1_section
    sec = problem1_section(runs.list_runs(out), out / "fig")
    header, rows = [b.table for b in sec.blocks if b.kind == "table"][-1]
    ranked = {row[0]: dict(zip(header, row, strict=True)) for row in rows}
    assert ranked[a.run_id]["upside down"] == f"{100 * ev.views['vflip'].accuracy:.2f}%"
    assert ranked[a.run_id]["by"] == "eval, fp32" and ranked[b.run_id]["by"] == "train, fp32"
    assert any("training's final check" in " ".join(x.lines) for x in sec.blocks)


@pytest.mark.slow
def test_history_csv_in_its_own_order_at_stored_precision_blank_where_unmeasured(cifar_root,
                                                                               tmp_path):
    res = run_train(tiny_config(cifar_root, tmp_path, epochs=3, eval_every=2))
    r = runner.invoke(app, ["runs", "history", res.run_id, "--csv", "--out", str(tmp_path)])
    lines = r.stdout.splitlines()
    assert lines[0].split(",") == list(runs.HISTORY_ORDER)  # epoch first, as training writes
    rows = [dict(zip(lines[0].split(","), ln.split(","), strict=True)) for ln in lines[1:]]
    assert rows[0]["test_err"] == "" and rows[0]["eval_seconds"] == ""  # epoch 1: no eval
    assert rows[1]["test_err"] != "" and float(rows[1]["eval_seconds"]) > 0
    h = store.read_h5(res.path, prefixes=("history/",)).group("history")
    for row, want in zip(rows, h["train_err"], strict=True):
        # the number as counted (wrong / n), without binary noise like 0.7130000000000001
        assert row["train_err"] == f"{want:.15g}" and len(row["train_err"]) <= 8
        assert float(row["train_err"]) * 500 == pytest.approx(round(want * 500), abs=1e-9)
    assert all(float(ln.split(",")[0]).is_integer() for ln in lines[1:])


@pytest.mark.slow
def test_json_outputs_are_strict_json_with_null_for_unmeasured(cifar_root, tmp_path):
    res = run_train(tiny_config(cifar_root, tmp_path, epochs=3, eval_every=2))
    with pytest.raises(Hw0Error):  # a run with nothing measured yet: its errors are NaN
        run_train(tiny_config(cifar_root, tmp_path, epochs=3, seed=1),
                  reporter=_StopInEpoch(1))
    for args in (["runs", "--json"], ["runs", "history", res.run_id, "--json"]):
        r = runner.invoke(app, [*args, "--out", str(tmp_path)])
        assert r.exit_code == 0 and "NaN" not in r.stdout
        strict(r.stdout)
    rows = strict(runner.invoke(app, ["runs", "history", res.run_id, "--json", "--out",
                                      str(tmp_path)]).stdout)
    assert rows[0]["test_err"] is None and rows[0]["eval_seconds"] is None
    listed = strict(runner.invoke(app, ["runs", "--json", "--out", str(tmp_path)]).stdout)
    stopped = next(x for x in listed if x["status"] == "interrupted")
    assert stopped["test_err"] is None and stopped["train_eval_err"] is None
    assert not math.isnan(next(x for x in listed if x["status"] == "finished")["test_err"])


class _StopInEpoch:
    def __init__(self, epoch: int) -> None:
        self.epoch = epoch

    def on_start(self, info: dict) -> None:
        pass

    def on_step(self, epoch: int, step: int, *args: object) -> None:
        if epoch == self.epoch and step >= 3:
            raise KeyboardInterrupt

    def on_epoch(self, row: dict) -> None:
        pass


@pytest.mark.slow
def test_an_interrupted_run_shows_the_time_it_trained(cifar_root, tmp_path):
    cfg = tiny_config(cifar_root, tmp_path, epochs=3)
    with pytest.raises(Hw0Error, match="before its first epoch finished"):
        run_train(cfg, reporter=_StopInEpoch(1))
    (r,) = runs.list_runs(tmp_path)
    assert r.status == "interrupted" and r.seconds == 0 and r.trained_s > 0
    row = strict(runner.invoke(app, ["runs", "--json", "--out", str(tmp_path)]).stdout)[0]
    assert row["trained_seconds"] == pytest.approx(r.trained_s)
    # resumed, interrupted in epoch 2 again, then finished: every cut-short epoch counts
    with pytest.raises(Hw0Error, match=r"keeps its last completed epoch \(1\)"):
        run_train(cfg, reporter=_StopInEpoch(2))
    (mid,) = runs.list_runs(tmp_path)
    assert mid.partial_s > r.partial_s and mid.epochs_done == 1
    done = run_train(cfg)
    (end,) = runs.list_runs(tmp_path)
    assert end.status == "finished" and end.trained_s == pytest.approx(end.seconds
                                                                       + mid.partial_s)
    assert done.processes == 3  # the processes that trained it, each with its one-time cost


def test_distinct_settings_are_what_differs_from_the_recipe():
    from dataclasses import asdict

    from hw0cli.train.config import make_config
    plain = asdict(make_config(width=4))
    assert settings.distinct_settings(plain) == []
    study = asdict(make_config(width=4, lr=0.3, batchnorm=False, train_samples=2000, epochs=3,
                               compile=False, precision="fp32"))  # execution: not shown
    assert settings.distinct_settings(study) == ["--epochs", "3", "--lr", "0.3", "--train-samples",
                                             "2000", "--no-batchnorm"]
    fast = asdict(make_config("fast", width=16))  # its width's own lr is the recipe's
    assert settings.distinct_settings(fast) == ["--recipe", "fast"]
    assert settings.distinct_settings({"width": "x"}) == []  # a foreign config: nothing claimed


def test_runs_listing_tells_runs_apart(cifar_root, tmp_path):
    """Runs that share width, noise, epochs and seed differ in their details line; a sweep's
    cell names its sweep."""
    base = ["--width", "4", "--epochs", "1", "--batch-size", "50", "--train-samples", "200",
            "--data-dir", str(cifar_root), "--out", str(tmp_path), "--precision", "fp32",
            "--no-compile", "--device", "cpu"]
    assert runner.invoke(app, ["sweep", "run", "--index", "1", "--name", "lrs", "--axis",
                               "lr=0.05,0.3", *base]).exit_code == 0
    assert runner.invoke(app, ["train", *base, "--no-batchnorm", "--quiet"]).exit_code == 0
    out = runner.invoke(app, ["runs", "--out", str(tmp_path)]).output
    assert "sweep lrs; --epochs 1 --batch-size 50 --lr 0.3 --train-samples 200" in \
        " ".join(out.split())
    assert "--train-samples 200 --no-batchnorm;" in " ".join(out.split())
    assert max(len(ln) for ln in out.splitlines()) <= 80
