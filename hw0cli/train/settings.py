"""A stored run's settings read back as `hw0 train` options: what sets a run apart from its
recipe (`distinct_settings`, for the run list and the report), and the options the runs of a
folder were made with when a grid's or sweep's cells find none of theirs (`other_settings_hint`).
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from typing import Any

from hw0cli.errors import Hw0Error
from hw0cli.options import command_args
from hw0cli.runs import list_runs, runs_dir
from hw0cli.train.config import TrainConfig, make_config, science_of


def distinct_settings(config: dict[str, Any]) -> list[str]:
    """The `hw0 train` options in which a run's science settings differ from its recipe's
    defaults at its width (width, noise and seed aside: they are columns of their own)."""
    recipe = config.get("recipe", "notebook")
    try:
        known = science_of(config)
        base = make_config(recipe, width=known["width"])
        cfg = dataclasses.replace(base, **{k: v for k, v in known.items()
                                           if k in TrainConfig.__dataclass_fields__})
        args = command_args(cfg, base, skip=("width", "noise", "seed", "recipe"))
    except (TypeError, KeyError, ValueError, Hw0Error):  # a file from an older hw0
        return []
    return [*(["--recipe", recipe] if recipe != "notebook" else []), *args]


def other_settings_hint(cells: list[Any], kind: str) -> str | None:
    """Where none of a grid's (or sweep's) cells has a run file but runs of the same shape
    are there: the options those runs were made with, to add to the command. `cells`: the
    cells' TrainConfigs."""
    if not cells:
        return None
    base = cells[0]
    tried: Counter[tuple[str, ...]] = Counter()
    for r in list_runs(base.out):
        known = {k: v for k, v in science_of(r.config).items()
                 if k in TrainConfig.__dataclass_fields__ and k not in ("width", "noise", "seed")}
        if bool(known.get("until_train_error")) != bool(base.until_train_error):
            continue  # not a run of this kind of grid
        try:
            args = command_args(dataclasses.replace(base, **known), base,
                                skip=("width", "noise", "seed", "recipe"))
        except (TypeError, Hw0Error):
            continue
        if args:
            tried[tuple(args)] += 1
    if not tried:
        return None
    found = "; ".join(f"{n} with {' '.join(args)}" for args, n in tried.most_common(3))
    return (f"No cell of this {kind} has a run file, but runs under {runs_dir(base.out)} were "
            f"made with other options ({found}). Give `hw0 {kind}` the options the runs were "
            f"made with (every command of one {kind} needs the same ones).")
