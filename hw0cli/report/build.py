"""The hand-in: a PDF (matplotlib PdfPages, no LaTeX) and a Markdown file with PNGs.

Everything comes from the files under the output folder: run files (`runs/*.h5`), their
evaluation groups, the linreg files (`linreg/*.h5`) and the plots. One section per problem;
a section whose results are missing says so and names the command that produces them.
"""

from __future__ import annotations

import json
import shlex
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import numpy as np

from hw0cli import plots, runs, store
from hw0cli.atomic import new_folder
from hw0cli.batch.cells import train_args
from hw0cli.data import CIFAR_CLASSES
from hw0cli.errors import DamagedFileError, Hw0Error, Hw0UsageError, Hw0Warning, check
from hw0cli.linreg import LinregSummary, describe, format_factor, linreg_args
from hw0cli.linreg.plots import linreg_plots
from hw0cli.paths import default_out_dir
from hw0cli.quantities import FULL_TRAIN, TEST, TRAIN_RUNNING, label
from hw0cli.report.grid import problem2_section
from hw0cli.report.notes import (
    ACCURACY_NOTE,
    ERRORS_NOTE,
    by_label,
    is_grid,
    pct,
    portable,
    seed_mates,
    spread,
)
from hw0cli.report.render import Block, Section, render_md, render_pdf
from hw0cli.report.sweep import sweep_cell_ids, sweep_sections
from hw0cli.train import TrainConfig, science_of

FORMATS = ("pdf", "md")
SECTIONS = ("Warm-up", "Problem 1", "Problem 2", "Problem 3", "Environment")


@dataclass(frozen=True)
class ReportConfig:
    out: Path = field(default_factory=default_out_dir)
    report_dir: Path | None = None  # None: <out>/report
    formats: tuple[str, ...] = FORMATS
    preset: dict[str, Any] | None = None  # what `hw0 all` ran, if it did


@dataclass
class ReportResult:
    pdf: Path | None
    md: Path | None
    sections: dict[str, bool]  # title -> has results
    pages: int
    figures: list[Path]


def _train_command(cfg: dict[str, Any]) -> str:
    known = {k: v for k, v in cfg.items() if k in TrainConfig.__dataclass_fields__}
    known["data_dir"], known["out"] = Path(known.get("data_dir", "data")), Path(
        known.get("out", "artifacts"))
    try:
        return shlex.join(["hw0", "train", *portable(train_args(TrainConfig(**known)))])
    except (TypeError, Hw0Error):  # a run file from an older hw0: show the settings instead
        return "hw0 train (settings: " + json.dumps(science_of(cfg)) + ")"


def _is_robust(r: runs.RunSummary) -> bool:
    return "vflip" in str(r.config.get("augment")) or r.config.get("objective") == "worst-view"


# ---------------------------------------------------------------------------------------------
# sections


def _steady_seconds(r: runs.RunSummary, attrs: dict[str, Any]) -> float:
    """Training seconds without the one-time cost (compile, autotune, capture) where the run
    file measured it."""
    one = attrs.get("one_time")
    return r.seconds - float(one.get("train_s", 0.0)) if isinstance(one, dict) else r.seconds


def _shown_acc(r: runs.RunSummary) -> float:
    shown = r.figures.get("original")
    return shown.accuracy if shown else 1 - r.test_err


def _tta_acc(history: dict[str, Any]) -> float | None:
    tta = runs.last_finite(history["test_err_tta"], None) if "test_err_tta" in history else None
    return None if tta is None else 1 - tta


def warmup_section(all_runs: list[runs.RunSummary], figdir: Path,
                   sweep_ids: frozenset[str] = frozenset()) -> Section:
    sec = Section("Warm-up: Myrtle5 on CIFAR-10")
    main = [r for r in all_runs if r.status == "finished" and not is_grid(r)
            and not _is_robust(r) and not r.config.get("noise")
            and r.run_id not in sweep_ids]  # a sweep's cells are shown in its own section
    if not main:
        sec.present = False
        sec.text("No finished training run yet. Produce one with `hw0 train` (the course "
                 "recipe at width 64), or `hw0 train --width 4 --epochs 20` on a CPU.")
        return sec
    finished = main
    latest: dict[tuple, runs.RunSummary] = {}  # the latest run of each recipe and width
    for r in sorted(main, key=lambda r: r.ended):
        latest[(r.config.get("recipe", "notebook"), r.config.get("width", 0),
                r.epochs_done)] = r
    main = sorted(latest.values(), key=lambda r: (r.config.get("width", 0),
                                                  r.config.get("recipe", "notebook")))[-6:]
    rows, histories = [], {}
    for r in main:
        c = r.config
        rec = store.read_h5(r.path, prefixes=("history/",))
        h = rec.group("history")
        secs = _steady_seconds(r, rec.attrs)
        ips = c.get("train_samples", 50000) * r.epochs_done / secs if secs else float("nan")
        dev = str(rec.attrs.get("device", "?")).split(":")[0].replace("NVIDIA ", "")
        mates = seed_mates(r, finished)  # r first: its own figures, then the other seeds'
        tta = [_tta_acc(h), *(_tta_acc(store.read_h5(m.path, prefixes=("history/",))
                                       .group("history")) for m in mates[1:])]
        rows.append([r.run_id, str(c.get("width")), c.get("recipe", "notebook"),
                     str(r.epochs_done), spread([_shown_acc(m) for m in mates]),
                     by_label(r.figures.get("original")), spread(tta), pct(r.full_train_err),
                     f"{secs:.0f}", f"{ips:,.0f}", f"{dev}, {rec.attrs.get('precision')}"])
        histories[f"{c.get('recipe', 'notebook')}, c = {c.get('width')}, "
                  f"{r.epochs_done} epochs"] = h
    sec.text("Each run trains the course's Myrtle5 CNN (conv widths c, 2c, 4c, 8c with "
             "BatchNorm and ReLU, max-pools, a linear head); the latest run of each recipe and "
             "width is shown, its test accuracies as mean +- std where runs of the same settings "
             "have other seeds. Time is steady training time (evaluation and the one-time "
             "compile excluded); images/s counts training images; TTA is the test-time average "
             "over the image and its mirror (with --tta-shift s also both moved by +-s pixels, "
             "each mirrored) where the run measured it. " + ACCURACY_NOTE + " " + ERRORS_NOTE)
    sec.add_table(["run", "width", "recipe", "epochs", "test acc", "by", "TTA acc",
                   label(FULL_TRAIN), "train s", "images/s", "device"], rows)
    if len({r.config.get("recipe", "notebook") for r in main}) > 1:
        sec.figure(plots.recipe_curves(histories, figdir / "recipes_compared.png"),
                   "Test error per epoch of each recipe shown in the table.")
    for r in main:
        h = store.read_h5(r.path, prefixes=("history/",)).group("history")
        png = plots.training_curves(h, figdir / f"curves_{r.run_id}.png",
                                    f"Run {r.run_id} (width {r.config.get('width')})",
                                    int(r.config.get("tta_shift", 0)))
        sec.figure(png, f"Training curves of {r.run_id}: {label(TRAIN_RUNNING)} per epoch, "
                        f"{label(TEST)} where measured.")
        sec.text(f"Recipe of {r.run_id}: " + _recipe_text(r.config, r.epochs_done))
    return sec


def _recipe_text(c: dict[str, Any], epochs: int) -> str:
    extra = [f"{k.replace('_', ' ')} {c[k]}" for k in ("cutout", "pad_mode", "crop_pad",
                                                       "alternate_flip", "normalize", "bias",
                                                       "logit_scale", "whiten", "warmup",
                                                       "activation", "dirac",
                                                       "freeze_bn_scale", "bn_bias_lr")
             if k in c and c[k] != TrainConfig.__dataclass_fields__[k].default]
    if c.get("optimizer") == "muon":  # the filters' own step, at its default or not
        fields = TrainConfig.__dataclass_fields__
        extra[:0] = [f"{k.replace('_', ' ')} {c.get(k, fields[k].default)}"
                     for k in ("muon_lr", "muon_momentum")]
    return (f"{c.get('recipe', 'notebook')}: optimizer {c.get('optimizer')}, lr {c.get('lr')}, "
            f"momentum {c.get('momentum')}, batch {c.get('batch_size')}, schedule "
            f"{c.get('schedule')}, augmentation {c.get('augment')}, label smoothing "
            f"{c.get('label_smoothing')}{', ' if extra else ''}{', '.join(extra)}, {epochs} "
            f"epochs on {c.get('train_samples')} images.")


def problem1_section(all_runs: list[runs.RunSummary], figdir: Path) -> Section:
    sec = Section("Problem 1: upside-down images")
    evaluated = [r for r in all_runs if "vflip" in r.eval and "original" in r.eval]
    if not evaluated:
        sec.present = False
        sec.text("No flip evaluation yet. Run `hw0 train` then `hw0 eval --vflip` (it takes the "
                 "most recent run); flip-robust runs: `hw0 train --augment vflip` or "
                 "`hw0 train --objective worst-view`.")
    for r in sorted(evaluated, key=lambda r: r.ended)[-2:]:
        rec = store.read_h5(r.path, prefixes=("eval/",))
        o, v = rec.group("eval/original"), rec.group("eval/vflip")
        acc_o, acc_v = float(o["accuracy"]), float(v["accuracy"])
        sec.text(f"Run {r.run_id} (width {r.config.get('width')}, augmentation "
                 f"{r.config.get('augment')}), evaluated with {o.get('backend')} on "
                 f"{o.get('provider')}: test accuracy {pct(acc_o)} on the original images, "
                 f"{pct(acc_v)} upside down: a drop of {100 * (acc_o - acc_v):.2f} points.")
        pc_o, pc_v = o["per_class_accuracy"], v["per_class_accuracy"]
        order = np.argsort(-(pc_o - pc_v))
        sec.add_table(["class", "original", "upside down", "drop (points)"],
                      [[CIFAR_CLASSES[i], pct(pc_o[i]), pct(pc_v[i]),
                        f"{100 * (pc_o[i] - pc_v[i]):+.1f}"] for i in order])
        png = plots.per_class_views(CIFAR_CLASSES, {"original": pc_o, "upside down": pc_v},
                                    figdir / f"per_class_{r.run_id}.png",
                                    f"Per-class test accuracy, run {r.run_id}")
        sec.figure(png, "Per-class accuracy on original and vertically flipped test images.")
    ranked = runs.rank_by_views([r for r in all_runs if not is_grid(r)
                                 and {"original", "vflip"} <= set(r.figures)])
    if ranked:
        sec.text("Every finished run, ranked by min(original, upside-down) test accuracy (the "
                 "assignment's robustness criterion), with its training procedure. "
                 + ACCURACY_NOTE)
        sec.add_table(["run", "width", "procedure", "original", "upside down", "min", "by"],
                      [[r.run_id, str(r.config.get("width")),
                        f"augment {r.config.get('augment')}, objective "
                        f"{r.config.get('objective')}, {r.epochs_done} ep",
                        pct(r.figures["original"].accuracy), pct(r.figures["vflip"].accuracy),
                        pct(runs.view_robustness(r)), by_label(r.figures["original"])]
                       for r in ranked[:8]])
    return sec


def _latest_linreg(out: Path) -> tuple[Path, Any] | None:
    """The newest readable linreg results file, preferring a `--method all` one."""
    files = sorted((Path(out) / "linreg").glob("*.h5"), key=lambda p: p.stat().st_mtime)
    recs = []
    for p in files:
        try:
            recs.append((p, store.read_h5(p)))
        except Hw0Error as exc:  # unreadable: the others still count
            if isinstance(exc, DamagedFileError):
                warnings.warn(f"skipped {exc}", Hw0Warning, stacklevel=2)
    full = [x for x in recs if x[1].attrs.get("config", {}).get("method") == "all"]
    return (full or recs)[-1] if (full or recs) else None


def problem3_section(out: Path, figdir: Path) -> Section:
    sec = Section("Problem 3: least squares and kernels on MNIST")
    found = _latest_linreg(out)
    if found is None:
        sec.present = False
        sec.text("No least-squares results yet. Run `hw0 linreg --method all`.")
        return sec
    path, rec = found
    s = LinregSummary.from_json(rec.attrs["summary"])
    _linreg_solutions(sec, path, s)
    rid = rec.attrs.get("id", path.stem)
    # drawn afresh from the stored arrays: the figures exist even if plots/ was cleaned
    linreg_plots(s, rec.arrays, figdir, rid)
    sec.figure(figdir / f"linreg_{rid}_spectrum.png", "Singular values of X (log scale) and "
               "the rank tolerance.")
    if s.gd is not None:
        _linreg_gd(sec, s.gd)
    sec.figure(figdir / f"linreg_{rid}_gd_sgd.png", "GD and SGD: train and test MSE, and the "
               "distance to the minimum-norm solution, per iteration.")
    _linreg_findings(sec, s, figdir, rid)
    return sec


def _linreg_solutions(sec: Section, path: Path, s: LinregSummary) -> None:
    sp = s.spectrum
    sec.text(f"From {path.name}: n = {s.n} MNIST training images (seed {s.seed}; the "
             "drawn indices are stored), x = pixels/255 in R^784, y = +1 for odd digits and -1 "
             "for even; test on all 10,000 test images.",
             f"rank(X) = {sp.rank} (numpy's tolerance sigma_max * max(n, d) * eps = "
             f"{sp.tol:.3g}); sigma_max = {sp.sigma_max:.4g}, smallest nonzero sigma = "
             f"{sp.sigma_min_nonzero:.4g}; condition number of X {sp.cond_X:.4g}, of "
             f"X^T X {sp.cond_XtX:.4g}.")
    rows = [[f"min-norm ({how})", f"{r.train_mse:.2e}", f"{r.test_mse:.4g}", pct(r.test_acc),
             f"{r.norm:.4g}"] for how, r in (s.min_norm or {}).items()]
    labels = {"gd": "GD", "sgd": "SGD", "overparam": "W1 b1 (SGD)"}
    rows += [[f"{labels[m]}, {r.iters} steps", f"{r.train_mse:.3g}", f"{r.test_mse:.4g}",
              pct(r.test_acc), f"{r.norm:.4g}"] for m, r in s.solvers().items()]
    if rows:
        sec.add_table(["solution", "train MSE", "test MSE", "test acc", "||b||"], rows)
    if s.min_norm_agreement is not None:
        sec.text("The three minimum-norm solvers agree: relative differences to pinv " + ", ".join(
            f"{k} {v:.1e}" for k, v in s.min_norm_agreement.items()) + ". The minimum-norm "
            "solution interpolates the training set and generalizes poorly (its norm is "
            "driven by the smallest singular values).")


def _linreg_gd(sec: Section, gd: Any) -> None:
    sec.text(f"Gradient descent from b = 0 with step {gd.step:.3g} = 1/L: the error "
             "along singular direction i shrinks by |1 - 2 step sigma_i^2| per iteration. "
             "Predicted vs measured factors:")
    sec.add_table(["mode i", "sigma_i", "predicted", "measured", "iterations for 1e-3"],
                  [[str(m.index), f"{m.sigma:.4g}", format_factor(m.predicted_factor),
                    format_factor(m.measured_factor), f"{m.iters_for_1e3:.3g}"]
                   for m in gd.modes])
    sec.text("The top direction converges in one step, the bottom one needs about "
             "cond(X^T X) iterations: GD (and SGD) stay in the row space of X and head for "
             "the minimum-norm solution, but in any practical number of steps they stop "
             "far from it at a smaller-norm vector that predicts better (implicit "
             "regularization by early stopping).")


def _linreg_findings(sec: Section, s: LinregSummary, figdir: Path, rid: str) -> None:
    said = describe(s)
    if "overparam" in said:
        sec.text(said["overparam"] + " From a small initialization the factorized model "
                 "follows GD's path closely: its end-to-end vector stays near the row space.")
    rf = [said[k] for k in ("rf_rff", "rf_relu") if k in said]
    if rf:
        sec.text(*rf, "The peak at D = n is the interpolation threshold (double descent).")
        sec.figure(figdir / f"linreg_{rid}_random_features.png",
                   "Random features: test MSE against the number of features D.")
    if "kernel" in said:
        pinv = (s.min_norm or {}).get("pinv")
        raw = pinv.test_mse if pinv is not None else float("nan")
        sec.text(said["kernel"] + f" Raw pixels (min-norm linear): test MSE {raw:.4g}.")
        sec.figure(figdir / f"linreg_{rid}_kernel.png",
                   "Exact Gaussian kernel regression: test MSE against the bandwidth.")


def environment_section(all_runs: list[runs.RunSummary], out: Path,
                        preset: dict[str, Any] | None) -> Section:
    sec = Section("Environment and reproducibility")
    envs = {}
    for r in all_runs:
        a = store.read_h5(r.path, attrs_only=True).attrs
        env = a.get("env") or {}
        envs[(env.get("device") or a.get("device"), env.get("torch"), a.get("precision"))] = env
    for p in sorted((Path(out) / "linreg").glob("*.h5")):
        try:
            env = store.read_h5(p, attrs_only=True).attrs.get("env") or {}
        except Hw0Error:  # unreadable: its environment is unknown
            continue
        envs[(env.get("device"), env.get("torch"), "float64")] = env
    if envs:
        sec.add_table(["device", "precision", "torch", "python", "numpy", "CUDA", "cuDNN",
                       "git commit"],
                      [[str(d), str(prec), str(e.get("torch")), str(e.get("python")),
                        str(e.get("numpy")), str(e.get("cuda")), str(e.get("cudnn")),
                        str(e.get("git_commit") or "-")[:10]]
                       for (d, _, prec), e in envs.items()])
    if preset:
        sec.text("Produced by `hw0 all --preset " + str(preset.get("name")) + "`: "
                 + str(preset.get("description", "")))
    lines = [_train_command(r.config) for r in all_runs]
    lines += [f"hw0 eval {r.run_id} --vflip" for r in all_runs if "vflip" in r.eval]
    for p in sorted((Path(out) / "linreg").glob("*.h5")):
        try:
            c = store.read_h5(p, attrs_only=True).attrs.get("config") or {}
        except Hw0Error:  # unreadable (a killed writer's leftover): nothing to cite
            continue
        lines.append(shlex.join(["hw0", "linreg", *linreg_args(c)]))
    lines.append("hw0 report")
    sec.text("Every command behind these results (seeds are part of each; same command, "
             "same run id, same numbers on the CPU). Run them where data/ and artifacts/ "
             "are, or set $HW0_DATA_DIR and $HW0_OUT (each command also takes --data-dir and "
             "--out):")
    sec.blocks.append(Block("text", lines=lines))
    if not all_runs:
        sec.present = False
    return sec


# ---------------------------------------------------------------------------------------------
# rendering


def run_report(cfg: ReportConfig) -> ReportResult:
    """Build every section from the files under `cfg.out` and write the report."""
    bad = [f for f in cfg.formats if f not in FORMATS]
    check(not bad and bool(cfg.formats), f"Unknown report format(s) {', '.join(bad)}; choose "
          "pdf and/or md.")
    out = Path(cfg.out)
    if not out.is_dir():
        raise Hw0UsageError(f"No output folder {out}: run some experiments first (e.g. "
                            "`hw0 all --preset quick`), or point --out at their folder.")
    report_dir = Path(cfg.report_dir or out / "report")
    with new_folder(report_dir / "figures") as figdir:  # none left empty by a failure
        return _write_report(cfg, out, report_dir, figdir)


def _write_report(cfg: ReportConfig, out: Path, report_dir: Path, figdir: Path) -> ReportResult:
    all_runs = runs.list_runs(out)
    in_sweeps = frozenset(sweep_cell_ids(out))  # shown in their sweep's section instead
    sections = [warmup_section(all_runs, figdir, in_sweeps), *sweep_sections(out, figdir),
                problem1_section([r for r in all_runs if r.run_id not in in_sweeps], figdir),
                problem2_section(all_runs, figdir), problem3_section(out, figdir),
                environment_section(all_runs, out, cfg.preset)]
    title = [f"Generated {time.strftime('%Y-%m-%d %H:%M %Z')} from the output folder "
             f"{out.name}/: {len(all_runs)} training runs, "
             f"{len(list((out / 'linreg').glob('*.h5')))} least-squares result files."]
    if cfg.preset:
        title.append(f"Preset '{cfg.preset.get('name')}': {cfg.preset.get('description')}")
    pdf = md = None
    pages = 0
    if "pdf" in cfg.formats:
        pdf = report_dir / "report.pdf"
        pages = render_pdf(sections, pdf, title)
    if "md" in cfg.formats:
        md = report_dir / "report.md"
        render_md(sections, md, title)
    figures = [b.image for s in sections for b in s.blocks if b.kind == "figure" and b.image]
    return ReportResult(pdf, md, {s.title: s.present for s in sections}, pages, figures)
