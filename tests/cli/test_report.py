"""hw0 report and hw0 all through the CLI: usage errors."""

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


def test_report_on_a_full_disk(cifar_root, tmp_path, monkeypatch):
    """Figures and PDF on a full disk: one message naming the disk, exit 1, no temp file, the
    previous report untouched; a report folder the command created is not left behind."""
    from hw0cli.train import run_train
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
