"""`hw0 grid`: the width x label-noise grid (Problem 2): list, run, status, report, slurm."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from hw0cli.batch.slurm import SLURM_TIME
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
    compact_table,
    data_dir_or_default,
    duration,
    fmt,
    out_or_default,
    print_json,
    say,
    show,
    simple_table,
)
from hw0cli.cli.declared import given_options
from hw0cli.errors import Hw0Error, Hw0UsageError

grid_app = Hw0Typer(help="The width x label-noise grid (Problem 2): list, run, status, "
                    "report, slurm. Each takes --widths, --noise, --seeds and any `hw0 train` "
                    "option, so one option string describes one grid everywhere.",
                    no_args_is_help=True)
Widths = Annotated[str, typer.Option("--widths", help="Comma-separated widths c")]
Noises = Annotated[str, typer.Option("--noise", help="Comma-separated noise levels p")]
Seeds = Annotated[str, typer.Option("--seeds", help="Comma-separated seeds")]
def _grid_config(ctx: typer.Context, widths: str, noise: str, seeds: str) -> Any:
    """Grid axes from our options; every other option as `hw0 train` declares it."""
    from hw0cli.batch.grid import GridConfig, check_train_options, parse_list
    from hw0cli.tracking import parse_backends, require
    from hw0cli.train import TrainConfig
    sub = train_context(ctx)
    source = sub.get_parameter_source
    for k in SINGLE_RUN:
        if getattr(source(k), "name", "") == "COMMANDLINE":
            raise Hw0UsageError(f"--{k.removeprefix('as_')} is not a grid option.")
    given = given_options(TrainConfig, sub.params, source)
    check_train_options(given)
    recipe = given.pop("recipe", "notebook")
    data_dir, out = given.pop("data_dir", None), given.pop("out", None)
    log = parse_backends(sub.params.get("log"))
    require(log)
    return GridConfig(widths=parse_list(widths, int, "--widths"),
                      noises=parse_list(noise, float, "--noise"),
                      seeds=parse_list(seeds, int, "--seeds"), recipe=recipe,
                      train_options=tuple(sorted(given.items())),
                      data_dir=data_dir_or_default(data_dir), out=out_or_default(out),
                      log=log, log_group=sub.params.get("log_group"))


@grid_app.command("list", context_settings=GRID_CONTEXT,
                  epilog=TAKES_TRAIN_OPTIONS)
def grid_list(ctx: typer.Context, widths: Widths = "4,64", noise: Noises = "0,0.5,1",
              seeds: Seeds = "0", as_json: Json = False, null: Null = False) -> None:
    """Print one complete `hw0 train ...` command per cell (for xargs, loops, job arrays)."""
    from hw0cli.batch.grid import cells, grid_commands
    from hw0cli.train import run_id_for
    cfg = _grid_config(ctx, widths, noise, seeds)
    cmds = grid_commands(cfg)
    if as_json:
        print_json([{"index": i, "run_id": run_id_for(c), "command": cmd,
                     "width": c.width, "noise": c.noise, "seed": c.seed}
                    for i, (c, cmd) in enumerate(zip(cells(cfg), cmds, strict=True))])
        return
    print_commands(cmds, null)


@grid_app.command("run", context_settings=GRID_CONTEXT,
                  epilog=TAKES_TRAIN_OPTIONS)
def grid_run(ctx: typer.Context, widths: Widths = "4,64", noise: Noises = "0,0.5,1",
             seeds: Seeds = "0",
             index: Annotated[int | None, typer.Option(
                 help="Run only this cell (0-based)", show_default="every cell")] = None,
             jobs: Annotated[int, typer.Option(help="Parallel processes (capped at one per "
                                               "visible GPU on a GPU machine)")] = 1) -> None:
    """Run one cell (--index) or every unfinished cell (--jobs in parallel)."""
    from hw0cli.batch.grid import cell_at, run_cells
    cfg = _grid_config(ctx, widths, noise, seeds)
    if index is not None:
        _run_one(cfg, index, cell_at(cfg, index))
        return
    from hw0cli.batch.grid import cells
    from hw0cli.cli.display import GridProgress
    n = len(cells(cfg))
    say(f"{n} cells, {jobs} at a time; finished cells are skipped; logs in "
        f"{Path(cfg.out) / 'grid_logs'}", wrap=False)
    with GridProgress(n) as progress:
        results = run_cells(cfg, jobs, on_done=progress.done, on_start=progress.start)
    say_elsewhere([r.index for r in results if r.elsewhere], len(results), "grid")
    failed = [r for r in results if r.failed]
    if failed:
        raise Hw0Error(f"{len(failed)} of {len(results)} cells failed: "
                       f"{', '.join(str(r.index) for r in failed)}. See their logs; "
                       "`hw0 grid status` shows each cell.")


def _run_one(cfg: Any, index: int, cell: Any) -> None:
    from hw0cli.cli.common import out_console
    from hw0cli.cli.display import run_with_display
    from hw0cli.tracking import TrackingConfig
    res = run_with_display(cell, out_console, TrackingConfig(cfg.log, cfg.out, cfg.group()))
    verb = "already finished" if res.status == "skipped" else "finished"
    say(f"cell {index} ({res.run_id}) {verb}: full-train err {fmt(res.train_eval_err, True)},"
        f" test err {fmt(res.test_err, True)}", wrap=False)


@grid_app.command("status", context_settings=GRID_CONTEXT,
                  epilog=TAKES_TRAIN_OPTIONS)
def grid_status_cmd(ctx: typer.Context, widths: Widths = "4,64", noise: Noises = "0,0.5,1",
                    seeds: Seeds = "0", as_json: Json = False) -> None:
    """Each cell: done / running / incomplete / failed / missing, with its final errors."""
    from hw0cli.batch.grid import grid_status
    states = grid_status(_grid_config(ctx, widths, noise, seeds))
    if as_json:
        print_json([s.to_json() for s in states])
        return
    rows = [[str(s.index), str(s.config.width), f"{s.config.noise:g}", str(s.config.seed),
             f"[{STATE_COLORS[s.state]}]{s.state}[/]", str(s.epochs_done),
             fmt(s.train_eval_err, True), fmt(s.test_err, True), duration(s.seconds), s.note]
            for s in states]
    show(compact_table(
        "Grid status (c: width, p: label noise)",
        ["#", "c", "p", "seed", "state", "epochs", "full-train err", "test err", "time", "note"],
        rows, left=("state", "note"), fold=("note",)))
    counts = {k: sum(s.state == k for s in states) for k in STATE_COLORS}
    say(", ".join(f"{v} {k}" for k, v in counts.items() if v))
    missing_hint([s.config for s in states], [s.state for s in states], "grid")


@grid_app.command("report", context_settings=GRID_CONTEXT,
                  epilog=TAKES_TRAIN_OPTIONS)
def grid_report_cmd(ctx: typer.Context, widths: Widths = "4,64", noise: Noises = "0,0.5,1",
                    seeds: Seeds = "0", as_json: Json = False) -> None:
    """Table of final train/test error per (width, p) and the plots, from the run files."""
    from hw0cli.batch.grid import grid_report
    cfg = _grid_config(ctx, widths, noise, seeds)
    rep = grid_report(cfg, plot_dir=Path(cfg.out) / "plots")
    if as_json:
        print_json({"rows": [r.__dict__ for r in rep.rows], "plots": [str(p) for p in
                                                                       rep.plots]})
        return
    show(simple_table("Random labels: final errors (mean +- std over seeds)",
                      ("width", "p", "seeds", "full-train err", "test err", "epochs", "time (s)"),
                      [_report_row(r) for r in rep.rows]))
    for p in rep.plots:
        say(f"plot: {p}")


def _report_row(r: Any) -> list[str]:
    if not r.seeds:
        return [str(r.width), f"{r.noise:g}", "0", "-", "-", "-", f"({r.missing} missing)"]
    spread = len(r.seeds) > 1

    def err(key: str) -> str:
        mean, sd = r.stat(key)
        return f"{100 * mean:.2f}%" + (f" +- {100 * sd:.2f}" if spread else "")
    return [str(r.width), f"{r.noise:g}", str(len(r.seeds)), err("train_err"),
            err("test_err"), f"{r.stat('epochs')[0]:.0f}", f"{r.stat('seconds')[0]:.0f}"]


@grid_app.command("slurm", context_settings=GRID_CONTEXT,
                  epilog=TAKES_TRAIN_OPTIONS)
def grid_slurm(ctx: typer.Context, widths: Widths = "4,64", noise: Noises = "0,0.5,1",
               seeds: Seeds = "0",
               gpus: Annotated[int, typer.Option(help="GPUs per task (0: none)")] = 0,
               cpus_per_task: Annotated[int, typer.Option(help="CPUs per task")] = 2,
               time: Annotated[str, typer.Option(help="Time limit per task")] = SLURM_TIME,
               partition: Annotated[str | None, typer.Option(help="Slurm partition")] = None,
               parallel: Annotated[int | None, typer.Option(
                   help="At most this many tasks at once")] = None,
               submit: Annotated[bool, typer.Option(help="Also sbatch it")] = False) -> None:
    """Write (and with --submit, submit) an sbatch job array with one task per cell."""
    from hw0cli.batch.grid import cells, log_args, log_group
    from hw0cli.batch.slurm import SlurmOptions
    from hw0cli.batch.sweep import options_args
    cfg = _grid_config(ctx, widths, noise, seeds)
    args = ["--widths", widths, "--noise", noise, "--seeds", seeds,
            *options_args(cfg.recipe, cfg.train_options, cfg.data_dir, cfg.out),
            *log_args(cfg)]
    label = log_group(cfg)
    write_and_submit("grid", args, len(cells(cfg)), SlurmOptions(
        gpus, cpus_per_task, time, partition, parallel, f"hw0-{label}"), Path(cfg.out), label,
        submit)
