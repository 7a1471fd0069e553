"""What the `hw0 grid` and `hw0 sweep` commands share: their context settings, the train-options
epilog, parsing the extra arguments with `hw0 train`'s parser, the cell-state colours, the
command printer and the Slurm script writer."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape

from hw0cli.cli.common import say
from hw0cli.errors import Hw0UsageError

TAKES_TRAIN_OPTIONS = ("Also takes any `hw0 train` option (see `hw0 train --help`): the "
                       "settings every cell shares. Give every command of one grid (or sweep) "
                       "the same options, so that they all mean the same cells.")


GRID_CONTEXT = {"allow_extra_args": True, "ignore_unknown_options": True}


SINGLE_RUN = ("quiet", "as_json")  # display options of one `hw0 train`, not of a grid


Null = Annotated[bool, typer.Option(
    "--null", help="End each command with a NUL byte instead of a newline, for paths with any "
    "character: hw0 grid list --null ... | xargs -0 -n 1 -P 2 sh -c")]


def print_commands(cmds: list[str], null: bool) -> None:
    """One shell-quoted command per line, or NUL-terminated: a path may hold a newline, and
    `xargs -0 -n 1 sh -c` hands each record whole to a shell that parses its quoting."""
    if null:
        sys.stdout.write("".join(cmd + "\0" for cmd in cmds))
        sys.stdout.flush()
        return
    for cmd in cmds:
        print(cmd)


OWN_OPTIONS = {"grid": "--widths, --noise, --seeds", "sweep": "--axis, --preset, --name"}


def train_context(ctx: typer.Context, kind: str = "grid") -> Any:
    """The grid's (or sweep's) extra arguments, parsed by `hw0 train`'s own parser."""
    train_cmd = ctx.find_root().command.get_command(ctx, "train")
    try:
        return train_cmd.make_context(f"hw0 {kind}", list(ctx.args))
    except Exception as exc:  # click's usage errors (typer vendors click privately)
        msg = exc.format_message() if hasattr(exc, "format_message") else str(exc)
        raise Hw0UsageError(f"{msg} ({kind} commands take {OWN_OPTIONS[kind]} and the "
                            "options of `hw0 train`)") from None


def say_elsewhere(indices: list[int], total: int, kind: str) -> None:
    """The summary's line for cells another process was training (not failures)."""
    if indices:
        say(f"{len(indices)} of {total} cells were running in another process (cells "
            f"{', '.join(map(str, indices))}); they are not failures of this run. `hw0 {kind} "
            "status` shows when they finish.")


STATE_COLORS = {"done": "green", "running": "cyan", "incomplete": "yellow", "missing": "dim",
                "failed": "red", "corrupt": "red", "mismatch": "red"}


def missing_hint(configs: list[Any], states: list[str], kind: str) -> None:
    """When every cell is missing: runs made with other options, and which."""
    from hw0cli.train.settings import other_settings_hint
    if states and all(st == "missing" for st in states):
        hint = other_settings_hint(configs, kind)
        if hint:
            say(f"[yellow]Hint:[/] {hint}")


def write_and_submit(kind: str, run_args: list[str], n: int, opts: Any, out: Path,
                     label: str, submit: bool) -> None:
    from hw0cli.batch.slurm import script, write
    from hw0cli.batch.slurm import submit as sbatch
    path = write(out / "slurm" / f"{label}.sbatch",
                 script(kind, run_args, n, opts, (out / "slurm").resolve()))
    say(f"wrote {escape(str(path))} ({n} tasks)", wrap=False)
    if submit:
        say(f"submitted job {sbatch(path)}", wrap=False)
    else:
        say(f"submit with: sbatch {escape(shlex.quote(str(path)))}", wrap=False)
