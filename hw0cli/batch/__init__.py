"""Many training runs: the generic cell runner (`cells`: a cell's command line, state and
parallel lanes), the width x noise grid (`grid`), the N-dimensional sweep (`sweep`), the named
sweeps (`presets`) and Slurm arrays (`slurm`).

The face lists the names that mean one thing; `grid` and `sweep` both define `cells`, `cell_at`
and `log_args`, so those are imported from the module meant. It is lazy like the others: a name
loads its module on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from hw0cli.lazy import face

if TYPE_CHECKING:
    from hw0cli.batch.cells import CellRun as CellRun
    from hw0cli.batch.cells import CellState as CellState
    from hw0cli.batch.cells import cell_state as cell_state
    from hw0cli.batch.cells import run_configs as run_configs
    from hw0cli.batch.cells import train_args as train_args
    from hw0cli.batch.grid import GridConfig as GridConfig
    from hw0cli.batch.grid import grid_commands as grid_commands
    from hw0cli.batch.grid import grid_report as grid_report
    from hw0cli.batch.grid import grid_status as grid_status
    from hw0cli.batch.grid import run_cells as run_cells
    from hw0cli.batch.presets import SWEEP_PRESETS as SWEEP_PRESETS
    from hw0cli.batch.presets import with_preset as with_preset
    from hw0cli.batch.slurm import SlurmOptions as SlurmOptions
    from hw0cli.batch.sweep import Axis as Axis
    from hw0cli.batch.sweep import SweepConfig as SweepConfig
    from hw0cli.batch.sweep import parse_axis as parse_axis
    from hw0cli.batch.sweep import run_sweep as run_sweep
    from hw0cli.batch.sweep import sweep_commands as sweep_commands
    from hw0cli.batch.sweep import sweep_status as sweep_status

_EXPORTS = {
    "CellRun": "cells",
    "CellState": "cells",
    "cell_state": "cells",
    "run_configs": "cells",
    "train_args": "cells",
    "GridConfig": "grid",
    "grid_commands": "grid",
    "grid_report": "grid",
    "grid_status": "grid",
    "run_cells": "grid",
    "Axis": "sweep",
    "SweepConfig": "sweep",
    "parse_axis": "sweep",
    "run_sweep": "sweep",
    "sweep_commands": "sweep",
    "sweep_status": "sweep",
    "SWEEP_PRESETS": "presets",
    "with_preset": "presets",
    "SlurmOptions": "slurm",
}
__all__ = sorted(_EXPORTS)

__getattr__ = face(__name__, _EXPORTS)
