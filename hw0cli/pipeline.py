"""`hw0 all`: every experiment of the homework in order, resumably, then the report.

Each step is idempotent (a finished training run is skipped by its config-derived id, a flip
evaluation already stored is not redone, a linreg result file with the same config is kept),
so running `hw0 all` again only finishes what is missing and rewrites the report.
"""

from __future__ import annotations

import contextlib
import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hw0cli import atomic, runs, store
from hw0cli.batch import grid, presets, sweep
from hw0cli.data import missing_data
from hw0cli.env import resolve_device
from hw0cli.errors import Hw0Error, Hw0UsageError, check
from hw0cli.estimate import step_estimates
from hw0cli.evaluate import EvalConfig, run_eval
from hw0cli.linreg import LinregConfig, linreg_id, run_linreg
from hw0cli.linreg import validate as validate_linreg
from hw0cli.paths import default_data_dir, default_out_dir
from hw0cli.quantities import FULL_TRAIN, label
from hw0cli.report import ReportConfig, run_report
from hw0cli.smoke import smoke_preset
from hw0cli.tracking import Fanout, TrackingConfig, TrackingReporter, require
from hw0cli.train import TrainConfig, TrainReporter, make_config, run_id_for, run_train, validate

PRESETS: dict[str, dict[str, Any]] = {
    "quick": {
        "description": "laptop-CPU settings: width 4 for the warm-up and Problem 1 (10 "
                       "epochs), a BatchNorm study (with and without BatchNorm x 3 learning "
                       "rates, width 4, 2,000 images, 3 epochs), the random-label grid on a "
                       "1,000-image training subset (so small that even c = 4 can memorize "
                       "it), Problem 3 at n = 500; "
                       "accuracies are below the full assignment's",
        "warmup": [{"width": 4, "epochs": 10}],
        "robust": [{"width": 4, "epochs": 10, "augment": "vflip"},
                   {"width": 4, "epochs": 10, "objective": "worst-view"}],
        "grid": {"widths": (4, 64), "noises": (0.0, 0.5, 1.0), "seeds": (0,),
                 "train_options": {"train_samples": 1000, "eval_every": 10}},
        "linreg": {"method": "all", "n": 500},
        # the warm-up's play-around, CPU-sized: with/without BatchNorm x three learning rates
        "sweep": {"preset": "bn-study", "name": "bn-study-quick",
                  "axes": {"width": (4,), "init": ("default",), "seed": (0,)},
                  # 2,000 images: on 1,000 (24 steps) BatchNorm's running statistics are
                  # still far off, and eval-mode test error is near chance with or without it
                  "train_options": {}},
    },
    "full": {
        "description": "the assignment's settings for a GPU: width 64, 20 epochs, the full "
                       "50,000 training images everywhere, plus the fast recipe (its 30 "
                       "epochs)",
        "warmup": [{"width": 64, "epochs": 20}, {"width": 64, "recipe": "fast"}],
        "robust": [{"width": 64, "epochs": 20, "augment": "vflip"},
                   {"width": 64, "epochs": 20, "objective": "worst-view"}],
        "grid": {"widths": (4, 64), "noises": (0.0, 0.5, 1.0), "seeds": (0,),
                 "train_options": {}},
        "linreg": {"method": "all", "n": 500},
        "sweep": {"preset": "bn-study", "name": "bn-study-full",
                  "axes": {"width": (16, 64)},
                  "train_options": {"train_samples": 50_000, "epochs": 10, "compile": None}},
    },
}


@dataclass(frozen=True)
class AllConfig:
    preset: str = "quick"
    data_dir: Path = field(default_factory=default_data_dir)
    out: Path = field(default_factory=default_out_dir)
    device: str = "auto"
    log: tuple[str, ...] = ()  # wandb / tensorboard for every training step
    smoke: bool = False  # every step at toy sizes, trained eagerly (hw0cli.smoke)


@dataclass
class StepResult:
    title: str
    status: str  # done | skipped | failed
    seconds: float
    detail: str = ""


@dataclass
class AllResult:
    steps: list[StepResult]
    report: Any
    seconds: float

    def count(self, status: str) -> int:
        return sum(s.status == status for s in self.steps)

    @property
    def failed(self) -> list[StepResult]:
        return [s for s in self.steps if s.status == "failed"]


@dataclass
class StepClock:
    """Elapsed time and an ETA for a sequence of steps: from each step's estimate
    (`hw0cli.estimate`) where there are estimates, scaled by how the steps that did work
    compared with theirs; without estimates, from the mean of the steps that did work (a
    skipped step, already done, says nothing about the pace)."""

    started: float = field(default_factory=time.monotonic)
    ran: list[float] = field(default_factory=list)
    estimates: list[float] | None = None  # seconds per step, set before the first runs
    ran_estimated: list[float] = field(default_factory=list)  # the estimates of `ran`

    def record(self, r: StepResult, index: int | None = None) -> None:
        if r.status == "done":
            self.ran.append(r.seconds)
            if self.estimates is not None and index is not None:
                self.ran_estimated.append(self.estimates[index])

    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def eta(self, done: int, total: int) -> float | None:
        """Seconds left after `done` of `total` steps; None before any step did work, where
        there are no estimates."""
        if self.estimates is not None:
            spent, guessed = sum(self.ran), sum(self.ran_estimated)
            pace = min(max(spent / guessed, 0.5), 2.0) if spent and guessed > 0 else 1.0
            return pace * sum(self.estimates[done:total])
        return sum(self.ran) / len(self.ran) * (total - done) if self.ran else None


@dataclass
class Step:
    title: str
    run: Callable[[TrainReporter | None], str]  # a detail line; "skipped..." if nothing ran
    group: str | None = None  # the tracking group of a training step
    config: Any = None  # what the step runs: a TrainConfig (train, eval) or LinregConfig
    kind: str = "train"  # train | eval | linreg


def _train_step(cfg: TrainConfig) -> Callable[[TrainReporter | None], str]:
    def go(reporter: TrainReporter | None) -> str:
        res = run_train(cfg, reporter=reporter)
        verb = "skipped (already finished): " if res.status == "skipped" else ""
        full = res.train_eval_err
        return (f"{verb}test acc {100 * (1 - res.test_err):.2f}%, {label(FULL_TRAIN)} "
                + ("-" if math.isnan(full) else f"{100 * full:.2f}%"))
    return go


def preset_settings(cfg: AllConfig) -> dict[str, Any]:
    """The preset's settings as this run uses them: as declared, or cut by --smoke."""
    check(cfg.preset in PRESETS, f"Unknown preset '{cfg.preset}'. Choose one of: "
          f"{', '.join(PRESETS)}.")
    if not cfg.smoke:
        return PRESETS[cfg.preset]
    return smoke_preset(PRESETS[cfg.preset], cpu=resolve_device(cfg.device).type == "cpu")


def plan(cfg: AllConfig) -> list[Step]:
    """The steps of the preset, in order."""
    p = preset_settings(cfg)
    common = {"data_dir": cfg.data_dir, "out": cfg.out, "device": cfg.device}
    warm = [make_config(w.get("recipe", "notebook"), **{k: v for k, v in w.items()
                                                        if k != "recipe"}, **common)
            for w in p["warmup"]]
    steps = [Step(f"Warm-up: width {c.width}, {c.epochs} epochs, {c.recipe} recipe",
                  _train_step(c), f"all-{cfg.preset}", c) for c in warm]
    steps += sweep_steps(p.get("sweep"), cfg)
    steps.append(Step("Problem 1: flip evaluation of the warm-up run",
                      _flip_eval_step(cfg, warm[0]), config=warm[0], kind="eval"))
    for r in p["robust"]:
        c = make_config("notebook", **r, **common)
        how = f"augment {c.augment}" if c.augment != "none" else f"objective {c.objective}"
        steps.append(Step(f"Problem 1: flip-robust training ({how})", _train_step(c),
                          f"all-{cfg.preset}", c))
    steps += _grid_steps(p["grid"], cfg)
    steps.append(_linreg_step(p["linreg"], cfg))
    return steps


def _flip_eval_step(cfg: AllConfig, run_cfg: TrainConfig) -> Callable[..., str]:

    def flip_eval(_: TrainReporter | None) -> str:
        path = runs.run_path(cfg.out, run_id_for(run_cfg))
        if store.has_dataset(path, "eval/vflip/accuracy"):
            return "skipped (already evaluated)"
        res = run_eval(EvalConfig(run=str(path), views=("original", "vflip"), out=cfg.out,
                                  data_dir=cfg.data_dir))
        o, v = res.views["original"].accuracy, res.views["vflip"].accuracy
        return f"original {100 * o:.2f}%, upside down {100 * v:.2f}% ({res.provider})"

    return flip_eval


def _grid_steps(g: dict[str, Any], cfg: AllConfig) -> list[Step]:

    grid_cfg = grid.GridConfig(widths=g["widths"], noises=g["noises"], seeds=g["seeds"],
                          train_options=tuple(sorted({**g["train_options"],
                                                      "device": cfg.device}.items())),
                          data_dir=cfg.data_dir, out=cfg.out)
    return [Step(f"Problem 2: width {c.width}, p = {c.noise:g}, seed {c.seed}",
                 _train_step(c), grid.log_group(grid_cfg), c) for c in grid.cells(grid_cfg)]


def _linreg_step(options: dict[str, Any], cfg: AllConfig) -> Step:

    lcfg = LinregConfig(**options, data_dir=cfg.data_dir, out=cfg.out, device=cfg.device)

    def linreg_step(_: TrainReporter | None) -> str:
        path = Path(cfg.out) / "linreg" / f"{linreg_id(lcfg)}.h5"
        if path.exists():
            return "skipped (result file exists)"
        s = run_linreg(lcfg).summary
        nan = float("nan")
        pinv = (s.min_norm or {}).get("pinv")
        return (f"wrote {path.name}: rank {s.spectrum.rank}, min-norm test MSE "
                f"{pinv.test_mse if pinv else nan:.4g}, best kernel test MSE "
                f"{s.kernel.best_test_mse if s.kernel else nan:.4g}")

    return Step(f"Problem 3: hw0 linreg --method all --n {lcfg.n}", linreg_step,
                config=lcfg, kind="linreg")


def sweep_steps(spec: dict[str, Any] | None, cfg: AllConfig) -> list[Step]:
    """One step per cell of the preset's warm-up study (`spec`: a named sweep adjusted by
    `axes` and `train_options`); a cell that diverges is a result, not a failed step."""
    if not spec:
        return []
    axes = tuple(sweep.Axis(k, tuple(v)) for k, v in spec.get("axes", {}).items())
    own = sweep.SweepConfig(axes=axes, train_options=tuple({**spec.get("train_options", {}),
                                                            "device": cfg.device}.items()),
                            name=spec.get("name"), data_dir=cfg.data_dir, out=cfg.out)
    scfg = presets.with_preset(own, spec["preset"])
    return [Step(f"Sweep {scfg.label()} (warm-up study): " + ", ".join(
        f"{k.replace('_', ' ')} {v}" for k, v in c.point), _sweep_step(scfg, c), scfg.group(),
        c.config) for c in sweep.cells(scfg)]


def _sweep_step(scfg: Any, cell: Any) -> Callable[[TrainReporter | None], str]:
    def go(reporter: TrainReporter | None) -> str:
        sweep.record(scfg)
        if sweep.cell_state(cell).state == "diverged":
            return "skipped (diverged earlier: a result of this study)"
        try:
            return _train_step(cell.config)(reporter)
        except Hw0Error:
            state = sweep.cell_state(cell)
            if state.state != "diverged":
                raise
            return f"diverged (a result of this study): {state.note}"
    return go


def _run_step(cfg: AllConfig, step: Step, reporter_factory: Callable[[], Any] | None) -> str:
    """One step, with the progress display and (for training steps) the trackers."""
    with contextlib.ExitStack() as stack:
        display = stack.enter_context(reporter_factory()) if reporter_factory else None
        tracking = (stack.enter_context(TrackingReporter(TrackingConfig(cfg.log, cfg.out,
                                                                        step.group)))
                    if cfg.log and step.group else None)
        rep = Fanout(display, tracking) if display or tracking else None
        return step.run(rep)


def validate_plan(cfg: AllConfig) -> list[Step]:
    """The plan, checked whole before any step runs: the preset, the device, the data, every
    step's options. A bad plan is one usage error naming what is wrong and that nothing ran."""
    try:
        steps = plan(cfg)  # the preset; grid and sweep cells are checked as they are made
        resolve_device(cfg.device)
        require(cfg.log)
        for s in steps:
            (validate_linreg if s.kind == "linreg" else validate)(s.config)
        gone = missing_data(cfg.data_dir)
        check(gone is None, str(gone))
    except Hw0UsageError as exc:
        raise Hw0UsageError(f"hw0 all --preset {cfg.preset} cannot run, so nothing was "
                            f"started: {exc}") from None
    return steps


def run_all(cfg: AllConfig, on_step: Callable[[int, int, str], None] | None = None,
            on_result: Callable[[StepResult], None] | None = None,
            reporter_factory: Callable[[], Any] | None = None,
            clock: StepClock | None = None) -> AllResult:
    """Check the whole plan (`validate_plan`), then run every step (a failure is recorded
    and the others go on), then the report. A `clock` gets each step's estimate first, and
    each result."""

    t0 = time.perf_counter()
    steps = validate_plan(cfg)
    if clock is not None:
        clock.estimates = step_estimates(steps)
    preset = {"name": cfg.preset, **preset_settings(cfg)}
    Path(cfg.out).mkdir(parents=True, exist_ok=True)
    rec_path = Path(cfg.out) / f"preset_{cfg.preset}.json"
    atomic.write_text(rec_path, json.dumps(preset, indent=1, default=list))
    results = []
    for i, step in enumerate(steps):
        if on_step:
            on_step(i, len(steps), step.title)
        t = time.perf_counter()
        try:
            detail = _run_step(cfg, step, reporter_factory)
            status = "skipped" if detail.startswith("skipped") else "done"
        except Hw0Error as exc:
            if exc.exit_code == 130:  # Ctrl-C: stop here, everything done so far is kept
                raise
            status, detail = "failed", str(exc)
        res = StepResult(step.title, status, time.perf_counter() - t, detail)
        results.append(res)
        if clock is not None:
            clock.record(res, i)
        if on_result:
            on_result(res)
    report = run_report(ReportConfig(out=cfg.out, preset=preset))
    return AllResult(results, report, time.perf_counter() - t0)
