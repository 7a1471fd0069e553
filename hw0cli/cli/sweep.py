"""`hw0 sweep`: runs over the values of any `hw0 train` options: list, run, status, report,
slurm."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from hw0cli.batch.slurm import SLURM_TIME
from hw0cli.choices import SweepPreset
from hw0cli.cli.batch import (
    GRID_CONTEXT,
    SINGLE_RUN,
    STATE_COLORS,
    TAKES_TRAIN_OPTIONS,
    Null,
    missing_hint,
    print_commands,
    say_elsewhere,
    train_context,
    write_and_submit,
)
from hw0cli.cli.common import (
    Hw0Typer,
    Json,
    choice,
    compact_table,
    data_dir_or_default,
    duration,
    fmt,
    out_or_default,
    print_json,
    say,
    show,
)
from hw0cli.cli.declared import given_options
from hw0cli.errors import Hw0Error, Hw0UsageError

sweep_app = Hw0Typer(help="Training runs over the values of any `hw0 train` options: list, "
                     "run, status, report, slurm. Each takes --axis NAME=V1,V2,... (repeatable; "
                     "the cells are the product of the axes), or a --preset, and any `hw0 "
                     "train` option for the settings every cell shares.", no_args_is_help=True)

Axes = Annotated[list[str] | None, typer.Option(
    "--axis", help="An option and the values to try, e.g. lr=0.01,0.1 or batchnorm=on,off "
    "(repeatable)", show_default="none")]
PresetOpt = Annotated[str | None, choice(
    SweepPreset, "--preset", help="A named sweep (random-labels: Problem 2's grid); --axis "
    "and train options adjust it", show_default="none")]
Name = Annotated[str | None, typer.Option(
    "--name", help="The sweep's name in the report and the logs", show_default="the preset, "
    "or sweep-<hash of the definition>")]
OneAtATime = Annotated[bool, typer.Option(
    "--one-at-a-time", help="Vary each axis alone around the base settings instead of "
    "taking the product")]
SWEEP_STATES = {**STATE_COLORS, "diverged": "magenta"}


def _sweep_config(ctx: typer.Context, axis: list[str] | None, preset: str | None,
                  name: str | None, one_at_a_time: bool) -> Any:
    """The sweep from our options; every other option as `hw0 train` declares it."""
    from hw0cli.batch.presets import with_preset
    from hw0cli.batch.sweep import SweepConfig, parse_axis
    from hw0cli.tracking import parse_backends, require
    from hw0cli.train import TrainConfig
    sub = train_context(ctx, "sweep")
    source = sub.get_parameter_source
    for k in SINGLE_RUN:
        if getattr(source(k), "name", "") == "COMMANDLINE":
            raise Hw0UsageError(f"--{k.removeprefix('as_')} is not a sweep option.")
    given = given_options(TrainConfig, sub.params, source)
    recipe = given.pop("recipe", "notebook")
    data_dir, out = given.pop("data_dir", None), given.pop("out", None)
    log = parse_backends(sub.params.get("log"))
    require(log)
    cfg = SweepConfig(axes=tuple(parse_axis(a) for a in axis or ()),
                      one_at_a_time=one_at_a_time, recipe=recipe,
                      train_options=tuple(sorted(given.items())), name=name,
                      data_dir=data_dir_or_default(data_dir), out=out_or_default(out),
                      log=log, log_group=sub.params.get("log_group"))
    return with_preset(cfg, preset) if preset else cfg


@sweep_app.command("list", context_settings=GRID_CONTEXT,
                   epilog=TAKES_TRAIN_OPTIONS)
def sweep_list(ctx: typer.Context, axis: Axes = None, preset: PresetOpt = None,
               name: Name = None, one_at_a_time: OneAtATime = False,
               as_json: Json = False, null: Null = False) -> None:
    """Print one complete `hw0 train ...` command per cell (for xargs, loops, job arrays)."""
    from hw0cli.batch.sweep import cells, record, sweep_commands
    from hw0cli.train import run_id_for
    cfg = _sweep_config(ctx, axis, preset, name, one_at_a_time)
    cmds = sweep_commands(cfg)
    record(cfg)
    if as_json:
        print_json([{"index": c.index, "run_id": run_id_for(c.config), "command": cmd,
                     "point": dict(c.point)} for c, cmd in zip(cells(cfg), cmds, strict=True)])
        return
    print_commands(cmds, null)


@sweep_app.command("run", context_settings=GRID_CONTEXT,
                   epilog=TAKES_TRAIN_OPTIONS)
def sweep_run(ctx: typer.Context, axis: Axes = None, preset: PresetOpt = None,
              name: Name = None, one_at_a_time: OneAtATime = False,
              index: Annotated[int | None, typer.Option(
                  help="Run only this cell (0-based)", show_default="every cell")] = None,
              jobs: Annotated[int, typer.Option(help="Parallel processes (capped at one per "
                                                "visible GPU on a GPU machine)")] = 1) -> None:
    """Run one cell (--index) or every unfinished cell (--jobs in parallel); NaN loss: diverged."""
    from hw0cli.batch.sweep import (
        FINAL,
        cell_at,
        cells,
        failure_message,
        record,
        run_sweep,
        sweep_status,
    )
    from hw0cli.cli.display import GridProgress
    cfg = _sweep_config(ctx, axis, preset, name, one_at_a_time)
    if index is not None:
        _run_one(cfg, cell_at(cfg, index))
        return
    n = len(cells(cfg))
    record(cfg)
    left = sum(s.state not in FINAL for s in sweep_status(cfg))
    say(f"sweep {cfg.label()}: {n} cells, {n - left} finished or diverged already (skipped), "
        f"{left} to run, {jobs} at a time; logs in {Path(cfg.out) / 'grid_logs'}", wrap=False)
    with GridProgress(left) as progress:
        res = run_sweep(cfg, jobs, on_done=progress.done, on_start=progress.start)
    say(f"{len(res.ran)} cells ran ({len(res.diverged)} diverged), {len(res.skipped)} were "
        "already finished or diverged", wrap=False)
    say_elsewhere(res.elsewhere, n, "sweep")
    if res.failed:
        raise Hw0Error(failure_message(res))


def _run_one(cfg: Any, cell: Any) -> None:
    from hw0cli.batch.sweep import cell_state, record
    from hw0cli.cli.common import out_console
    from hw0cli.cli.display import run_with_display
    from hw0cli.tracking import TrackingConfig
    record(cfg)
    before = cell_state(cell)
    if before.state in ("done", "diverged"):
        say(f"cell {cell.index} ({before.run_id}) already {before.state}", wrap=False)
        return
    try:
        run_with_display(cell.config, out_console, TrackingConfig(cfg.log, cfg.out,
                                                                  cfg.group()))
    except Hw0Error:
        if cell_state(cell).state != "diverged":
            raise
    after = cell_state(cell)
    say(f"cell {cell.index} ({after.run_id}) {after.state}: full-train err "
        f"{fmt(after.train_eval_err, True)}, test err {fmt(after.test_err, True)}", wrap=False)


@sweep_app.command("status", context_settings=GRID_CONTEXT,
                   epilog=TAKES_TRAIN_OPTIONS)
def sweep_status_cmd(ctx: typer.Context, axis: Axes = None, preset: PresetOpt = None,
                     name: Name = None, one_at_a_time: OneAtATime = False,
                     as_json: Json = False) -> None:
    """Each cell: done / diverged / running / incomplete / missing, with its final errors."""
    from hw0cli.batch.sweep import sweep_status, value_label
    cfg = _sweep_config(ctx, axis, preset, name, one_at_a_time)
    states = sweep_status(cfg)
    if as_json:
        print_json([s.to_json() for s in states])
        return
    axes = [a.name.replace("_", " ") for a in cfg.axes]
    rows = [[str(s.cell.index), *(value_label(v) for _, v in s.cell.point),
             f"[{SWEEP_STATES[s.state]}]{s.state}[/]", str(s.epochs_done),
             fmt(s.train_eval_err, True), fmt(s.test_err, True), duration(s.seconds), s.note]
            for s in states]
    show(compact_table(f"Sweep {cfg.label()}", ["#", *axes, "state", "epochs", "full-train err",
                                                "test err", "time", "note"],
                       rows, left=("state", "note"), fold=("note",)))
    counts = {k: sum(s.state == k for s in states) for k in SWEEP_STATES}
    say(", ".join(f"{v} {k}" for k, v in counts.items() if v))
    missing_hint([s.cell.config for s in states], [s.state for s in states], "sweep")


@sweep_app.command("report", context_settings=GRID_CONTEXT,
                   epilog=TAKES_TRAIN_OPTIONS)
def sweep_report_cmd(ctx: typer.Context, axis: Axes = None, preset: PresetOpt = None,
                     name: Name = None, one_at_a_time: OneAtATime = False,
                     as_json: Json = False) -> None:
    """What changes with each axis: a table, one measured sentence per axis, the plots."""
    from hw0cli.report import sweep_summary
    cfg = _sweep_config(ctx, axis, preset, name, one_at_a_time)
    summary = sweep_summary(cfg, plot_dir=Path(cfg.out) / "plots")
    if as_json:
        print_json(summary.to_json())
        return
    show(compact_table(f"Sweep {cfg.label()}: final errors (mean +- std over seeds)",
                       summary.header(), summary.table(), left=("state",)))
    for sentence in summary.sentences:
        say(sentence)
    for p in summary.plots:
        say(f"plot: {p}", wrap=False)


@sweep_app.command("slurm", context_settings=GRID_CONTEXT,
                   epilog=TAKES_TRAIN_OPTIONS)
def sweep_slurm(ctx: typer.Context, axis: Axes = None, preset: PresetOpt = None,
                name: Name = None, one_at_a_time: OneAtATime = False,
                gpus: Annotated[int, typer.Option(help="GPUs per task (0: none)")] = 0,
                cpus_per_task: Annotated[int, typer.Option(help="CPUs per task")] = 2,
                time: Annotated[str, typer.Option(help="Time limit per task")] = SLURM_TIME,
                partition: Annotated[str | None, typer.Option(help="Slurm partition")] = None,
                parallel: Annotated[int | None, typer.Option(
                    help="At most this many tasks at once")] = None,
                submit: Annotated[bool, typer.Option(help="Also sbatch it")] = False) -> None:
    """Write (and with --submit, submit) an sbatch job array with one task per cell."""
    from hw0cli.batch.slurm import SlurmOptions
    from hw0cli.batch.sweep import cells, record, sweep_args
    cfg = _sweep_config(ctx, axis, preset, name, one_at_a_time)
    opts = SlurmOptions(gpus, cpus_per_task, time, partition, parallel, f"hw0-{cfg.label()}")
    record(cfg)
    write_and_submit("sweep", sweep_args(cfg), len(cells(cfg)), opts, Path(cfg.out),
                     cfg.label(), submit)


