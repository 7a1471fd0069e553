"""The `hw0` command line: the only package that imports typer/rich or exits the process.

Each command group is a module; this one only composes them. A command parses its options,
builds one config, calls one `run_*` function and renders the result; library errors become
one paragraph and an exit code in `common.handle_errors`.
"""

from __future__ import annotations

from typing import Annotated

import typer

from hw0cli.cli import data, evaluation, grid, linreg, report, sweep, train
from hw0cli.cli.common import Hw0Typer
from hw0cli.cli.display import GridProgress, RichReporter, run_with_display

__all__ = ["GridProgress", "RichReporter", "app", "main", "run_with_display"]

app = Hw0Typer(help="hw0: the deep-learning homework as fast, reproducible experiments.",
               no_args_is_help=True, pretty_exceptions_enable=False)


def _version(value: bool) -> None:
    if value:
        from hw0cli import __version__
        print(f"hw0 {__version__}")
        raise typer.Exit()


@app.callback()
def root(version: Annotated[bool, typer.Option(
        "--version", callback=_version, is_eager=True, help="Print the version and exit.")]
         = False) -> None:
    """hw0: the deep-learning homework as fast, reproducible experiments."""


app.add_typer(data.data_app, name="data")
app.command()(train.train)
app.add_typer(train.runs_app, name="runs")
app.command()(evaluation.export)
app.command("eval")(evaluation.eval_cmd)
app.add_typer(grid.grid_app, name="grid")
app.add_typer(sweep.sweep_app, name="sweep")
app.command()(linreg.linreg)
app.command()(report.report)
app.command("all")(report.all_cmd)


def main() -> None:
    app()
