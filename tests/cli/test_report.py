"""hw0 report and hw0 all through the CLI: usage errors, the full preset's smoke run."""

import copy

import pytest
from pypdf import PdfReader
from typer.testing import CliRunner

from hw0cli import pipeline
from hw0cli.cli import app
from tests.helpers import write_cifar, write_mnist

runner = CliRunner()


def test_report_cli_errors(tmp_path):
    r = runner.invoke(app, ["report", "--out", str(tmp_path / "nothing")])
    assert r.exit_code == 2 and "No output folder" in r.output
    r = runner.invoke(app, ["report", "--out", str(tmp_path), "--format", "docx"])
    assert r.exit_code == 2 and "docx" in r.output
    r = runner.invoke(app, ["all", "--preset", "huge", "--out", str(tmp_path)])
    assert r.exit_code == 2 and "Unknown preset" in r.output


@pytest.fixture(scope="module")
def smoke_data(tmp_path_factory):
    root = tmp_path_factory.mktemp("smoke_data")
    write_cifar(root, n_per_batch=20, n_test=50)
    write_mnist(root, n_train=100, n_test=50)
    return root


def smoke(data, out):
    return runner.invoke(app, ["all", "--preset", "full", "--smoke", "--device", "cpu",
                               "--data-dir", str(data), "--out", str(out)])


@pytest.mark.slow
def test_full_preset_smoke_runs_every_step_to_the_pdf(smoke_data, tmp_path, monkeypatch):
    """`hw0 all --preset full --smoke`: every step of the full preset (its widths, recipes,
    BatchNorm study, grid, linreg) at toy sizes through to a PDF with every section, into
    <out>/smoke; then a full preset broken in one step fails (the others are skipped)."""
    r = smoke(smoke_data, tmp_path)
    assert r.exit_code == 0, r.output[-3000:]
    n = len(pipeline.plan(pipeline.AllConfig(preset="full", smoke=True, device="cpu")))
    assert f"{n} steps run, 0 already done, 0 failed" in r.output
    assert "missing" not in r.output and "hw0 all --preset full --smoke" in r.output
    pdf = tmp_path / "smoke" / "report" / "report.pdf"
    text = "\n".join(p.extract_text() for p in PdfReader(pdf).pages)
    for title in ("Warm-up: Myrtle5 on CIFAR-10", "sweep bn-study-full", "Problem 1",
                  "Problem 2", "Problem 3", "Environment and reproducibility", "SMOKE RUN",
                  "--recipe fast", "--width 64", "--width 16", "--augment vflip",
                  "--objective worst-view"):
        assert title in " ".join(text.split()), title
    assert not (tmp_path / "runs").exists()  # nothing among real results
    # one step's run file damaged since: that step fails, the others are done, exit 1
    from hw0cli import runs
    from hw0cli.train import run_id_for
    from tests.helpers import damage
    cfg = pipeline.AllConfig(preset="full", smoke=True, device="cpu", data_dir=str(smoke_data),
                             out=str(tmp_path / "smoke"))
    robust = next(s for s in pipeline.plan(cfg) if "flip-robust" in s.title)
    damage(runs.run_path(cfg.out, run_id_for(robust.config)), "truncate")
    r = smoke(smoke_data, tmp_path)
    assert r.exit_code == 1 and "1 step(s) failed" in r.output, r.output[-3000:]
    assert robust.title in r.output and "damaged" in r.output
    assert f"{n - 1} already done" in r.output
    # a step whose options cannot run stops the whole plan first: exit 2, nothing started
    broken = copy.deepcopy(pipeline.PRESETS["full"])
    broken["robust"][0]["augment"] = "vflip+sideways"
    monkeypatch.setitem(pipeline.PRESETS, "full", broken)
    before = sorted(p.name for p in (tmp_path / "smoke" / "runs").iterdir())
    r = smoke(smoke_data, tmp_path)
    assert r.exit_code == 2 and "nothing was started" in r.output and "sideways" in r.output
    assert sorted(p.name for p in (tmp_path / "smoke" / "runs").iterdir()) == before


def test_full_preset_smoke_fails_on_a_broken_sweep(smoke_data, tmp_path, monkeypatch):
    """An unknown option in the full preset's sweep stops the smoke run before any step."""
    broken = copy.deepcopy(pipeline.PRESETS["full"])
    broken["sweep"]["train_options"]["frobnicate"] = 1
    monkeypatch.setitem(pipeline.PRESETS, "full", broken)
    r = smoke(smoke_data, tmp_path)
    assert r.exit_code != 0
    assert "frobnicate" in r.output + repr(r.exception)
    assert not (tmp_path / "smoke" / "runs").exists()


def test_report_on_a_full_disk(cifar_root, tmp_path, monkeypatch):
    """Figures and PDF on a full disk: one message naming the disk, exit 1, no temp file, the
    previous report untouched; a report folder the command created is not left behind."""
    from hw0cli.train.run import run_train
    from tests.helpers import FullDisk, temp_files_left, tiny_config
    run_train(tiny_config(cifar_root, tmp_path, epochs=1))
    r = runner.invoke(app, ["report", "--out", str(tmp_path)])
    assert r.exit_code == 0, r.output
    report = tmp_path / "report"
    before = {p: p.read_bytes() for p in report.rglob("*") if p.is_file()}
    disk = FullDisk(monkeypatch, tmp_path, free=0)
    r = runner.invoke(app, ["report", "--out", str(tmp_path)])
    assert r.exit_code == 1 and disk.failures and isinstance(r.exception, SystemExit)
    assert r.output.count("Error:") == 1 and "No space left on device" in r.output
    assert f"the disk holding {report}" in r.output and "0 B free" in r.output
    assert {p: p.read_bytes() for p in report.rglob("*") if p.is_file()} == before
    assert temp_files_left(tmp_path) == []
    fresh = tmp_path / "elsewhere" / "report"
    r = runner.invoke(app, ["report", "--out", str(tmp_path), "--report-dir", str(fresh)])
    assert r.exit_code == 1 and "No space left on device" in r.output
    assert not (tmp_path / "elsewhere").exists()


def test_all_with_cuda_on_a_cpu_machine_refuses_the_plan_once(tmp_path):
    import torch
    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    r = runner.invoke(app, ["all", "--device", "cuda", "--out", str(tmp_path / "o"),
                            "--data-dir", str(tmp_path)])
    assert r.exit_code == 2 and r.output.count("no CUDA GPU") == 1, r.output
    assert "nothing was started" in r.output and "Traceback" not in r.output
    assert not (tmp_path / "o").exists()  # no step ran, no report was written


def test_all_without_data_refuses_the_plan(tmp_path):
    r = runner.invoke(app, ["all", "--device", "cpu", "--out", str(tmp_path / "o"),
                            "--data-dir", str(tmp_path / "nodata")])
    assert r.exit_code == 2 and "CIFAR-10" in r.output and "hw0 data download" in r.output
    assert not (tmp_path / "o").exists()


def test_all_in_a_log_has_unwrapped_lines_an_eta_from_the_start_and_no_settings_dump(
        tmp_path, monkeypatch):
    """Redirected output (CliRunner's is not a terminal): each step's line whole, however
    long; the first step already has an ETA (from the estimates); no JSON of the settings."""
    from hw0cli import pipeline
    from hw0cli.report.build import ReportResult
    from tests.helpers import write_cifar, write_mnist
    data = write_mnist(write_cifar(tmp_path / "d"), n_train=50, n_test=20)
    long_title = "Problem 2: " + "a step title longer than any terminal, " * 4 + "end"

    def fake_run_all(cfg, on_step, on_result, reporter_factory, clock):
        clock.estimates = [600.0, 300.0]
        for i, title in enumerate((long_title, "second")):
            on_step(i, 2, title)
            r = pipeline.StepResult(title, "done", 1.0, "detail " + "x" * 120)
            clock.record(r, i)
            on_result(r)
        return pipeline.AllResult([], ReportResult(None, None, {}, 0, []), 2.0)
    monkeypatch.setattr(pipeline, "run_all", fake_run_all)
    r = runner.invoke(app, ["all", "--device", "cpu", "--data-dir", str(data), "--out",
                            str(tmp_path / "o")], env={"COLUMNS": "80"})
    assert r.exit_code == 0, r.output
    lines = r.stdout.splitlines()
    assert f"[1/2] {long_title}" in lines  # one line, not cut or wrapped at 80 columns
    assert any(ln.startswith("done in 1 s: detail " + "x" * 120) for ln in lines)
    first = lines[lines.index(f"[1/2] {long_title}") + 1]
    assert "0 done, 1 running, 1 left" in first and "ETA ~15 min" in first
    assert "settings: {" not in r.stdout and '"warmup"' not in r.stdout
