"""What every command group shares: the consoles, the shared options, the error mapping, and
small renderers. The error mapping is the one place a library error becomes a message and an
exit code."""

from __future__ import annotations

import functools
import json
import math
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich.text import Text
from typer.core import TyperCommand, TyperGroup

from hw0cli.errors import Hw0Error, Hw0Warning, disk_error
from hw0cli.paths import DATA_DIR_ENV, OUT_ENV, default_data_dir, default_out_dir

out_console = Console()
err_console = Console(stderr=True)
F = TypeVar("F", bound=Callable[..., Any])



def folder(value: str | Path) -> Path:
    """A folder option's value: an empty one is refused (as a path it would silently mean the
    current folder, where `.` says so)."""
    if isinstance(value, str) and not value.strip():
        raise typer.BadParameter("empty; write . for the current folder")
    return Path(value)


# Click reads the environment variables itself (and the help names them); without them, the
# library's defaults (hw0cli.paths) read the same variables.
DataDir = Annotated[Path | None, typer.Option(
    "--data-dir", help="Folder holding cifar-10-batches-py/ and MNIST/raw/",
    envvar=DATA_DIR_ENV, show_envvar=True, show_default="./data", parser=folder,
    metavar="PATH")]
OutDir = Annotated[Path | None, typer.Option(
    "--out", help="Output folder for run files, ONNX models, plots and reports",
    envvar=OUT_ENV, show_envvar=True, show_default="./artifacts", parser=folder,
    metavar="PATH")]
Json = Annotated[bool, typer.Option("--json", help="Print the result as one JSON object.")]
OUTPUT = "Output and tracking (not in the run id)"  # a panel listed after the training options
Log = Annotated[list[str] | None, typer.Option(
    "--log", help="Also log to wandb or tensorboard (repeatable); wandb runs offline unless "
    "you configured it. Needs pip install 'hw0\\[wandb]' or 'hw0\\[tensorboard]'",
    show_default="none", rich_help_panel=OUTPUT)]
LogGroup = Annotated[str | None, typer.Option(
    "--log-group", help="wandb group / TensorBoard subfolder for --log",
    show_default="none", rich_help_panel=OUTPUT)]


def data_dir_or_default(data_dir: Path | None) -> Path:
    return data_dir or default_data_dir()


def out_or_default(out: Path | None) -> Path:
    return out or default_out_dir()


def _written_folders(kwargs: dict[str, Any]) -> list[tuple[str, Path]]:
    """Where a command writes, for a disk failure that surfaced without a file name (inside
    torch.compile's cache, say)."""
    import tempfile

    from hw0cli.paths import cache_dir
    return [("the output folder", out_or_default(kwargs.get("out"))),
            ("the cache", cache_dir()), ("the temporary folder", Path(tempfile.gettempdir()))]


def _show_warnings(others: Callable[..., None]) -> Callable[..., None]:
    shown: set[str] = set()

    def show(message: Any, category: type, *args: Any, **kwargs: Any) -> None:
        if not issubclass(category, Hw0Warning):
            others(message, category, *args, **kwargs)
        elif str(message) not in shown:  # a listing read twice warns once
            shown.add(str(message))
            err_console.print(f"[bold yellow]Warning:[/] {escape(str(message))}",
                              highlight=False, soft_wrap=True)
    return show


def _fail(exc: Hw0Error) -> typer.Exit:
    # escaped: messages name extras like hw0[wandb], which rich would read as markup; the
    # user's own Ctrl-C (130) is no error
    head = "[bold yellow]Interrupted:[/]" if exc.exit_code == 130 else "[bold red]Error:[/]"
    err_console.print(f"{head} {escape(str(exc).removeprefix('Interrupted. '))}",
                      highlight=False, soft_wrap=True)
    return typer.Exit(exc.exit_code)


def handle_errors(fn: F) -> F:
    """Library errors become one paragraph on stderr and their exit code (2: usage, 1:
    runtime, 130: interrupted); so does a failing disk (full, over quota, I/O error) that
    surfaced from deep inside a library (`errors.disk_error`). Never a traceback. Library
    warnings (`Hw0Warning`, a damaged file skipped) are printed once each, on stderr."""
    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        with warnings.catch_warnings():
            warnings.simplefilter("always", Hw0Warning)
            warnings.showwarning = _show_warnings(warnings.showwarning)
            try:
                return fn(*args, **kwargs)
            except Hw0Error as exc:
                raise _fail(exc) from None
            except KeyboardInterrupt:
                err_console.print("[bold yellow]Interrupted.[/]")
                raise typer.Exit(130) from None
            except Exception as exc:
                mapped = disk_error(exc, folders=_written_folders(kwargs))
                if mapped is None:
                    raise
                raise _fail(mapped) from None
    return wrapper  # type: ignore[return-value]


def compact_table(title: str, cols: list[str], rows: list[list[str]],
                  left: tuple[str, ...] = (), fold: tuple[str, ...] = ()) -> Table:
    """A borderless table whose cells never get cut: only the `fold` columns may wrap, every
    other column is at least as wide as its header and its longest cell (markup excluded)."""
    t = Table(title=title, box=None, padding=(0, 2, 0, 0), header_style="bold underline")
    for i, c in enumerate(cols):
        width = max([len(c)] + [Text.from_markup(row[i]).cell_len for row in rows])
        t.add_column(c, justify="left" if c in left or c == "id" else "right",
                     no_wrap=c not in fold, overflow="fold",
                     min_width=None if c in fold else width)
    for row in rows:
        t.add_row(*row)
    return t


class ListingTable:
    """Columns that are never cut (each as wide as its header and longest cell), and under
    each row an indented line of details that wraps to the terminal."""

    def __init__(self, title: str, cols: list[str], rows: list[list[str]],
                 details: list[str], left: tuple[str, ...] = ()) -> None:
        self.title, self.cols, self.rows, self.details = title, cols, rows, details
        self.left = left

    def __rich_console__(self, console: Any, options: Any) -> Any:
        from rich.padding import Padding
        from rich.text import Text
        heads = [c.split("\n") for c in self.cols]
        depth = max(len(h) for h in heads)
        heads = [[""] * (depth - len(h)) + h for h in heads]
        widths = [max([len(x) for x in h] + [len(r[i]) for r in self.rows])
                  for i, h in enumerate(heads)]

        gap = " " * (2 if sum(widths) + 2 * (len(widths) - 1) <= options.max_width else 1)

        def line(cells: list[str]) -> str:
            return gap.join(c.ljust(w) if col in self.left else c.rjust(w)
                            for c, w, col in zip(cells, widths, self.cols, strict=True)
                            ).rstrip()
        yield Text(self.title, style="italic")
        for k in range(depth):
            yield Text(line([h[k] for h in heads]), style="bold", no_wrap=True,
                       overflow="ignore")  # never cut: a narrow terminal wraps it
        for row, more in zip(self.rows, self.details, strict=True):
            yield Text(line(row), no_wrap=True, overflow="ignore")
            if more:
                yield Padding(Text(more, style="dim"), (0, 0, 0, 2))


def simple_table(title: str, cols: tuple[str, ...], rows: list[list[str]],
                 left: tuple[str, ...] = ()) -> Table:
    t = Table(title=title)
    for c in cols:
        t.add_column(c, justify="left" if c in left else "right")
    for row in rows:
        t.add_row(*row)
    return t


def fmt(x: Any, pct: bool = False) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "-"
    if pct:
        return f"{100 * x:.2f}%"
    if isinstance(x, float):
        return f"{x:.4g}"
    return str(x)


def print_json(obj: Any) -> None:
    """Strict JSON (RFC 8259): a value not measured (NaN) is null, never a bare NaN."""
    from hw0cli.quantities import strict_json
    print(json.dumps(strict_json(obj), default=str, allow_nan=False))


def say(text: str, console: Console | None = None, wrap: bool = True) -> None:
    """A paragraph of output (markup allowed, no colour guessing), wrapped to the terminal;
    `wrap=False` for lines a log reader greps (ids, paths, numbers never split). Redirected
    (a log, a pipe), nothing wraps: a line is one line."""
    console = console or out_console
    console.print(text, highlight=False, soft_wrap=not wrap or not console.is_terminal)


def duration(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.0f} min"


def mode_text(compile_mode: str | None) -> str:
    return "eager" if compile_mode is None else f"compiled: {compile_mode}"


# what an option's value is, in the help (Typer would print Python type names: <list[str]>)
METAVARS = {"int": "INTEGER", "float": "NUMBER", "str": "TEXT", "Path": "PATH",
            "list[str]": "TEXT", "bool": ""}


def tidy_metavars(params: list[Any], ctx: Any) -> list[Any]:
    """Give every option without a metavar one: none for a flag, else a word for its type."""
    for p in params:
        kind = getattr(p, "param_type_name", "")
        if kind == "argument":  # its name is shown; the type column says what it takes
            word = METAVARS.get(str(p.display_type(ctx)).strip("<>"), "TEXT")
            p.display_type_rich = lambda ctx, word=word: word
            continue
        if kind != "option" or p.metavar is not None:
            continue
        if p.is_flag:
            p.metavar = ""
        else:
            shown = str(p.display_type(ctx)).strip("<>")
            p.metavar = METAVARS.get(shown, shown.upper())
    return params


class Hw0Command(TyperCommand):
    def get_params(self, ctx: Any) -> list[Any]:
        return tidy_metavars(super().get_params(ctx), ctx)


class Hw0Group(TyperGroup):
    def get_params(self, ctx: Any) -> list[Any]:
        return tidy_metavars(super().get_params(ctx), ctx)


class Hw0Typer(typer.Typer):
    """A Typer app whose every command and callback goes through `handle_errors`, so that
    library errors are mapped to messages in one place."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, cls=kwargs.pop("cls", Hw0Group), **kwargs)

    def command(self, *args: Any, **kwargs: Any) -> Callable[[F], F]:
        register = super().command(*args, cls=kwargs.pop("cls", Hw0Command), **kwargs)

        def decorate(fn: F) -> F:
            register(handle_errors(fn))
            return fn
        return decorate

    def callback(self, *args: Any, **kwargs: Any) -> Callable[[F], F]:
        register = super().callback(*args, **kwargs)

        def decorate(fn: F) -> F:
            register(handle_errors(fn))
            return fn
        return decorate


def choice(choices: Any, *decls: str, help: str, **kwargs: Any) -> Any:
    """An option that lists and completes the values of a `Literal`; the library checks the
    value (with its own message), as it does for library callers."""
    import typing
    values = typing.get_args(choices)

    def complete(incomplete: str) -> list[str]:
        return [c for c in values if c.startswith(incomplete)]
    return typer.Option(*decls, help=f"{help}; one of: {', '.join(values)}",
                        autocompletion=complete, metavar="NAME", **kwargs)


def show(renderable: Any) -> None:
    """A table or other rich renderable, on stdout."""
    out_console.print(renderable)
