"""The `hw0` command line: the only module that imports typer/rich or exits the process.

Each command builds one frozen config, calls one `run_*` function and renders its result.
Library errors (`Hw0Error`) become a one-paragraph message on stderr and exit code 1 (runtime)
or 2 (usage); no traceback.
"""

from __future__ import annotations

import contextlib
import functools
import json
import math
import os
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import numpy as np
import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table
from rich.text import Text

from hw0cli.errors import Hw0Error

app = typer.Typer(help="hw0: the deep-learning homework as fast, reproducible experiments.",
                  no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False)
data_app = typer.Typer(help="Fetch and inspect CIFAR-10 and MNIST.", no_args_is_help=True)
app.add_typer(data_app, name="data")
grid_app = typer.Typer(help="The width x label-noise grid (Problem 2): list, run, status, "
                       "report. Each takes --widths, --noise, --seeds and any `hw0 train` "
                       "option, so one option string describes one grid everywhere.",
                       no_args_is_help=True)
app.add_typer(grid_app, name="grid")

out_console = Console()
err_console = Console(stderr=True)
F = TypeVar("F", bound=Callable[..., Any])

OUT_ENV = "HW0_OUT"


def _default_out() -> Path:
    return Path(os.environ.get(OUT_ENV) or "artifacts")


def _default_data() -> Path:
    from hw0cli.data import default_data_dir
    return default_data_dir()


DataDir = Annotated[Path | None, typer.Option(
    "--data-dir", help="Folder holding cifar-10-batches-py/ and MNIST/raw/ "
    "[default: $HW0_DATA_DIR or ./data]", show_default=False)]
OutDir = Annotated[Path | None, typer.Option(
    "--out", help="Output folder for run files, ONNX models, plots and reports "
    "[default: $HW0_OUT or ./artifacts]", show_default=False)]
Json = Annotated[bool, typer.Option("--json", help="Print the result as one JSON object.")]
Log = Annotated[list[str] | None, typer.Option(
    "--log", help="Also log to wandb or tensorboard (repeatable); wandb runs offline unless "
    "you configured it. Needs `pip install 'hw0[wandb]'` / `'hw0[tensorboard]'`",
    show_default=False)]
LogGroup = Annotated[str | None, typer.Option(
    "--log-group", help="wandb group / TensorBoard subfolder for --log [default: none]",
    show_default=False)]


def handle_errors(fn: F) -> F:
    """Turn library errors into a message on stderr and the right exit code."""
    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except Hw0Error as exc:
            # escaped: messages name extras like hw0[wandb], which rich would read as markup
            err_console.print(f"[bold red]Error:[/] {escape(str(exc))}", highlight=False,
                              soft_wrap=True)
            raise typer.Exit(exc.exit_code) from None
        except KeyboardInterrupt:
            err_console.print("[bold red]Interrupted.[/]")
            raise typer.Exit(130) from None
    return wrapper  # type: ignore[return-value]


def _compact_table(title: str, cols: list[str], rows: list[list[str]], left: tuple[str, ...] = (),
                   fold: tuple[str, ...] = ()) -> Table:
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


def _fmt(x: Any, pct: bool = False) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "-"
    if pct:
        return f"{100 * x:.2f}%"
    if isinstance(x, float):
        return f"{x:.4g}"
    return str(x)


def _print_json(obj: Any) -> None:
    print(json.dumps(obj, default=str))


# ---------------------------------------------------------------------------------------------
# data


@data_app.command("download")
@handle_errors
def data_download(data_dir: DataDir = None, which: Annotated[str, typer.Option(
        help="cifar10, mnist, or both (comma-separated)")] = "cifar10,mnist") -> None:
    """Download CIFAR-10 and MNIST with torchvision's utilities into torchvision's layouts."""
    from hw0cli.data import download
    from hw0cli.errors import check
    data_dir = data_dir or _default_data()
    sets = tuple(s.strip() for s in which.split(",") if s.strip())
    check(bool(sets) and all(s in ("cifar10", "mnist") for s in sets),
          f"--which takes cifar10, mnist or both (got '{which}').")
    for line in download(data_dir, sets):
        out_console.print(line)


@data_app.command("info")
@handle_errors
def data_info(data_dir: DataDir = None, as_json: Json = False) -> None:
    """Show which data files are present, their sizes and whether they match the official MD5."""
    from hw0cli.data import info
    data_dir = data_dir or _default_data()
    rows = info(data_dir)
    missing = sorted({r.dataset for r in rows if not r.present})
    if as_json:
        _print_json([r.__dict__ for r in rows])
        if missing:  # scripts can test the exit code
            raise typer.Exit(1)
        return
    t = Table(title=f"Data in {data_dir}")
    for c in ("dataset", "file", "present", "size", "official checksum"):
        t.add_column(c)
    for r in rows:
        ok = "-" if r.md5_ok is None else ("[green]match[/]" if r.md5_ok
                                           else "[yellow]differs[/]")
        t.add_row(r.dataset, Path(r.path).name, "yes" if r.present else "[red]missing[/]",
                  f"{r.size / 1e6:.1f} MB" if r.present else "-", ok)
    out_console.print(t)
    if any(r.md5_ok is False for r in rows):
        err_console.print("[yellow]Warning:[/] some files differ from the official release "
                          "(a re-encoded or modified copy); results may differ slightly.")
    if missing:
        raise Hw0Error(f"Missing files of {', '.join(missing)}: run `hw0 data download "
                       f"--which {','.join(missing)} --data-dir {data_dir}`.")


# ---------------------------------------------------------------------------------------------
# train


class RichReporter:
    """Training progress a person can follow, in a terminal and in a log file.

    The live bar (this epoch's steps and the whole run, each with an ETA) is drawn on stderr,
    and only when stderr is a terminal; status lines say what happens before the first step
    (loading data, one-time compilation). One line per finished epoch goes to `lines` (stdout,
    or stderr with --json), never wrapped, without escape codes when redirected; while the bar
    is up and stdout is the same terminal, the lines are printed above the bar instead.
    """

    def __init__(self, lines: Console, status: Console | None = None) -> None:
        self.lines = lines
        self.status_console = status or err_console
        self.progress: Progress | None = None
        if self.status_console.is_terminal:
            self.progress = Progress(
                TextColumn("{task.description}"), BarColumn(bar_width=30),
                TextColumn("{task.fields[info]}"), TextColumn("[dim]ETA[/]"),
                TimeRemainingColumn(), console=self.status_console, transient=True,
                redirect_stdout=False, redirect_stderr=False)
        self.epoch_task: Any = None
        self.run_task: Any = None
        self.epochs = self.steps = self.start = 0

    def __enter__(self) -> RichReporter:
        if self.progress is not None:
            self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.progress is not None:
            self.progress.stop()

    def _line(self, text: str) -> None:
        if self.progress is not None and self.lines.is_terminal:
            self.progress.console.print(text, highlight=False, soft_wrap=True)
        else:
            self.lines.print(text, highlight=False, soft_wrap=True)

    def status(self, text: str) -> None:
        """What is happening before the bar moves (data loading, compilation)."""
        if self.progress is None:
            self.status_console.print(f"{text} ...", highlight=False, soft_wrap=True)
        elif self.epoch_task is None:
            self.epoch_task = self.progress.add_task(text, total=None, info="")
        else:
            self.progress.update(self.epoch_task, description=text, info="")

    def on_start(self, info: dict[str, Any]) -> None:
        self.epochs, self.steps = info["epochs"], info["steps_per_epoch"]
        self.start = info["start_epoch"]
        first = self.start + 1
        resumed = f", resuming after epoch {info['start_epoch']}" if info["start_epoch"] else ""
        self._line(f"run [bold]{info['run_id']}[/] on {info['device']} ({info['precision']}, "
                   f"{_mode(info.get('compile_mode'))}), {info['n_train']} training images, "
                   f"realized label noise {100 * info['realized_noise']:.1f}%{resumed}")
        self._line(f"{'epoch':>5} {'train loss':>10} {'train err':>9} {'test loss':>9} "
                   f"{'test err':>8} {'lr':>8} {'seconds':>7}")
        waiting = ("compiling the training step (one-time, cached for later runs)"
                   if info.get("compile_mode") else "first steps")
        self.status(f"epoch {first}/{self.epochs}: {waiting}")
        if self.progress is not None:
            self.progress.update(self.epoch_task, total=self.steps, completed=0)
            self.run_task = self.progress.add_task(
                "run", total=(self.epochs - self.start) * self.steps, info="")

    def on_step(self, epoch: int, step: int, nsteps: int, loss: float, acc: float,
                images_per_s: float) -> None:
        if self.progress is None:
            return
        text = f"loss {loss:.3f}  acc {acc:.1%}  {images_per_s:,.0f} img/s"
        self.progress.update(self.epoch_task, description=f"epoch {epoch}/{self.epochs}",
                             total=nsteps, completed=step, info=text)
        self.progress.update(self.run_task,
                             completed=(epoch - 1 - self.start) * self.steps + step)

    def on_epoch(self, row: dict[str, Any]) -> None:
        extra = ""
        if not math.isnan(row.get("train_eval_err", math.nan)):
            extra += f"  full-train err {100 * row['train_eval_err']:.2f}%"
        if not math.isnan(row.get("test_err_tta", math.nan)):
            extra += f"  test err (flip TTA) {100 * row['test_err_tta']:.2f}%"
        self._line(f"{row['epoch']:>5} {row['train_loss']:>10.4f} {100 * row['train_err']:>8.2f}% "
                   f"{row['test_loss']:>9.4f} {100 * row['test_err']:>7.2f}% {row['lr']:>8.4g} "
                   f"{row['seconds']:>7.1f}{extra}")
        if self.progress is not None and row["epoch"] < self.epochs:
            # reset, not update: the epoch's ETA must not use the last epoch's step times
            self.progress.reset(self.epoch_task, total=self.steps, info="",
                                description=f"epoch {row['epoch'] + 1}/{self.epochs}")


def run_with_display(cfg: Any, lines: Console | None, tc: Any = None) -> Any:
    """`run_train` with the progress display (None: quiet) and the trackers of `tc`."""
    from hw0cli.data import load_cifar10
    from hw0cli.env import resolve_device
    from hw0cli.tracking import Fanout, TrackingReporter
    from hw0cli.train import run_train, validate
    validate(cfg)  # bad options are reported before the data is read, as run_train does
    resolve_device(cfg.device)
    with contextlib.ExitStack() as stack:
        display = stack.enter_context(RichReporter(lines)) if lines is not None else None
        tracking = stack.enter_context(TrackingReporter(tc)) if tc else None
        if display is not None:
            display.status(f"loading CIFAR-10 from {cfg.data_dir}")
        data = load_cifar10(cfg.data_dir)
        if display is not None:
            display.status("preparing the trainer (with --precision/--compile-mode auto, "
                           "the first run on a machine also times the candidates)")
        reporter = Fanout(display, tracking) if display or tracking else None
        return run_train(cfg, reporter=reporter, data=data)


def _mode(compile_mode: str | None) -> str:
    return "eager" if compile_mode is None else f"compiled: {compile_mode}"


@app.command()
@handle_errors
def train(
    width: Annotated[int | None, typer.Option(help="Myrtle5 width c (convs c,2c,4c,8c) "
                                              "[default: 64]")] = None,
    noise: Annotated[float | None, typer.Option(help="Label-noise probability p in [0,1] "
                                                "[default: 0]")] = None,
    epochs: Annotated[int | None, typer.Option(help="Epochs (the cap with "
                                               "--until-train-error) [default: 20]")] = None,
    batch_size: Annotated[int | None, typer.Option(help="Batch size [default: 128]")] = None,
    lr: Annotated[float | None, typer.Option(help="(Peak) learning rate [default: 0.1]")] = None,
    momentum: Annotated[float | None, typer.Option(help="SGD momentum [default: 0]")] = None,
    nesterov: Annotated[bool | None, typer.Option("--nesterov/--no-nesterov",
                                                  help="Nesterov momentum")] = None,
    weight_decay: Annotated[float | None, typer.Option(help="Weight decay [default: 0]")] = None,
    optimizer: Annotated[str | None, typer.Option(help="sgd | adam [default: sgd]")] = None,
    schedule: Annotated[str | None, typer.Option(
        help="constant | step | cosine | onecycle [default: constant]")] = None,
    augment: Annotated[str | None, typer.Option(
        help="none, or hflip, vflip, crop joined by '+' [default: none]")] = None,
    label_smoothing: Annotated[float | None, typer.Option(help="[default: 0]")] = None,
    objective: Annotated[str | None, typer.Option(
        help="standard | worst-view (minimize the larger loss of image and its vertical "
        "flip) [default: standard]")] = None,
    tta: Annotated[bool | None, typer.Option("--tta/--no-tta", help="Also report test error "
                                             "with horizontal-flip test-time averaging")] = None,
    train_samples: Annotated[int | None, typer.Option(help="Train on a seeded subset of this "
                                                      "many images [default: 50000]")] = None,
    no_batchnorm: Annotated[bool, typer.Option("--no-batchnorm",
                                               help="Remove the BatchNorm layers")] = False,
    seed: Annotated[int, typer.Option(help="Seed for init, subset, noise, order")] = 0,
    until_train_error: Annotated[float | None, typer.Option(
        help="Stop once full-train-set error <= this fraction (e.g. 0.01)")] = None,
    patience: Annotated[int | None, typer.Option(
        help="Stop when the training error has not improved for this many epochs")] = None,
    eval_every: Annotated[int | None, typer.Option(
        help="Evaluate the test set every N epochs (and after the last) [default: 1]")] = None,
    warmup: Annotated[float | None, typer.Option(
        help="Fraction of steps the onecycle/triangle lr rises over [default: 0.25]")] = None,
    drop_last: Annotated[bool | None, typer.Option(
        "--drop-last/--no-drop-last", help="Skip each epoch's partial last batch "
        "[default: no]")] = None,
    pad_mode: Annotated[str | None, typer.Option(
        help="Crop padding: zeros | reflect [default: zeros]")] = None,
    cutout: Annotated[int | None, typer.Option(
        help="Side (pixels) of a square cut out of each training image; 0 = off "
        "[default: 0]")] = None,
    normalize: Annotated[bool | None, typer.Option(
        "--normalize/--no-normalize", help="Standardize inputs per channel [default: no]")] = None,
    bias: Annotated[bool | None, typer.Option(
        "--bias/--no-bias", help="Conv and linear biases [default: yes]")] = None,
    logit_scale: Annotated[float | None, typer.Option(
        help="Multiply the logits by this (Page: 0.125) [default: 1]")] = None,
    tta_shift: Annotated[int | None, typer.Option(
        help="With --tta, also average over images moved by +-this many pixels "
        "[default: 0]")] = None,
    ema: Annotated[float | None, typer.Option(
        help="Evaluate a moving average of the weights with this decay per step; 0 = off "
        "[default: 0]")] = None,
    recipe: Annotated[str, typer.Option(help="notebook (course recipe) | fast | page (see "
                                        "README); explicit options override it")] = "notebook",
    device: Annotated[str, typer.Option(help="auto | cuda | cpu")] = "auto",
    precision: Annotated[str, typer.Option(help="auto | bf16 | fp16 | fp32 (auto: the fastest "
                                           "measured on this machine)")] = "auto",
    compile: Annotated[bool | None, typer.Option("--compile/--no-compile", help="torch.compile "
                                                 "[default: on for CUDA, and for CPU when a C++ "
                                                 "compiler is installed]")] = None,
    compile_mode: Annotated[str, typer.Option(help="auto (the fastest measured here) | default "
                                              "| reduce-overhead (CUDA graphs) | "
                                              "max-autotune")] = "auto",
    run_id: Annotated[str | None, typer.Option(help="Name of the run [default: derived from "
                                               "the settings]")] = None,
    resume: Annotated[bool, typer.Option(help="Continue an existing unfinished run (also "
                                         "automatic for the same settings)")] = False,
    force: Annotated[bool, typer.Option(help="Retrain even if this run already finished")] = False,
    quiet: Annotated[bool, typer.Option(help="No progress output")] = False,
    log: Log = None,
    log_group: LogGroup = None,
    as_json: Json = False,
    data_dir: DataDir = None,
    out: OutDir = None,
) -> None:
    """Train Myrtle5 on CIFAR-10 (defaults: the course notebook's recipe)."""
    from hw0cli.tracking import TrackingConfig, parse_backends, require
    from hw0cli.train import make_config
    cfg = make_config(
        recipe, width=width, noise=noise, epochs=epochs, batch_size=batch_size, lr=lr,
        momentum=momentum, nesterov=nesterov, weight_decay=weight_decay, optimizer=optimizer,
        schedule=schedule, augment=augment, label_smoothing=label_smoothing,
        objective=objective, tta=tta, train_samples=train_samples,
        batchnorm=False if no_batchnorm else None, seed=seed,
        until_train_error=until_train_error, patience=patience, eval_every=eval_every,
        warmup=warmup, drop_last=drop_last, pad_mode=pad_mode, cutout=cutout,
        normalize=normalize, bias=bias, logit_scale=logit_scale, tta_shift=tta_shift, ema=ema,
        device=device, precision=precision, compile_mode=compile_mode,
        compile=compile, data_dir=data_dir or _default_data(), out=out or _default_out(),
        run_id=run_id, resume=resume, force=force)
    tc = TrackingConfig(parse_backends(log), cfg.out, log_group)
    require(tc.backends)
    console = err_console if as_json else out_console
    result = run_with_display(cfg, None if quiet else console, tc)
    if as_json:
        _print_json(result.to_json())
        return
    if quiet:
        return
    if result.status == "skipped":
        console.print(f"run [bold]{result.run_id}[/] already finished ({result.path}); "
                      "pass --force to train it again"
                      + (", or `hw0 runs sync` to log it." if tc else "."), highlight=False,
                      soft_wrap=True)
    views = result.test_acc_views
    flip = (f", vertically flipped {100 * views['vflip']:.2f}%" if "vflip" in views else "")
    console.print(
        f"[bold]done[/]: test accuracy {100 * (1 - result.test_err):.2f}%{flip}; train error "
        f"{100 * result.train_err:.2f}%; {result.seconds:.1f} s of training "
        f"({result.images_per_s:,.0f} images/s, {result.device}, {result.precision}, "
        f"{_mode(result.compile_mode)}) + {result.one_time_s:.1f} s one-time (compile, "
        "autotune, capture). "
        f"Saved {result.path}", highlight=False, soft_wrap=True)


# ---------------------------------------------------------------------------------------------
# runs


runs_app = typer.Typer(help="List the training runs; `history`, `sync` for one or more.")
app.add_typer(runs_app, name="runs")


@runs_app.callback(invoke_without_command=True)
@handle_errors
def runs_cmd(
    ctx: typer.Context,
    out: OutDir = None,
    views: Annotated[bool, typer.Option("--views", help="Rank by min(original, flipped) "
                                        "test accuracy (flip robustness)")] = False,
    as_json: Json = False,
) -> None:
    """List the training runs under the output folder (or: hw0 runs history|sync ...)."""
    if ctx.invoked_subcommand is not None:
        return
    from hw0cli.runs import list_runs
    out = out or _default_out()
    found = list_runs(out)
    if views:
        found = sorted(found, key=lambda r: -min(r.test_acc_views.values(), default=-1))
    if as_json:
        _print_json([r.to_json() for r in found])
        return
    if not found:
        out_console.print(f"No runs under {out}/runs yet. Start one with `hw0 train`.")
        return
    # short headers: both tables fit 80 columns, so no id or number is cut
    if views:  # the robustness ranking: test accuracy on both views, and how the run trained
        title = (f"Runs in {out}/runs by min(original, upside-down) test accuracy "
                 "(c: width)")
        cols = ["id", "c", "original", "vflip", "min", "trained with"]
    else:
        title = (f"Runs in {out}/runs (c: width, p: label noise; train err on the labels "
                 "used, last epoch)")
        cols = ["id", "status", "c", "p", "epochs", "train err", "test err", "time"]
    rows = []
    for r in found:
        c = r.config
        if views:
            v = r.test_acc_views
            how = [x for x in (f"augment {c.get('augment')}" if c.get("augment") not in
                               (None, "none") else "", f"{c.get('objective')} objective"
                               if c.get("objective") not in (None, "standard") else "") if x]
            rows.append([r.run_id, _fmt(c.get("width")), _fmt(v.get("original"), True),
                         _fmt(v.get("vflip"), True),
                         _fmt(min(v.values()) if v else None, True), ", ".join(how) or "plain"])
        else:
            rows.append([r.run_id, r.status, _fmt(c.get("width")), _fmt(c.get("noise")),
                         str(r.epochs_done), _fmt(r.train_err, True), _fmt(r.test_err, True),
                         f"{r.seconds:.0f} s"])
    out_console.print(_compact_table(title, cols, rows, left=("id", "status", "trained with"),
                                     fold=("trained with",)))


RunsArg = Annotated[list[str] | None, typer.Argument(
    help="Run ids or .h5 files [default: every run under --out]", show_default=False)]


@runs_app.command("history")
@handle_errors
def runs_history(
    run: Annotated[str | None, typer.Argument(help="Run id or .h5 file [default: the most "
                                              "recently finished run]", show_default=False)]
    = None,
    csv: Annotated[bool, typer.Option("--csv", help="CSV with a header (the default)")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per epoch, as a "
                                          "list")] = False,
    out: OutDir = None,
) -> None:
    """Print a run's per-epoch history (CSV or JSON) for pandas, spreadsheets, plotting."""
    from hw0cli.errors import Hw0UsageError
    from hw0cli.runs import history_table, resolve_run
    if csv and as_json:
        raise Hw0UsageError("Choose one of --csv and --json.")
    table = history_table(resolve_run(out or _default_out(), run))
    if as_json:
        _print_json(table.rows())
    else:
        print(table.to_csv(), end="")


@runs_app.command("sync")
@handle_errors
def runs_sync(
    runs: RunsArg = None,
    to: Annotated[list[str] | None, typer.Option(
        "--to", help="wandb and/or tensorboard (repeatable)", show_default=False)] = None,
    log_group: LogGroup = None,
    out: OutDir = None,
) -> None:
    """Replay stored runs' histories into wandb or TensorBoard (runs made without --log)."""
    from hw0cli.errors import Hw0UsageError
    from hw0cli.runs import list_runs, resolve_run
    from hw0cli.tracking import TrackingConfig, parse_backends, require, sync_run
    out = out or _default_out()
    backends = parse_backends(to)
    if not backends:
        raise Hw0UsageError("Say where to sync with --to wandb or --to tensorboard.")
    require(backends)
    paths = [resolve_run(out, r) for r in runs] if runs else [r.path for r in list_runs(out)]
    if not paths:
        raise Hw0UsageError(f"No runs under {out}/runs to sync. Train one with `hw0 train`.")
    tc = TrackingConfig(backends, out, log_group)
    for p in paths:
        n = sync_run(tc, p)
        out_console.print(f"synced {p.stem}: {n} epochs to {', '.join(backends)}",
                          highlight=False, soft_wrap=True)
    if "tensorboard" in backends:
        out_console.print(f"view: tensorboard --logdir {Path(out) / 'tensorboard'}",
                          highlight=False, soft_wrap=True)


# ---------------------------------------------------------------------------------------------
# export / eval

RunArg = Annotated[str | None, typer.Argument(
    help="Run id or .h5 file [default: the most recently finished run]", show_default=False)]


@app.command()
@handle_errors
def export(
    run: RunArg = None,
    fp16: Annotated[bool, typer.Option("--fp16", help="Also write an fp16 variant")] = False,
    int8: Annotated[bool, typer.Option("--int8", help="Also write an int8 (QDQ) variant")] = False,
    force: Annotated[bool, typer.Option(help="Export again even if a matching file exists")]
    = False,
    as_json: Json = False,
    data_dir: DataDir = None,
    out: OutDir = None,
) -> None:
    """Export a trained run to ONNX (uint8 pixels in, logits out) and validate it."""
    from hw0cli.export import ExportConfig, run_export
    res = run_export(ExportConfig(run=run, out=out or _default_out(),
                                  data_dir=data_dir or _default_data(), fp16=fp16, int8=int8,
                                  force=force))
    if as_json:
        _print_json({"run_id": res.run_id, "onnx": str(res.onnx_path), "reused": res.reused,
                     "max_abs_diff": res.max_abs_diff, "variants": res.variants})
        return
    for note in res.notes:
        out_console.print(f"({note})", highlight=False)
    verb = "reused (matches the run's weights)" if res.reused else "exported and validated"
    out_console.print(f"run [bold]{res.run_id}[/]: {res.onnx_path} {verb}; max |logit "
                      f"difference| vs torch {res.max_abs_diff:.2e}", highlight=False)
    for name, v in res.variants.items():
        out_console.print(f"  {name}: {v['path']}, test accuracy {100 * v['accuracy']:.2f}% "
                          f"({100 * v['accuracy_change']:+.2f} points vs fp32)", highlight=False)


@app.command("eval")
@handle_errors
def eval_cmd(
    run: RunArg = None,
    flip: Annotated[bool, typer.Option("--flip", help="Also evaluate upside-down images "
                                       "(vertical flip)")] = False,
    hflip: Annotated[bool, typer.Option("--hflip", help="Also evaluate mirrored images "
                                        "(horizontal flip)")] = False,
    view: Annotated[list[str] | None, typer.Option(
        "--view", help="Views to evaluate (original, vflip, hflip); repeatable")] = None,
    backend: Annotated[str, typer.Option(help="auto | onnxruntime | torch (auto: onnxruntime "
                                         "on a GPU provider, else torch on a GPU, else "
                                         "onnxruntime on the CPU)")] = "auto",
    model: Annotated[str, typer.Option(
        "--model", help="ONNX model: fp32, or int8 / fp16 (built on first use; their "
        "accuracy change vs fp32 is printed and stored)")] = "fp32",
    provider: Annotated[str, typer.Option(help="auto | tensorrt | cuda | cpu "
                                          "(onnxruntime)")] = "auto",
    device: Annotated[str, typer.Option(help="auto | cuda | cpu (torch backend)")] = "auto",
    batch_size: Annotated[int, typer.Option(help="Images per inference call")] = 1000,
    confusion: Annotated[bool, typer.Option("--confusion", help="Print confusion matrices")]
    = False,
    plot: Annotated[bool, typer.Option("--plot/--no-plot", help="Write the per-class PNG")]
    = True,
    as_json: Json = False,
    data_dir: DataDir = None,
    out: OutDir = None,
) -> None:
    """Test accuracy on original and flipped images, overall and per class (Problem 1)."""
    from hw0cli.evaluate import EvalConfig, result_group, run_eval
    views = list(view or ["original"])
    if flip and "vflip" not in views:
        views.append("vflip")
    if hflip and "hflip" not in views:
        views.append("hflip")
    out = out or _default_out()
    res = run_eval(EvalConfig(run=run, views=tuple(views), backend=backend, model=model,
                              provider=provider, device=device, batch_size=batch_size,
                              out=out, data_dir=data_dir))
    png = None
    if plot and len(res.views) > 1:
        from hw0cli.plots import per_class_views
        tag = "" if res.model == "fp32" else f"_{res.model}"  # fp32's plot stays as it was
        png = per_class_views(res.classes, {v: m.per_class_accuracy for v, m in
                                            res.views.items()},
                              out / "plots" / f"{res.run_id}_per_class{tag}.png",
                              f"Per-class test accuracy, run {res.run_id}"
                              + (f" ({res.model} ONNX)" if tag else ""))
    if as_json:
        d = res.to_json()
        d["plot"] = str(png) if png else None
        _print_json(d)
        return
    console = out_console
    if run is None:
        console.print(f"(no run named: using the most recently finished run, {res.run_id})",
                      highlight=False)
    for note in res.notes:
        console.print(f"({note})", highlight=False)
    n_images = sum(int(m.confusion.sum()) for m in res.views.values())
    model_txt = "" if res.model == "fp32" else f", model [bold]{res.model}[/]"
    console.print(f"run [bold]{res.run_id}[/], backend {res.backend}{model_txt}, provider "
                  f"[bold]{res.provider}[/]: {n_images:,} images in {res.seconds:.2f} s "
                  f"({res.images_per_s:,.0f} images/s; {res.backend}: {res.backend_reason})",
                  highlight=False)
    if res.variant_info:
        vi = res.variant_info
        console.print(f"{res.model} model: test accuracy {vi['accuracy']:.2%} vs fp32 "
                      f"{vi['fp32_accuracy']:.2%} ({vi['accuracy_change'] * 100:+.2f} points)",
                      highlight=False)
    base = res.views.get("original")
    t = Table(title="Test accuracy")
    for c in ("view", "accuracy", "drop vs original"):
        t.add_column(c, justify="right")
    for v, m in res.views.items():
        drop = "-" if base is None or v == "original" else \
            f"{100 * (base.accuracy - m.accuracy):+.2f} points"
        t.add_row(v, f"{100 * m.accuracy:.2f}%", drop)
    console.print(t)
    others = [v for v in res.views if v != "original"]
    if base is not None and others:
        k = others[0]
        drops = base.per_class_accuracy - res.views[k].per_class_accuracy
        pt = Table(title=f"Per-class accuracy, sorted by drop ({k} vs original)")
        pt.add_column("class", justify="left")
        for c in ("original", *others, f"drop ({k})"):
            pt.add_column(c, justify="right")
        for i in np.argsort(-drops):
            pt.add_row(res.classes[i], f"{100 * base.per_class_accuracy[i]:.1f}%",
                       *[f"{100 * res.views[o].per_class_accuracy[i]:.1f}%" for o in others],
                       f"{100 * drops[i]:+.1f}")
        console.print(pt)
    if confusion:
        for v, m in res.views.items():
            ct = Table(title=f"Confusion matrix, {v} (rows: true class, columns: predicted)")
            ct.add_column("")
            for c in res.classes:
                ct.add_column(c[:5], justify="right")
            for i, row in enumerate(m.confusion):
                ct.add_row(res.classes[i], *[str(int(n)) for n in row])
            console.print(ct)
    if png:
        console.print(f"plot: {png}", highlight=False)
    console.print(f"results stored under {result_group(res.model)}/<view>/ in {res.run_path}",
                  highlight=False)


# ---------------------------------------------------------------------------------------------
# linreg


def _floats(text: str | None, name: str) -> tuple[float, ...]:
    from hw0cli.errors import Hw0UsageError
    if not text:
        return ()
    try:
        return tuple(float(t) for t in text.split(","))  # an empty item fails too
    except ValueError:
        raise Hw0UsageError(f"{name} takes comma-separated numbers (got '{text}').") from None


@app.command()
@handle_errors
def linreg(
    method: Annotated[str, typer.Option(help="rank | pinv | lstsq | solve | gd | sgd | "
                                        "overparam | rf | kernel | all")] = "all",
    n: Annotated[int, typer.Option(help="Training images drawn from the 60,000")] = 500,
    seed: Annotated[int, typer.Option(help="Seeds the sample, SGD and random features")] = 0,
    gd_iters: Annotated[int, typer.Option(help="Gradient-descent iterations")] = 10_000,
    gd_step: Annotated[float | None, typer.Option(help="GD step [default: 1/L, "
                                                  "L = 2 sigma_max^2]")] = None,
    sgd_iters: Annotated[int, typer.Option(help="SGD steps")] = 20_000,
    sgd_batch: Annotated[int, typer.Option(help="SGD batch size")] = 32,
    sgd_step: Annotated[float | None, typer.Option(help="SGD step [default: "
                                                   "1/(2 n max ||x_i||^2)]")] = None,
    sgd_schedule: Annotated[str, typer.Option(help="constant | invsqrt")] = "constant",
    overparam_iters: Annotated[int, typer.Option(help="SGD steps for b = W1 b1")] = 5_000,
    overparam_init: Annotated[float, typer.Option(help="Init scale of W1, b1")] = 0.01,
    overparam_step: Annotated[float | None, typer.Option(help="[default: 1/L]")] = None,
    overparam_batch: Annotated[int, typer.Option(help="0 = full batch")] = 0,
    rf_features: Annotated[str | None, typer.Option(help="Comma-separated D sweep "
                                                    "[default: 50 .. 20000]")] = None,
    rf_kinds: Annotated[str, typer.Option(help="rff and/or relu")] = "rff,relu",
    rf_ridge: Annotated[float, typer.Option(help="0 = minimum-norm fit")] = 0.0,
    bandwidths: Annotated[str | None, typer.Option(help="Comma-separated kernel bandwidths "
                                                   "[default: 1/8 .. 8 x median]")] = None,
    ridge: Annotated[float, typer.Option(help="Kernel ridge lambda (0 = interpolate)")] = 0.0,
    device: Annotated[str, typer.Option(help="auto | cuda | cpu (torch parts)")] = "auto",
    dtype: Annotated[str, typer.Option(help="float32 | float64 (torch parts)")] = "float64",
    as_json: Json = False,
    data_dir: DataDir = None,
    out: OutDir = None,
) -> None:
    """Least squares, GD/SGD, a factorized model and kernels on MNIST (Problem 3)."""
    from hw0cli.linreg import DEFAULT_RF_D, LinregConfig, run_linreg
    d_sweep = tuple(int(v) for v in _floats(rf_features, "--rf-features")) or DEFAULT_RF_D
    cfg = LinregConfig(
        method=method, n=n, seed=seed, gd_iters=gd_iters, gd_step=gd_step, sgd_iters=sgd_iters,
        sgd_batch=sgd_batch, sgd_step=sgd_step, sgd_schedule=sgd_schedule,
        overparam_iters=overparam_iters, overparam_init=overparam_init,
        overparam_step=overparam_step, overparam_batch=overparam_batch, rf_features=d_sweep,
        rf_kinds=tuple(k.strip() for k in rf_kinds.split(",") if k.strip()), rf_ridge=rf_ridge,
        kernel_bandwidths=_floats(bandwidths, "--bandwidths"), kernel_ridge=ridge,
        device=device, dtype=dtype, data_dir=data_dir or _default_data(),
        out=out or _default_out())
    console = err_console if as_json else out_console
    with console.status("starting") as status:
        res = run_linreg(cfg, progress=lambda msg: status.update(msg))
    if as_json:
        _print_json({"id": res.id, "path": str(res.path), "summary": res.summary,
                     "notes": res.notes, "plots": [str(p) for p in res.plots]})
        return
    _print_linreg(res)


def _print_linreg(res: Any) -> None:
    from hw0cli.linreg import describe, format_factor
    s, c = res.summary, out_console
    sp = s["spectrum"]
    c.print(f"[bold]Problem 3[/] on MNIST: n = {s['n']} training images (seed {s['seed']}), "
            f"d = {s['d']}, labels {s['labels']}; test: 10,000 images", highlight=False)
    c.print(f"rank(X) = {sp['rank']} (tolerance {sp['tol']:.3g} = sigma_max * max(n, d) * eps); "
            f"sigma_max = {sp['sigma_max']:.4g}, smallest nonzero sigma = "
            f"{sp['sigma_min_nonzero']:.4g}; cond(X) = {sp['cond_X']:.4g}, cond(X^T X) = "
            f"{sp['cond_XtX']:.4g}; L = 2 sigma_max^2 = {sp['L']:.4g}", highlight=False)
    t = Table(title="Solutions")
    for col in ("solution", "train MSE", "test MSE", "test acc", "||b||", "||b - b_pinv||"):
        t.add_column(col, justify="right")
    for how, r in s.get("min_norm", {}).items():
        agree = s["min_norm_agreement"].get(how)
        t.add_row(f"min-norm ({how})", f"{r['train_mse']:.3g}", f"{r['test_mse']:.4g}",
                  f"{100 * r['test_acc']:.2f}%", f"{r['norm']:.4g}",
                  "-" if agree is None else f"{agree:.1e} (relative)")
    for m in ("gd", "sgd", "overparam"):
        if m in s:
            r = s[m]
            label = {"gd": f"GD, {r['iters']} its", "sgd": f"SGD, {r['iters']} steps",
                     "overparam": f"W1 b1, {r['iters']} steps"}[m]
            t.add_row(label, f"{r['train_mse']:.3g}", f"{r['test_mse']:.4g}",
                      f"{100 * r['test_acc']:.2f}%", f"{r['norm']:.4g}", f"{r['dist_pinv']:.4g}")
    if t.row_count:
        c.print(t)
    if "gd" in s:
        mt = Table(title=f"GD error along singular directions (step {s['gd']['step']:.3g}): "
                   "predicted factor |1 - 2 step sigma_i^2| per iteration vs measured")
        for col in ("mode i", "sigma_i", "predicted", "measured", "its for 1e-3",
                    "error start", "error end"):
            mt.add_column(col, justify="right")
        for m in s["gd"]["modes"]:
            mt.add_row(str(m["index"]), f"{m['sigma']:.4g}",
                       format_factor(m["predicted_factor"]),
                       format_factor(m["measured_factor"]), f"{m['iters_for_1e-3']:.3g}",
                       f"{m['error_start']:.3g}", f"{m['error_end']:.3g}")
        c.print(mt)
        c.print("GD from b = 0 stays in the row space of X and converges to the min-norm "
                "solution, but each singular direction i shrinks by its own factor per "
                "iteration; the smallest sigma needs ~cond(X^T X) iterations, so in practice GD "
                "stops far from b_pinv, at a smaller-norm solution that generalizes better.",
                highlight=False)
    for line in describe(s).values():
        c.print(line, highlight=False)
    for note in res.notes:
        c.print(f"[yellow]note:[/] {note}", highlight=False)
    folder = res.plots[0].parent if res.plots else "-"
    c.print(f"saved {res.path} and {len(res.plots)} plots in {folder} ({res.seconds:.1f} s)",
            highlight=False)


# ---------------------------------------------------------------------------------------------
# grid

class GridProgress:
    """Cells done / running / left with an ETA, and each running cell's epoch.

    On a terminal: a live display on stderr, refreshed from the running cells' run files (each
    checkpoint records `epochs_done`). Otherwise: one line per cell start and end, on stdout.
    """

    def __init__(self, total: int) -> None:
        import threading
        self.total, self.finished, self.failed = total, 0, 0
        self.running: dict[int, tuple[Any, float]] = {}  # index -> (config, start time)
        self.durations: list[float] = []  # cells that trained (not skipped), for the ETA
        self.lock = threading.Lock()
        self.stop_event = threading.Event()
        self.live = err_console.is_terminal
        self.progress = Progress(
            TextColumn("{task.description}"), BarColumn(bar_width=24),
            TextColumn("{task.fields[info]}"), console=err_console, transient=True,
            redirect_stdout=False, redirect_stderr=False) if self.live else None
        self.cell_tasks: dict[int, Any] = {}
        self.thread = threading.Thread(target=self._poll, daemon=True, name="hw0-grid-progress")

    def __enter__(self) -> GridProgress:
        if self.progress is not None:
            self.progress.start()
            self.overall = self.progress.add_task("cells", total=self.total, info="")
            self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop_event.set()
        if self.progress is not None:
            self.thread.join(timeout=5)
            self.progress.stop()

    def counts(self) -> str:
        left = self.total - self.finished - len(self.running)
        eta = ""
        if self.durations and left + len(self.running):
            # running cells count as half done; they share the slots with the ones left
            slots = max(1, len(self.running))
            rest = float(np.mean(self.durations)) * (left + 0.5 * len(self.running)) / slots
            eta = f", ETA ~{_duration(rest)}"
        return f"{self.finished} done, {len(self.running)} running, {left} left{eta}"

    def _print(self, text: str) -> None:
        if self.progress is not None:
            self.progress.console.print(text, highlight=False, soft_wrap=True)
        else:
            out_console.print(text, highlight=False, soft_wrap=True)

    def start(self, index: int, cfg: Any) -> None:
        import time
        with self.lock:
            self.running[index] = (cfg, time.monotonic())
            if self.progress is not None:
                self.cell_tasks[index] = self.progress.add_task(
                    f"  cell {index} (c {cfg.width}, p {cfg.noise:g}, seed {cfg.seed})",
                    total=cfg.epochs, info="starting")
            else:
                self._print(f"cell {index} started (c {cfg.width}, p {cfg.noise:g}, seed "
                            f"{cfg.seed}); {self.counts()}")
            self._refresh()

    def done(self, r: Any) -> None:
        import time
        with self.lock:
            _, t0 = self.running.pop(r.index)
            seconds = time.monotonic() - t0
            self.finished += 1
            if seconds > 5:  # a skipped (already finished) cell says nothing about the pace
                self.durations.append(seconds)
            if self.progress is not None:
                self.progress.remove_task(self.cell_tasks.pop(r.index))
            ok = "[green]ok[/]" if r.returncode == 0 else f"[red]exit {r.returncode}[/]"
            self._print(f"cell {r.index} {r.run_id}: {ok} in {_duration(seconds)} (log {r.log});"
                        f" {self.counts()}")
            self._refresh()

    def _refresh(self) -> None:
        if self.progress is not None:
            self.progress.update(self.overall, completed=self.finished, info=self.counts())

    def _poll(self) -> None:
        from hw0cli import runs, store
        from hw0cli.train import run_id_for
        while not self.stop_event.wait(1.0):
            with self.lock:
                cells = dict(self.running)
            for i, (cfg, _) in cells.items():
                try:
                    a = store.read_h5(runs.run_path(cfg.out, run_id_for(cfg)),
                                      attrs_only=True).attrs
                except Hw0Error:
                    continue  # not written yet
                with self.lock:
                    if i in self.cell_tasks and self.progress is not None:
                        done = int(a.get("epochs_done", 0))
                        self.progress.update(self.cell_tasks[i], completed=done,
                                             info=f"epoch {done}/{cfg.epochs} (cap)")
            with self.lock:
                self._refresh()


def _duration(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.0f} min"


GRID_CONTEXT = {"allow_extra_args": True, "ignore_unknown_options": True}
Widths = Annotated[str, typer.Option("--widths", help="Comma-separated widths c")]
Noises = Annotated[str, typer.Option("--noise", help="Comma-separated noise levels p")]
Seeds = Annotated[str, typer.Option("--seeds", help="Comma-separated seeds")]
_NOT_FOR_GRID = ("quiet", "as_json", "force", "resume", "run_id", "width", "noise", "seed")


def _grid_config(ctx: typer.Context, widths: str, noise: str, seeds: str) -> Any:
    """Grid axes from our options; every other option parsed by `hw0 train`'s own parser."""
    from hw0cli.errors import Hw0UsageError
    from hw0cli.grid import GridConfig, parse_list
    train_cmd = typer.main.get_command(app).get_command(ctx, "train")  # type: ignore[attr-defined]
    try:
        sub = train_cmd.make_context("hw0 grid", list(ctx.args))
    except Exception as exc:  # click's usage errors (typer vendors click privately)
        msg = exc.format_message() if hasattr(exc, "format_message") else str(exc)
        raise Hw0UsageError(f"{msg} (grid commands take --widths, --noise, --seeds and the "
                            "options of `hw0 train`)") from None
    given = {k: v for k, v in sub.params.items()
             if getattr(sub.get_parameter_source(k), "name", "") == "COMMANDLINE"}
    bad = [k for k in given if k in _NOT_FOR_GRID]
    if bad:
        raise Hw0UsageError(f"--{bad[0].replace('_', '-').replace('as-json', 'json')} is not a "
                            "grid option (use --widths/--noise/--seeds for the axes).")
    if given.pop("no_batchnorm", False):
        given["batchnorm"] = False
    recipe = given.pop("recipe", "notebook")
    data_dir, out = given.pop("data_dir", None), given.pop("out", None)
    from hw0cli.tracking import parse_backends, require
    log, log_group = parse_backends(given.pop("log", None)), given.pop("log_group", None)
    require(log)
    ws = parse_list(widths, int, "--widths")
    ps = parse_list(noise, float, "--noise")
    for p in ps:
        if not 0 <= p <= 1:
            raise Hw0UsageError(f"--noise values are probabilities in [0, 1] (got {p}).")
    return GridConfig(widths=ws, noises=ps, seeds=parse_list(seeds, int, "--seeds"),
                      recipe=recipe, train_options=tuple(sorted(given.items())),
                      data_dir=data_dir or _default_data(), out=out or _default_out(),
                      log=log, log_group=log_group)


@grid_app.command("list", context_settings=GRID_CONTEXT)
@handle_errors
def grid_list(ctx: typer.Context, widths: Widths = "4,64", noise: Noises = "0,0.5,1",
              seeds: Seeds = "0", as_json: Json = False) -> None:
    """Print one complete `hw0 train ...` command per cell (for xargs, loops, job arrays)."""
    from hw0cli.grid import cells, grid_commands
    from hw0cli.train import run_id_for
    cfg = _grid_config(ctx, widths, noise, seeds)
    cmds = grid_commands(cfg)
    if as_json:
        _print_json([{"index": i, "run_id": run_id_for(c), "command": cmd,
                      "width": c.width, "noise": c.noise, "seed": c.seed}
                     for i, (c, cmd) in enumerate(zip(cells(cfg), cmds, strict=True))])
        return
    for cmd in cmds:
        print(cmd)


@grid_app.command("run", context_settings=GRID_CONTEXT)
@handle_errors
def grid_run(ctx: typer.Context, widths: Widths = "4,64", noise: Noises = "0,0.5,1",
             seeds: Seeds = "0",
             index: Annotated[int | None, typer.Option(help="Run only this cell (0-based)")]
             = None,
             jobs: Annotated[int, typer.Option(help="Parallel processes (capped at one per "
                                               "visible GPU on a GPU machine)")] = 1) -> None:
    """Run one cell (--index) or every unfinished cell (--jobs in parallel)."""
    from hw0cli.errors import Hw0UsageError
    from hw0cli.grid import cells, run_cells
    from hw0cli.tracking import TrackingConfig
    cfg = _grid_config(ctx, widths, noise, seeds)
    all_cells = cells(cfg)
    if index is not None:
        if not 0 <= index < len(all_cells):
            raise Hw0UsageError(f"--index {index} is outside the grid (0 to "
                                f"{len(all_cells) - 1}; see `hw0 grid list`).")
        tc = TrackingConfig(cfg.log, cfg.out, cfg.group())
        res = run_with_display(all_cells[index], out_console, tc)
        verb = "already finished" if res.status == "skipped" else "finished"
        out_console.print(f"cell {index} ({res.run_id}) {verb}: train error "
                          f"{100 * res.train_err:.2f}%, test error {100 * res.test_err:.2f}%",
                          highlight=False, soft_wrap=True)
        return
    out_console.print(f"{len(all_cells)} cells, {jobs} at a time; finished cells are skipped; "
                      f"logs in {Path(cfg.out) / 'grid_logs'}", highlight=False, soft_wrap=True)
    with GridProgress(len(all_cells)) as progress:
        results = run_cells(cfg, jobs, on_done=progress.done, on_start=progress.start)
    failed = [r for r in results if r.returncode != 0]
    if failed:
        raise Hw0Error(f"{len(failed)} of {len(results)} cells failed: "
                       f"{', '.join(str(r.index) for r in failed)}. See their logs; "
                       "`hw0 grid status` shows each cell.")


@grid_app.command("status", context_settings=GRID_CONTEXT)
@handle_errors
def grid_status_cmd(ctx: typer.Context, widths: Widths = "4,64", noise: Noises = "0,0.5,1",
                    seeds: Seeds = "0", as_json: Json = False) -> None:
    """Each cell: done / running / incomplete / failed / missing, with its final errors."""
    from hw0cli.grid import grid_status
    states = grid_status(_grid_config(ctx, widths, noise, seeds))
    if as_json:
        _print_json([{"index": s.index, "run_id": s.run_id, "state": s.state,
                      "width": s.config.width, "noise": s.config.noise,
                      "seed": s.config.seed, "epochs": s.epochs_done,
                      "train_err": s.train_err, "test_err": s.test_err,
                      "seconds": s.seconds, "note": s.note} for s in states])
        return
    colors = {"done": "green", "running": "cyan", "incomplete": "yellow", "missing": "dim",
              "failed": "red", "corrupt": "red", "mismatch": "red"}
    rows = [[str(s.index), str(s.config.width), f"{s.config.noise:g}", str(s.config.seed),
             f"[{colors[s.state]}]{s.state}[/]", str(s.epochs_done), _fmt(s.train_err, True),
             _fmt(s.test_err, True), f"{s.seconds:.0f} s", s.note] for s in states]
    out_console.print(_compact_table(
        "Grid status (c: width, p: label noise)",
        ["#", "c", "p", "seed", "state", "epochs", "train err", "test err", "time", "note"],
        rows, left=("state", "note"), fold=("note",)))
    counts = {k: sum(s.state == k for s in states) for k in colors}
    out_console.print(", ".join(f"{v} {k}" for k, v in counts.items() if v), highlight=False)


@grid_app.command("report", context_settings=GRID_CONTEXT)
@handle_errors
def grid_report_cmd(ctx: typer.Context, widths: Widths = "4,64", noise: Noises = "0,0.5,1",
                    seeds: Seeds = "0", as_json: Json = False) -> None:
    """Table of final train/test error per (width, p) and the plots, from the run files."""
    from hw0cli.grid import grid_report
    cfg = _grid_config(ctx, widths, noise, seeds)
    rep = grid_report(cfg, plot_dir=Path(cfg.out) / "plots")
    if as_json:
        _print_json({"rows": [r.__dict__ for r in rep.rows], "plots": [str(p) for p in
                                                                        rep.plots]})
        return
    t = Table(title="Random labels: final errors (mean +- std over seeds)")
    for c in ("width", "p", "seeds", "train err", "test err", "epochs", "time (s)"):
        t.add_column(c, justify="right")
    for r in rep.rows:
        if not r.seeds:
            t.add_row(str(r.width), f"{r.noise:g}", "0", "-", "-", "-", f"({r.missing} missing)")
            continue
        tr, te = r.stat("train_err"), r.stat("test_err")
        sd = len(r.seeds) > 1
        t.add_row(str(r.width), f"{r.noise:g}", str(len(r.seeds)),
                  f"{100 * tr[0]:.2f}%" + (f" +- {100 * tr[1]:.2f}" if sd else ""),
                  f"{100 * te[0]:.2f}%" + (f" +- {100 * te[1]:.2f}" if sd else ""),
                  f"{np.mean(r.epochs):.0f}", f"{np.mean(r.seconds):.0f}")
    out_console.print(t)
    for p in rep.plots:
        out_console.print(f"plot: {p}", highlight=False)


# ---------------------------------------------------------------------------------------------
# report


@app.command()
@handle_errors
def report(
    out: OutDir = None,
    report_dir: Annotated[Path | None, typer.Option(
        "--report-dir", help="Where to write [default: <out>/report]")] = None,
    formats: Annotated[str, typer.Option("--format", help="pdf, md or both")] = "pdf,md",
) -> None:
    """Write the hand-in: report.pdf and report.md (with PNGs) from everything in --out."""
    from hw0cli.report import ReportConfig, run_report
    res = run_report(ReportConfig(out=out or _default_out(), report_dir=report_dir,
                                  formats=tuple(f.strip() for f in formats.split(","))))
    _print_report(res)


def _print_report(res: Any) -> None:
    for title, present in res.sections.items():
        mark = "[green]results[/]" if present else "[yellow]missing (says which command)[/]"
        out_console.print(f"  {title}: {mark}", highlight=False)
    if res.pdf:
        out_console.print(f"PDF: {res.pdf} ({res.pages} pages)", highlight=False)
    if res.md:
        out_console.print(f"Markdown: {res.md} ({len(res.figures)} figures)", highlight=False)


@app.command("all")
@handle_errors
def all_cmd(
    preset: Annotated[str, typer.Option(help="quick (laptop CPU, reduced: see README) | full "
                                        "(the assignment's settings, for a GPU)")] = "quick",
    device: Annotated[str, typer.Option(help="auto | cuda | cpu")] = "auto",
    log: Log = None,
    data_dir: DataDir = None,
    out: OutDir = None,
) -> None:
    """Run every experiment of the homework in order (resumably), then write the report."""
    import time

    from hw0cli.pipeline import PRESETS, AllConfig, run_all
    from hw0cli.tracking import parse_backends, require
    backends = parse_backends(log)
    require(backends)
    cfg = AllConfig(preset=preset, data_dir=data_dir or _default_data(),
                    out=out or _default_out(), device=device, log=backends)
    if preset in PRESETS:
        out_console.print(f"[bold]hw0 all --preset {preset}[/]: {PRESETS[preset]['description']}"
                          f"; results in {cfg.out}", highlight=False)
        out_console.print("settings: " + json.dumps({k: v for k, v in PRESETS[preset].items()
                                                     if k != "description"}, default=list),
                          highlight=False)

    ran: list[float] = []  # seconds of the steps that did work, for the ETA
    started = time.monotonic()

    def step(i: int, n: int, title: str) -> None:
        eta = f", ETA ~{_duration(float(np.mean(ran)) * (n - i))}" if ran else ""
        out_console.rule(f"[{i + 1}/{n}] {title}")
        out_console.print(f"{i} done, 1 running, {n - i - 1} left; "
                          f"{_duration(time.monotonic() - started)} so far{eta}",
                          highlight=False, soft_wrap=True, style="dim")

    def result(r: Any) -> None:
        if r.status == "done":
            ran.append(r.seconds)
        color = {"done": "green", "skipped": "cyan", "failed": "red"}[r.status]
        out_console.print(f"[{color}]{r.status}[/] in {r.seconds:.0f} s: {r.detail}",
                          highlight=False)

    res = run_all(cfg, on_step=step, on_result=result,
                  reporter_factory=lambda: RichReporter(out_console))
    out_console.rule("report")
    _print_report(res.report)
    failed = [s for s in res.steps if s.status == "failed"]
    out_console.print(f"total {res.seconds:.0f} s; {sum(s.status == 'done' for s in res.steps)}"
                      f" steps run, {sum(s.status == 'skipped' for s in res.steps)} already "
                      f"done, {len(failed)} failed", highlight=False)
    if failed:
        raise Hw0Error(f"{len(failed)} step(s) failed: " + "; ".join(
            f"{s.title}: {s.detail}" for s in failed) + " Fix the cause and run `hw0 all` "
            "again: finished steps are skipped.")


def main() -> None:
    app()
