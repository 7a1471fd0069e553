"""Sweeps: training runs over the values of any `hw0 train` options (the warm-up's "play
around"), run from the shell like Problem 2's grid.

An axis is one option that changes what a run computes (it is part of the run id), with the
values to try: `lr=0.01,0.1`. A sweep is the Cartesian product of its axes (or, with
`one_at_a_time`, the base settings plus each axis varied alone) on top of one set of training
options. Axis names, types, choices and bounds come from the option declarations on
`TrainConfig`, so every value is checked before anything runs. Each cell is an ordinary
`hw0 train` run (idempotent, resumable, locked): the grid's machinery lists, runs and checks
them. A cell whose loss became NaN is a result ("diverged"), not a failure of the sweep.

The sweep's definition is recorded under `<out>/sweeps/<name>.json`, so that the report finds
every sweep that was listed or run there.
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import json
import shlex
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hw0cli import atomic
from hw0cli.batch import cells as runner
from hw0cli.errors import Hw0Error, Hw0UsageError, check
from hw0cli.options import Declared, command_args, declarations, flag
from hw0cli.paths import default_data_dir, default_out_dir
from hw0cli.train import TrainConfig, make_config, validate

# Each cell's run id comes from its settings, and a cell is trained once (a finished one is
# skipped): naming a run, forcing or resuming one makes no sense for a sweep.
SET_BY_SWEEP = ("run_id", "resume", "force")
TRUE, FALSE = ("true", "on", "yes", "1"), ("false", "off", "no", "0")


@dataclass(frozen=True)
class Axis:
    """One option the sweep varies (a `TrainConfig` field name) and its values, in order."""

    name: str
    values: tuple[Any, ...]

    def text(self) -> str:
        """As `--axis` spells it: 'batch-size=64,512'."""
        return f"{self.name.replace('_', '-')}={','.join(value_text(v) for v in self.values)}"


def value_text(value: Any) -> str:
    """Exact (a float's shortest repr: the same value, the same run id)."""
    if isinstance(value, bool):
        return "on" if value else "off"
    return repr(value) if isinstance(value, float) else str(value)


def value_label(value: Any) -> str:
    """Short, for tables and plots."""
    return f"{value:g}" if isinstance(value, float) else value_text(value)


def sweepable() -> dict[str, Declared]:
    """The options a sweep may vary: those in the run id (two cells never share a file)."""
    return {d.name: d for d in declarations(TrainConfig)
            if d.opt.cli and d.opt.run_id is not None and not d.many}


def _value(d: Declared, text: str) -> Any:
    t = text.strip()
    if d.optional and t.lower() in ("none", "off"):
        return None
    if d.type is bool:
        check(t.lower() in TRUE + FALSE, f"'{t}' is not on or off (true/false, yes/no, 1/0).")
        return t.lower() in TRUE
    if d.type in (int, float):
        try:
            number = float(t)
        except ValueError:
            raise Hw0UsageError(f"'{t}' is not a number.") from None
        check(d.type is float or number.is_integer(), f"'{t}' is not a whole number.")
        return int(number) if d.type is int else number
    return t


def parse_axis(text: str) -> Axis:
    """'batch-size=64,512' -> Axis('batch_size', (64, 512)); names and value types from the
    declarations (a name that is not sweepable, or a value of the wrong type, is a usage
    error; choices and bounds are checked with the cells)."""
    name, sep, values = text.partition("=")
    check(bool(sep and name.strip() and values.strip()), f"--axis takes NAME=V1,V2,... (got "
          f"'{text}'), e.g. --axis lr=0.01,0.1.")
    key = name.strip().removeprefix("--").replace("-", "_")
    options = sweepable()
    if key not in options:
        names = ", ".join(n.replace("_", "-") for n in options)
        raise Hw0UsageError(f"--axis {name.strip()}: not an option a sweep can vary. Axes are "
                            f"the options that change what a run computes: {names}.")
    d = options[key]
    try:
        parsed = tuple(_value(d, t) for t in values.split(","))
    except Hw0UsageError as exc:
        raise Hw0UsageError(f"--axis {text}: {exc}") from None
    check(len(set(parsed)) == len(parsed), f"--axis {text} lists a value twice.")
    return Axis(key, parsed)


@dataclass(frozen=True)
class SweepConfig:
    axes: tuple[Axis, ...]
    one_at_a_time: bool = False  # base settings + each axis varied alone, not the product
    recipe: str = "notebook"
    train_options: tuple[tuple[str, Any], ...] = ()  # explicit `hw0 train` settings
    name: str | None = None  # None: 'sweep-<hash of the definition>'
    data_dir: Path = field(default_factory=default_data_dir)
    out: Path = field(default_factory=default_out_dir)
    log: tuple[str, ...] = ()  # wandb / tensorboard: every cell logs, grouped by the sweep
    log_group: str | None = None  # None: the sweep's name

    def definition(self) -> dict[str, Any]:
        """What the cells are: axes, mode, recipe, options (not where they run)."""
        return {"axes": [[a.name, list(a.values)] for a in self.axes],
                "one_at_a_time": self.one_at_a_time, "recipe": self.recipe,
                "train_options": {k: str(v) if isinstance(v, Path) else v
                                  for k, v in self.train_options}}

    def digest(self) -> str:
        """8 hex digits of the definition: the same cells, the same digest."""
        text = json.dumps(self.definition(), sort_keys=True, default=str)
        return hashlib.sha256(text.encode()).hexdigest()[:8]

    def label(self) -> str:
        """The sweep's name: given, or derived from its definition (stable across calls)."""
        return self.name or f"sweep-{self.digest()}"

    def group(self) -> str:
        return self.log_group or self.label()


@dataclass(frozen=True)
class SweepCell:
    index: int
    point: tuple[tuple[str, Any], ...]  # (axis name, value) for every axis, in axis order
    config: TrainConfig

    def value(self, axis: str) -> Any:
        return dict(self.point)[axis]


def check_definition(cfg: SweepConfig) -> None:
    check(bool(cfg.axes), "A sweep needs at least one --axis NAME=V1,V2,... (or a --preset).")
    names = [a.name for a in cfg.axes]
    dup = sorted({n for n in names if names.count(n) > 1})
    check(not dup, f"--axis {', '.join(dup)} is given twice; list every value in one --axis.")
    given = dict(cfg.train_options)
    for k in SET_BY_SWEEP:
        check(given.get(k) in (None, False), f"{flag(TrainConfig, k)} is not a sweep option "
              "(each cell's run id comes from its settings).")
    both = [n for n in names if n in given]
    check(cfg.one_at_a_time or not both, f"{', '.join(flag(TrainConfig, n) for n in both)} is "
          "both an axis and a training option; drop one (with one_at_a_time, the training "
          "option is the base value).")


def _points(cfg: SweepConfig, base: TrainConfig) -> list[tuple[tuple[str, Any], ...]]:
    names = [a.name for a in cfg.axes]
    if not cfg.one_at_a_time:
        return [tuple(zip(names, combo, strict=True))
                for combo in itertools.product(*(a.values for a in cfg.axes))]
    centre = tuple((n, getattr(base, n)) for n in names)
    points = [centre]
    for i, a in enumerate(cfg.axes):
        points += [(*centre[:i], (a.name, v), *centre[i + 1:]) for v in a.values
                   if v != centre[i][1]]
    return points


def _config(cfg: SweepConfig, point: tuple[tuple[str, Any], ...]) -> TrainConfig:
    opts = {k: v for k, v in cfg.train_options if k not in SET_BY_SWEEP}
    # the point goes through the recipe (its settings depend on the width), then replaces
    # outright: a None value (an axis value that turns an option off) included
    c = make_config(cfg.recipe, **{**opts, **dict(point), "data_dir": cfg.data_dir,
                                   "out": cfg.out})
    return dataclasses.replace(c, **dict(point))


def cells(cfg: SweepConfig) -> list[SweepCell]:
    """Every cell, each checked (declared choices and bounds, the rules between options)
    before any runs; a bad value names the axis it came from."""
    check_definition(cfg)
    base = _config(cfg, ())
    for a in cfg.axes:  # each value alone first: the message names the --axis
        for v in a.values:
            try:
                validate(_config(cfg, ((a.name, v),)))
            except Hw0UsageError as exc:
                raise Hw0UsageError(f"--axis {a.text()}: value {value_text(v)}: {exc}") from None
    out = []
    for i, point in enumerate(_points(cfg, base)):
        c = _config(cfg, point)
        validate(c)
        out.append(SweepCell(i, point, c))
    return out


def cell_at(cfg: SweepConfig, index: int) -> SweepCell:
    return runner.pick_cell(cells(cfg), index, "sweep")


def log_args(cfg: SweepConfig) -> list[str]:
    if not cfg.log:
        return []
    return [*(a for b in cfg.log for a in ("--log", b)), "--log-group", cfg.group()]


def sweep_commands(cfg: SweepConfig) -> list[str]:
    """One complete `hw0 train` command per cell (same settings, same run id)."""
    return [shlex.join(["hw0", "train", *runner.train_args(c.config), *log_args(cfg)])
            for c in cells(cfg)]


def options_args(recipe: str, train_options: tuple[tuple[str, Any], ...], data_dir: Path,
                 out: Path) -> list[str]:
    """`hw0 train` options that give `train_options` on top of `recipe` (and the folders)."""
    base = make_config(recipe, width=dict(train_options).get("width"))
    given = make_config(recipe, **{**dict(train_options), "data_dir": data_dir, "out": out})
    return [*(["--recipe", recipe] if recipe != "notebook" else []),
            *command_args(given, base, always=("data_dir", "out", *dict(train_options)),
                          skip=("recipe",))]


def sweep_args(cfg: SweepConfig) -> list[str]:
    """Options of `hw0 sweep` that describe this sweep exactly (for a batch script)."""
    axes = [a for ax in cfg.axes for a in ("--axis", ax.text())]
    return [*axes, *(["--one-at-a-time"] if cfg.one_at_a_time else []), "--name", cfg.label(),
            *options_args(cfg.recipe, cfg.train_options, cfg.data_dir, cfg.out),
            *log_args(cfg)]


# ---------------------------------------------------------------------------------------------
# the recorded definition


def spec_path(out: Path, name: str) -> Path:
    return Path(out) / "sweeps" / f"{name}.json"


def record(cfg: SweepConfig) -> Path:
    """Write the sweep's definition where the report looks for sweeps (atomically); a sweep
    with a bad value is never recorded."""
    cells(cfg)
    path = spec_path(cfg.out, cfg.label())
    path.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps({"name": cfg.label(), **cfg.definition()}, indent=1, default=str)
    if not path.exists() or path.read_text() != text:
        atomic.write_text(path, text)
    return path


def load_recorded(out: Path) -> list[SweepConfig]:
    """Every sweep recorded under `out` (unreadable records are skipped)."""
    found = []
    for p in sorted((Path(out) / "sweeps").glob("*.json")):
        try:
            d = json.loads(p.read_text())
            axes = tuple(Axis(n, tuple(v)) for n, v in d["axes"])
            found.append(SweepConfig(axes=axes, one_at_a_time=bool(d["one_at_a_time"]),
                                     recipe=d["recipe"], name=d["name"], out=Path(out),
                                     train_options=tuple(sorted(d["train_options"].items()))))
        except (OSError, ValueError, KeyError, TypeError):  # a hand-edited or foreign file
            continue
    return found


# ---------------------------------------------------------------------------------------------
# status and running


@dataclass(frozen=True)
class SweepCellState:
    cell: SweepCell
    run_id: str
    state: str  # done | diverged | running | incomplete | missing | corrupt | mismatch
    epochs_done: int
    train_err: float
    test_err: float
    seconds: float
    note: str
    train_eval_err: float = float("nan")  # "full-train err"; train_err: as runner.CellState's
    train_err_running: float = float("nan")

    def to_json(self) -> dict[str, Any]:
        return {"index": self.cell.index, "run_id": self.run_id, "state": self.state,
                "point": {k: v for k, v in self.cell.point}, "epochs": self.epochs_done,
                "train_err": self.train_err, "train_eval_err": self.train_eval_err,
                "train_err_running": self.train_err_running, "test_err": self.test_err,
                "seconds": self.seconds, "note": self.note}


FINAL = ("done", "diverged")  # states a cell never leaves: nothing to run


def cell_state(cell: SweepCell) -> SweepCellState:
    s = runner.cell_state(cell.index, cell.config)
    state = "diverged" if s.state == "failed" else s.state  # the grid's only failure
    return SweepCellState(cell, s.run_id, state, s.epochs_done, s.train_err, s.test_err,
                          s.seconds, s.note, s.train_eval_err, s.train_err_running)


def sweep_status(cfg: SweepConfig) -> list[SweepCellState]:
    return [cell_state(c) for c in cells(cfg)]


@dataclass(frozen=True)
class SweepRun:
    ran: list[int]
    skipped: list[int]  # finished or diverged before this call
    diverged: list[int]  # of those that ran
    failed: list[runner.CellRun]  # exited non-zero without diverging: see their logs
    elsewhere: list[int] = field(default_factory=list)  # held by another process


def run_sweep(cfg: SweepConfig, jobs: int, on_done: Callable[[runner.CellRun], None] | None = None,
              on_start: Callable[[int, TrainConfig], None] | None = None) -> SweepRun:
    """Run every cell not finished or diverged yet, `jobs` at a time (see
    `runner.run_configs`); interrupted cells resume from their last epoch."""
    all_cells = cells(cfg)
    record(cfg)
    skipped = [c.index for c in all_cells if cell_state(c).state in FINAL]
    todo = [c.index for c in all_cells if c.index not in skipped]
    results = runner.run_configs([c.config for c in all_cells], cfg.out, jobs, todo, on_done,
                               on_start, log_args(cfg))
    diverged = [r.index for r in results
                if not r.elsewhere and cell_state(all_cells[r.index]).state == "diverged"]
    failed = [r for r in results if r.failed and r.index not in diverged]
    elsewhere = [r.index for r in results if r.elsewhere]
    return SweepRun([i for i in todo if i not in elsewhere], skipped, diverged, failed,
                    elsewhere)


def failure_message(res: SweepRun) -> str:
    return (f"{len(res.failed)} of {len(res.ran)} cells failed: "
            f"{', '.join(str(r.index) for r in res.failed)}. See their logs "
            f"({res.failed[0].log.parent}); `hw0 sweep status` shows each cell.")


def raise_failures(res: SweepRun) -> None:
    if res.failed:
        raise Hw0Error(failure_message(res))
