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
