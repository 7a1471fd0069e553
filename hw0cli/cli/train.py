"""`hw0 train` and `hw0 runs`: train one run; list runs, print a history, sync to trackers."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from hw0cli.cli.common import (
    Hw0Typer,
    Json,
    Log,
    LogGroup,
    OutDir,
    compact_table,
    err_console,
    fmt,
    mode_text,
    out_console,
    out_or_default,
    print_json,
    say,
)
from hw0cli.cli.declared import with_options
from hw0cli.cli.display import run_with_display
from hw0cli.errors import Hw0UsageError
from hw0cli.train_options import TrainConfig


@with_options(TrainConfig)
def train(
    options: dict[str, Any],
    quiet: Annotated[bool, typer.Option(help="No progress output")] = False,
    log: Log = None,
    log_group: LogGroup = None,
    as_json: Json = False,
) -> None:
    """Train Myrtle5 on CIFAR-10 (defaults: the course notebook's recipe)."""
    from hw0cli.tracking import TrackingConfig, parse_backends, require
    from hw0cli.train import make_config
    cfg = make_config(options.pop("recipe", "notebook"), **options)
    tc = TrackingConfig(parse_backends(log), cfg.out, log_group)
    require(tc.backends)
    console = err_console if as_json else out_console
    result = run_with_display(cfg, None if quiet else console, tc)
    if as_json:
        print_json(result.to_json())
    elif not quiet:
        _print_train(result, bool(tc), console)


def _print_train(result: Any, tracked: bool, console: Any) -> None:
    if result.status == "skipped":
        say(f"run [bold]{result.run_id}[/] already finished ({result.path}); pass --force to "
            "train it again" + (", or `hw0 runs sync` to log it." if tracked else "."),
            console, wrap=False)
    views = result.test_acc_views
    flip = (f", vertically flipped {100 * views['vflip']:.2f}%" if "vflip" in views else "")
    say(f"[bold]done[/]: test accuracy {100 * (1 - result.test_err):.2f}%{flip}; train error "
        f"{100 * result.train_err:.2f}%; {result.seconds:.1f} s of training "
        f"({result.images_per_s:,.0f} images/s, {result.device}, {result.precision}, "
        f"{mode_text(result.compile_mode)}) + {result.one_time_s:.1f} s one-time (compile, "
        f"autotune, capture). Saved {result.path}", console, wrap=False)
    if result.test_err_tta is not None and result.tta_inference_s is not None:
        say(f"with TTA: test accuracy {100 * (1 - result.test_err_tta):.2f}% in "
            f"{result.seconds + result.tta_inference_s:.1f} s (training + "
            f"{result.tta_inference_s:.2f} s of TTA inference)", console, wrap=False)


# ---------------------------------------------------------------------------------------------
# runs

runs_app = Hw0Typer(help="List the training runs; `history`, `sync` for one or more.")


@runs_app.callback(invoke_without_command=True)
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
    from hw0cli.runs import list_runs, rank_by_views
    out = out_or_default(out)
    found = list_runs(out)
    if views:
        found = rank_by_views(found)
    if as_json:
        print_json([r.to_json() for r in found])
    elif not found:
        out_console.print(f"No runs under {out}/runs yet. Start one with `hw0 train`.")
    else:
        out_console.print(_views_table(out, found) if views else _runs_table(out, found))


# short headers: both tables fit 80 columns, so no id or number is cut
def _runs_table(out: Path, found: list[Any]) -> Any:
    rows = [[r.run_id, r.status, fmt(r.config.get("width")), fmt(r.config.get("noise")),
             str(r.epochs_done), fmt(r.train_err, True), fmt(r.test_err, True),
             f"{r.seconds:.0f} s"] for r in found]
    return compact_table(
        f"Runs in {out}/runs (c: width, p: label noise; train err on the labels used, last "
        "epoch)", ["id", "status", "c", "p", "epochs", "train err", "test err", "time"], rows,
        left=("id", "status"))


def _views_table(out: Path, found: list[Any]) -> Any:
    """The robustness ranking: test accuracy on both views, and how the run trained."""
    from hw0cli.runs import trained_with, view_robustness
    rows = [[r.run_id, fmt(r.config.get("width")), fmt(r.test_acc_views.get("original"), True),
             fmt(r.test_acc_views.get("vflip"), True),
             fmt(view_robustness(r) if r.test_acc_views else None, True),
             trained_with(r.config)] for r in found]
    return compact_table(
        f"Runs in {out}/runs by min(original, upside-down) test accuracy (c: width)",
        ["id", "c", "original", "vflip", "min", "trained with"], rows,
        left=("id", "trained with"), fold=("trained with",))


RunsArg = Annotated[list[str] | None, typer.Argument(
    help="Run ids or .h5 files", show_default="every run under --out")]


@runs_app.command("history")
def runs_history(
    run: Annotated[str | None, typer.Argument(
        help="Run id or .h5 file", show_default="the most recently finished run")] = None,
    csv: Annotated[bool, typer.Option("--csv", help="CSV with a header (the default)")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per epoch, as a "
                                          "list")] = False,
    out: OutDir = None,
) -> None:
    """Print a run's per-epoch history (CSV or JSON) for pandas, spreadsheets, plotting."""
    from hw0cli.runs import history_table, resolve_run
    if csv and as_json:
        raise Hw0UsageError("Choose one of --csv and --json.")
    table = history_table(resolve_run(out_or_default(out), run))
    if as_json:
        print_json(table.rows())
    else:
        print(table.to_csv(), end="")


@runs_app.command("sync")
def runs_sync(
    runs: RunsArg = None,
    to: Annotated[list[str] | None, typer.Option(
        "--to", help="wandb and/or tensorboard (repeatable)", show_default="none")] = None,
    log_group: LogGroup = None,
    out: OutDir = None,
) -> None:
    """Replay stored runs' histories into wandb or TensorBoard (runs made without --log)."""
    from hw0cli.runs import list_runs, resolve_run
    from hw0cli.tracking import TrackingConfig, parse_backends, require, sync_run
    out = out_or_default(out)
    backends = parse_backends(to)
    if not backends:
        raise Hw0UsageError("Say where to sync with --to wandb or --to tensorboard.")
    require(backends)
    paths = [resolve_run(out, r) for r in runs] if runs else [r.path for r in list_runs(out)]
    if not paths:
        raise Hw0UsageError(f"No runs under {out}/runs to sync. Train one with `hw0 train`.")
    tc = TrackingConfig(backends, out, log_group)
    for p in paths:
        say(f"synced {p.stem}: {sync_run(tc, p)} epochs to {', '.join(backends)}", wrap=False)
    if "tensorboard" in backends:
        say(f"view: tensorboard --logdir {Path(out) / 'tensorboard'}", wrap=False)
