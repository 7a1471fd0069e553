"""What a sweep shows: final errors per setting (mean and spread over seeds), the effect of each
axis in one measured sentence, the plots, and the report's "Warm-up: what changes when you
change X" section. Everything is read from the cells' run files, matched by run id.
"""

from __future__ import annotations

import math
import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from hw0cli import runs, store
from hw0cli.batch.sweep import (
    SweepConfig,
    cell_state,
    cells,
    load_recorded,
    sweep_args,
    value_label,
)
from hw0cli.errors import Hw0Error
from hw0cli.quantities import CHANCE_ERR, FULL_TRAIN, label
from hw0cli.report import sweep_plots
from hw0cli.report.notes import portable
from hw0cli.report.render import Section
from hw0cli.train import run_id_for

SEED = "seed"  # the axis that is spread, not an effect
AT_CHANCE = CHANCE_ERR - 0.02  # test error this high: a cell that has learned nothing
SHORT = 5  # epochs: fewer, and a study's numbers are early-training ones


@dataclass(frozen=True)
class CellResult:
    point: tuple[tuple[str, Any], ...]
    seed: int
    state: str  # done | diverged | (anything else: no result yet)
    train_err: float  # final; NaN unless done
    test_err: float
    epochs: int
    history: dict[str, np.ndarray]  # epoch, train_err, test_err, ... (empty: no file)


@dataclass(frozen=True)
class Setting:
    """The cells of one point of the non-seed axes: one per seed."""

    point: tuple[tuple[str, Any], ...]  # the non-seed axes
    cells: tuple[CellResult, ...]

    @property
    def done(self) -> list[CellResult]:
        return [c for c in self.cells if c.state == "done"]

    @property
    def diverged(self) -> int:
        return sum(c.state == "diverged" for c in self.cells)

    @property
    def missing(self) -> int:
        return len(self.cells) - len(self.done) - self.diverged

    def stat(self, key: str) -> tuple[float, float]:
        return mean_sd([getattr(c, key) for c in self.done])


def mean_sd(values: list[float]) -> tuple[float, float]:
    v = np.asarray([x for x in values if not math.isnan(x)], dtype=float)
    return (float(v.mean()), float(v.std())) if len(v) else (math.nan, math.nan)


@dataclass(frozen=True)
class Level:
    """One value of one axis, over every cell that has it (within one value of the split
    axis, where there is one)."""

    axis: str
    value: Any
    split: Any  # the split axis's value; None without a split
    test: tuple[float, float]  # mean, std over the finished cells
    train: tuple[float, float]
    finished: int
    diverged: int
    total: int


@dataclass
class SweepSummary:
    name: str
    axes: list[str]  # the non-seed axes, in order
    split: str | None  # an axis whose values get a line each (the first of several axes)
    settings: list[Setting]
    levels: dict[str, list[Level]]
    sentences: list[str]
    plots: list[Path]
    product: bool = True  # every combination of the axes (False: one at a time)

    def header(self) -> list[str]:
        return [*(a.replace("_", " ") for a in self.axes), "seeds", "diverged",
                "full-train err", "test err", "epochs"]

    def table(self) -> list[list[str]]:
        return [[*(value_label(v) for _, v in s.point), str(len(s.cells)),
                 f"{s.diverged}" + (f" ({s.missing} missing)" if s.missing else ""),
                 pm(s.stat("train_err"), len(s.done)), pm(s.stat("test_err"), len(s.done)),
                 f"{np.mean([c.epochs for c in s.cells]):.0f}"] for s in self.settings]

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "axes": self.axes, "split": self.split,
                "settings": [{"point": dict(s.point), "seeds": len(s.cells),
                              "diverged": s.diverged, "missing": s.missing,
                              "train_err": s.stat("train_err"), "test_err": s.stat("test_err")}
                             for s in self.settings],
                "sentences": self.sentences, "plots": [str(p) for p in self.plots]}


def pct(x: float) -> str:
    return "-" if math.isnan(x) else f"{100 * x:.1f}%"


def pm(ms: tuple[float, float], n: int) -> str:
    """'41.2% +- 1.3' (mean +- std over `n` seeds); no spread for one."""
    if math.isnan(ms[0]):
        return "-"
    return f"{100 * ms[0]:.1f}%" + (f" +- {100 * ms[1]:.1f}" if n > 1 else "")


def _result(cell: Any, varied: list[str]) -> CellResult:
    s = cell_state(cell)
    history: dict[str, np.ndarray] = {}
    if s.state in ("done", "diverged", "incomplete", "running"):
        try:
            path = runs.run_path(cell.config.out, s.run_id)
            history = dict(store.read_h5(path, prefixes=("history/",)).group("history"))
        except Hw0Error:  # unreadable: no curve
            history = {}
    ok = s.state == "done"
    return CellResult(tuple(p for p in cell.point if p[0] in varied), cell.config.seed, s.state,
                      s.train_err if ok else math.nan, s.test_err if ok else math.nan,
                      s.epochs_done, history)


def _settings(results: list[CellResult]) -> list[Setting]:
    by: dict[tuple, list[CellResult]] = {}
    for r in results:
        by.setdefault(r.point, []).append(r)
    return [Setting(p, tuple(rs)) for p, rs in by.items()]


def _level(axis: str, value: Any, split: tuple[str, Any] | None,
           members: list[Setting]) -> Level:
    cs = [c for s in members for c in s.cells]
    done = [c for c in cs if c.state == "done"]
    return Level(axis, value, None if split is None else split[1],
                 mean_sd([c.test_err for c in done]), mean_sd([c.train_err for c in done]),
                 len(done), sum(c.state == "diverged" for c in cs), len(cs))


def _levels(cfg: SweepConfig, settings: list[Setting], axes: list[str],
            split: str | None) -> dict[str, list[Level]]:
    """Per axis, per value (per split value): the cells that have it. One at a time: only
    the cells where every other axis is at its base value."""
    base = dict(settings[0].point) if settings else {}
    out: dict[str, list[Level]] = {}
    values = {a.name: _ordered((base[a.name], *a.values) if cfg.one_at_a_time else a.values)
              for a in cfg.axes if a.name in base}
    for axis in axes:
        splits = [(split, v) for v in values[split]] if split and axis != split else [None]
        out[axis] = []
        for sp in splits:
            for v in values[axis]:
                members = [s for s in settings if dict(s.point)[axis] == v
                           and (sp is None or dict(s.point)[sp[0]] == sp[1])
                           and (not cfg.one_at_a_time or all(
                               dict(s.point)[a] == base[a] for a in axes if a != axis))]
                if members:
                    out[axis].append(_level(axis, v, sp, members))
    return out


def _ordered(values: tuple[Any, ...]) -> tuple[Any, ...]:
    """Each value once; numbers ascending (a one-at-a-time base value joins its axis)."""
    once = tuple(dict.fromkeys(values))
    numeric = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in once)
    return tuple(sorted(once)) if numeric else once


def _name(axis: str) -> str:
    return axis.replace("_", " ")


def _axis_sentence(axis: str, levels: list[Level], split: str | None) -> str:
    """'lr, with batchnorm on: test error 41.0% at 0.03, 38.2% at 0.3 (a 2.8-point range);
    with batchnorm off: ... diverged in 4 of 4 cells at 0.3.'"""
    parts = []
    for sp in dict.fromkeys(lv.split for lv in levels):
        group = [lv for lv in levels if lv.split == sp]
        errs = [lv.test[0] for lv in group if not math.isnan(lv.test[0])]
        said = ", ".join(f"{pct(lv.test[0])} at {value_label(lv.value)}" for lv in group
                         if lv.finished)
        text = (f"test error {said}" if said else "no finished cell")
        if errs and min(errs) >= AT_CHANCE:  # a range between guesses means nothing
            text += (" (every cell at chance, 90% test error: too little training to tell "
                     "these values apart)")
        elif len(errs) > 1:
            text += f" (a {100 * (max(errs) - min(errs)):.1f}-point range)"
        div = [f"{lv.diverged} of {lv.total} cells at {value_label(lv.value)}" for lv in group
               if lv.diverged]
        if div:
            text += "; diverged (NaN loss) in " + ", ".join(div)
        head = f"with {_name(split)} {value_label(sp)}: " if split and sp is not None else ""
        parts.append(head + text)
    return f"Changing {_name(axis)}: " + "; ".join(parts) + "."


def _sentences(levels: dict[str, list[Level]], split: str | None) -> list[str]:
    return [_axis_sentence(a, lv, split if a != split else None)
            for a, lv in levels.items() if lv]


def sweep_summary(cfg: SweepConfig, plot_dir: Path | None = None) -> SweepSummary:
    """Aggregate the sweep's cells (finished and diverged) over seeds; plots under
    `plot_dir` when given and anything finished."""
    # the axes that vary: one value is a setting of the whole sweep, not an effect
    axes = [a.name for a in cfg.axes if a.name != SEED
            and (len(a.values) > 1 or cfg.one_at_a_time)]
    results = [_result(c, axes) for c in cells(cfg)]
    split = axes[0] if len(axes) > 1 and not cfg.one_at_a_time else None
    settings = _settings(results)
    levels = _levels(cfg, settings, axes, split)
    summary = SweepSummary(cfg.label(), axes, split, settings, levels,
                           _sentences(levels, split), [], product=not cfg.one_at_a_time)
    if plot_dir is not None and any(r.state in ("done", "diverged") for r in results):
        summary.plots = sweep_plots.all_plots(summary, plot_dir / f"sweep_{cfg.label()}")
    return summary


# ---------------------------------------------------------------------------------------------
# the report's sections


def sweep_memberships(out: Path) -> dict[str, str]:
    """Run id -> the name of a recorded sweep it is a cell of (the first by name)."""
    owners: dict[str, str] = {}
    for cfg in load_recorded(out):
        try:
            for c in cells(cfg):
                owners.setdefault(run_id_for(c.config), cfg.label())
        except Hw0Error:  # a definition this hw0 no longer accepts
            continue
    return owners


def sweep_cell_ids(out: Path) -> set[str]:
    """Run ids of every recorded sweep's cells (the warm-up section leaves them to these)."""
    return set(sweep_memberships(out))


def sweep_sections(out: Path, figdir: Path) -> list[Any]:
    """One "Warm-up: what changes when you change X" section per recorded sweep with results."""
    sections = []
    for cfg in load_recorded(out):
        try:
            summary = sweep_summary(cfg, plot_dir=figdir)
        except Hw0Error:
            continue
        if any(s.done or s.diverged for s in summary.settings):
            sections.append(_section(cfg, summary))
    return sections


def _caveat(cfg: SweepConfig, summary: SweepSummary) -> str | None:
    """Where the study is too small for its numbers to mean much, say so."""
    epochs = max((c.epochs for s in summary.settings for c in s.cells), default=0)
    chance = [s for s in summary.settings if s.done
              and s.stat("test_err")[0] >= AT_CHANCE]
    if epochs > SHORT and not chance:
        return None
    what = [f"{len(chance)} of {len(summary.settings)} settings learned nothing measurable "
            "(test error at chance, 90%): their differences are noise"] if chance else []
    if epochs <= SHORT:
        samples = dict(cfg.train_options).get("train_samples")
        what.append(f"{epochs} epoch{'s' * (epochs != 1)}"
                    f"{f' on {samples:,} images' if samples else ''} show "
                    "early training only: which setting learns fastest, not where each ends "
                    "(the full preset trains longer)")
    return "Caveat: " + "; ".join(what) + "."


def _section(cfg: SweepConfig, summary: SweepSummary) -> Any:

    names = ", ".join(_name(a) for a in summary.axes) or "the seed"
    sec = Section(f"Warm-up: what changes when you change {names} (sweep {summary.name})")
    n = sum(len(s.cells) for s in summary.settings)
    done = sum(len(s.done) for s in summary.settings)
    div = sum(s.diverged for s in summary.settings)
    mode = "each axis varied alone around the base" if cfg.one_at_a_time else "every combination"
    sec.text(f"{n} training runs ({mode}; {done} finished, {div} diverged, "
             f"{n - done - div} missing). Errors are final ({label(FULL_TRAIN)}: eval mode on "
             "the training subset), mean +- std over seeds; a diverged run (NaN loss) counts as "
             "diverged, not in the means. Reproduce: " + shlex.join(
                 ["hw0", "sweep", "run", *portable(sweep_args(cfg))]))
    sec.add_table(summary.header(), summary.table())
    sec.text(*summary.sentences)
    caveat = _caveat(cfg, summary)
    if caveat:
        sec.text(caveat)
    captions = {"axes": "Final full-train err (dashed) and test err (solid) against each axis; "
                        "red x: diverged cells.",
                "curves": "Learning curves per setting (test error per epoch, mean over "
                          "seeds); x: the last epoch of a diverged run.",
                "heatmap": "Mean test error for each pair of values of the two axes."}
    for p in summary.plots:
        sec.figure(p, captions.get(p.stem.rsplit("_", 1)[-1], ""))
    return sec
