"""Many training runs: the generic cell runner (`cells`: a cell's command line, state and
parallel lanes), the width x noise grid (`grid`), the N-dimensional sweep (`sweep`) and Slurm
arrays (`slurm`). Grid and sweep share names (`cells`, `cell_at`, `log_args`), so callers import
from those modules by name."""
