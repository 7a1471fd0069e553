"""`hw0 train` and `hw0 runs`: train one run; list runs, print a history, sync to trackers."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from hw0cli.cli.common import (
    OUTPUT,
    Hw0Typer,
    Json,
    ListingTable,
    Log,
    LogGroup,
    OutDir,
    duration,
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
from hw0cli.train import TrainConfig


@with_options(TrainConfig)
def train(
    options: dict[str, Any],
    quiet: Annotated[bool, typer.Option("--quiet", help="No progress output",
                                        rich_help_panel=OUTPUT)] = False,
    log: Log = None,
    log_group: LogGroup = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as one JSON "
                                          "object.", rich_help_panel=OUTPUT)] = False,
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
    from hw0cli.quantities import FULL_TRAIN, TRAIN_RUNNING, label, tta_views
    views = result.test_acc_views
    flip = (f", vertically flipped {100 * views['vflip']:.2f}%" if "vflip" in views else "")
    processes = (f"; summed over the {result.processes} processes that trained it, each "
                 "compiles" if result.processes > 1 else "")
    say(f"[bold]done[/]: test accuracy {100 * (1 - result.test_err):.2f}%{flip} (training's "
        f"final check: torch, {result.precision}); {label(FULL_TRAIN)} "
        f"{fmt(result.train_eval_err, True)}, {label(TRAIN_RUNNING)} "
        f"{fmt(result.train_err, True)}; {result.seconds:.1f} s of training "
        f"({result.images_per_s:,.0f} images/s, {result.device}, {result.precision}, "
        f"{mode_text(result.compile_mode)}) + {result.one_time_s:.1f} s one-time (compile, "
        f"autotune, capture{processes}). Saved {result.path}", console, wrap=False)
    if result.test_err_tta is not None and result.tta_inference_s is not None:
        acc = 100 * (1 - result.test_err_tta)
        say(f"with {tta_views(result.tta_shift)}: test accuracy {acc:.2f}% in "
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
        out_console.print(_views_table(out, found) if views else _runs_table(out, found),
                          crop=False)  # a narrow terminal wraps a row; nothing is cut


# short headers: both tables fit 80 columns, so no id or number is cut; what distinguishes a
# run (settings, sweep) and what measured its figures go on an indented line below it
def _runs_table(out: Path, found: list[Any]) -> Any:
    from hw0cli.quantities import FULL_TRAIN, label
    owners = _sweep_owners(out)
    rows = [[r.run_id, r.status, fmt(r.config.get("width")), fmt(r.config.get("noise")),
             str(r.epochs_done), fmt(r.full_train_err, True), fmt(r.test_err, True),
             duration(r.trained_s)] for r in found]
    details = [_details(r, owners.get(r.run_id), ("original",)) for r in found]
    return ListingTable(
        f"Runs in {out}/runs (c: width, p: label noise; {label(FULL_TRAIN)}: eval mode, "
        "labels trained on, last measured; time: training, epochs cut short included)",
        ["id", "status", "c", "p", "epochs", "full-train\nerr", "test err", "time"],
        rows, details, left=("id", "status"))


def _views_table(out: Path, found: list[Any]) -> Any:
    """The robustness ranking: test accuracy on both views, and how the run trained."""
    from hw0cli.runs import trained_with, view_robustness
    owners = _sweep_owners(out)
    rows, details = [], []
    for r in found:
        f = r.figures
        rows.append([r.run_id, fmt(r.config.get("width")),
                     fmt(f["original"].accuracy if "original" in f else None, True),
                     fmt(f["vflip"].accuracy if "vflip" in f else None, True),
                     fmt(view_robustness(r) if f else None, True)])
        details.append(f"trained with: {trained_with(r.config)}; "
                       + _details(r, owners.get(r.run_id), ("original", "vflip")))
    return ListingTable(
        f"Runs in {out}/runs by min(original, upside-down) test accuracy (c: width)",
        ["id", "c", "original", "vflip", "min"], rows, details, left=("id",))


def _sweep_owners(out: Path) -> dict[str, str]:
    from hw0cli.report import sweep_memberships
    return sweep_memberships(out)


def _details(r: Any, sweep: str | None, views: tuple[str, ...]) -> str:
    """What distinguishes the run (its sweep, its settings off the recipe's defaults) and what
    measured the accuracies shown."""
    from hw0cli.train.settings import distinct_settings
    parts = [f"sweep {sweep}"] if sweep else []
    settings = distinct_settings(r.config)
    parts.append(" ".join(settings) if settings else "the recipe's defaults")
    shown = {v: f for v, f in r.figures.items() if v in views}
    if shown:
        sources = dict.fromkeys(f.source for f in shown.values())
        parts.append("accuracy by " + "; ".join(sources))
    return "; ".join(parts)


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
