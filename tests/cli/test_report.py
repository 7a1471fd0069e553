"""hw0 report and hw0 all through the CLI: usage errors."""

import pytest
from typer.testing import CliRunner

from hw0cli.cli import app

runner = CliRunner()


def test_report_cli_errors(tmp_path):
    r = runner.invoke(app, ["report", "--out", str(tmp_path / "nothing")])
    assert r.exit_code == 2 and "No output folder" in r.output
    r = runner.invoke(app, ["report", "--out", str(tmp_path), "--format", "docx"])
    assert r.exit_code == 2 and "docx" in r.output
    r = runner.invoke(app, ["all", "--preset", "huge", "--out", str(tmp_path)])
    assert r.exit_code == 2 and "Unknown preset" in r.output


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
    from hw0cli.report import ReportResult
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
