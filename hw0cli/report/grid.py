"""The report's Problem 2 section: the random-labels grid's runs, grouped by their shared
settings, as a table of (width, p) over the seeds, the capacity note and the two figures."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from hw0cli import plots, runs, store
from hw0cli.batch.grid import GridRow
from hw0cli.choices import RECIPES
from hw0cli.models import count_parameters, make_cnn
from hw0cli.quantities import FULL_TRAIN, TEST, label
from hw0cli.report.notes import is_grid, pct, spread, test_points
from hw0cli.report.render import Section
from hw0cli.train import WIDTH_SCALED, TrainConfig, recipe_settings, science_of


def problem2_section(all_runs: list[runs.RunSummary], figdir: Path) -> Section:
    sec = Section("Problem 2: random labels")
    grid_runs = [r for r in all_runs if is_grid(r) and r.status == "finished"]
    if not grid_runs:
        sec.present = False
        sec.text("No grid runs yet. Run the grid with `scripts/grid.sh -j 2 --train-samples "
                 "2000` (CPU) or `hw0 grid run --jobs 1` (GPU), then `hw0 report`.")
        return sec
    settings, ordered, curves = _grid_rows(grid_runs)
    sec.text(f"Myrtle5 trained on {settings.get('train_samples')} CIFAR-10 images whose labels "
             f"were replaced with probability p by uniform draws, until the {label(FULL_TRAIN)}"
             f" (eval mode, on the labels trained on) is <= "
             f"{pct(settings.get('until_train_error'))}"
             f" or stops improving ({settings.get('patience')} epochs), at most "
             f"{settings.get('epochs')} epochs; optimizer {settings.get('optimizer')}, lr "
             f"{settings.get('lr')}, batch {settings.get('batch_size')}. Test labels are "
             "never changed, so chance is 90% test error. Errors over several seeds: mean +- std.")
    sec.add_table(["width", "p", "seeds", label(FULL_TRAIN), label(TEST), "epochs",
                   "train s"],
                  [[str(r.width), f"{r.noise:g}", str(len(r.seeds)),
                    spread(r.train_err, count=False), spread(r.test_err, count=False),
                    f"{np.mean(r.epochs):.0f}", f"{np.mean(r.seconds):.0f}"] for r in ordered])
    n = int(settings.get("train_samples") or 50_000)
    bits = n * math.log2(10)
    caps = [f"c = {w} has {count_parameters(make_cnn(w)):,} parameters"
            for w in sorted({r.width for r in ordered})]
    sec.text(f"Capacity: {'; '.join(caps)}; {n:,} uniformly random labels carry n log2(10) = "
             f"{bits:,.0f} bits. A net with about as many parameters as those bits can often "
             "memorize them given enough epochs, so on small subsets even the narrow net may "
             "interpolate p = 1; the width contrast of the assignment needs the full 50,000 "
             "images (`hw0 all --preset full`).")
    sec.figure(plots.grid_error_vs_noise(ordered, figdir / "grid_error_vs_noise.png"),
               f"Final {label(FULL_TRAIN)} and {label(TEST)} against the label-noise "
               "probability p.")
    sec.figure(plots.grid_curves(curves, figdir / "grid_learning_curves.png"),
               "Learning curves of each cell: " + test_points(grid_runs, n))
    return sec


def _grid_rows(grid_runs: list[runs.RunSummary]) -> tuple[dict[str, Any], list[Any], dict]:
    """The largest group of grid runs sharing every setting but width, noise and seed: its
    settings, one row per (width, p) over the seeds, and each run's history."""
    groups: dict[str, list[runs.RunSummary]] = {}
    for r in grid_runs:
        groups.setdefault(json.dumps(_grid_settings(r.config), sort_keys=True), []).append(r)
    key, members = max(groups.items(), key=lambda kv: len(kv[1]))
    rows: dict[tuple[int, float], GridRow] = {}
    curves = {}
    for r in members:
        c = r.config
        row = rows.setdefault((c["width"], c["noise"]), GridRow(c["width"], c["noise"], [], [],
                                                                [], [], [], 0))
        h = store.read_h5(r.path, prefixes=("history/",)).group("history")
        row.seeds.append(c["seed"])
        row.train_err.append(runs.last_finite(h["train_eval_err"], r.train_err))
        row.test_err.append(r.test_err)
        row.epochs.append(r.epochs_done)
        row.seconds.append(r.seconds)
        curves[(c["width"], c["noise"], c["seed"])] = h
    return json.loads(key), [rows[k] for k in sorted(rows)], curves


def _grid_settings(config: dict[str, Any]) -> dict[str, Any]:
    """A grid run's settings but its cell (width, noise, seed); a setting the recipe derives
    from the width (the fast recipe's lr) counts as the recipe's when it is the recipe's."""
    science = science_of(config)
    recipe = config.get("recipe", "notebook")
    own = recipe_settings(recipe, science["width"]) if recipe in RECIPES else {}
    out = {k: "the recipe's at each width" if k in WIDTH_SCALED and own.get(k) == v else v
           for k, v in science.items() if k not in ("width", "noise", "seed")}
    if recipe == "fast":  # compared whole: a later field at its default is not in science
        fields = TrainConfig.__dataclass_fields__  # (the muon lr at width 64, where SGD runs)
        for k in WIDTH_SCALED:
            v = config.get(k, fields[k].default)
            out[k] = "the recipe's at each width" if own.get(k, fields[k].default) == v else v
    return out
