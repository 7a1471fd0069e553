"""A grid or sweep as a Slurm job array: a batch script sized to its cells, and its submission.

Task i of the array runs cell i (`hw0 grid run --index i ...` / `hw0 sweep run --index i ...`),
an idempotent `hw0 train`: submitting the same script again finishes what is missing (finished
cells exit at once, interrupted ones resume). The resources are options, never assumed: a
CPU-only cluster rejects any GPU request ("Invalid generic resource"), so `gpus = 0` requests
none.

Paths are quoted wherever they appear: shell-quoted in the script's commands, and in the
`#SBATCH --output` line quoted as sbatch reads those lines (double quotes, backslash escapes,
`%%` for a literal `%` of Slurm's filename patterns). A newline cannot be quoted there (sbatch
reads directives line by line), so an output folder with one is refused.
"""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from hw0cli import atomic
from hw0cli.errors import Hw0Error, check

_TIME = re.compile(r"^(\d+-)?\d{1,3}(:\d{2}){0,2}$")  # Slurm's [D-]HH[:MM[:SS]] and MM


# per task, for grids and sweeps alike: a grid cell trained to 1% train error on a CPU can take
# an hour and more (docs/benchmarks.md: c = 64 on 2,000 images, 473 s on 2 cores; on 50,000
# images 25x that)
SLURM_TIME = "02:00:00"


@dataclass(frozen=True)
class SlurmOptions:
    gpus: int = 0  # GPUs per task (--gres=gpu:N); 0 requests none
    cpus_per_task: int = 2
    time: str = SLURM_TIME  # per task, as Slurm spells it
    partition: str | None = None
    parallel: int | None = None  # at most this many tasks at once (--array=0-N%K)
    job_name: str = "hw0"


def check_options(o: SlurmOptions) -> None:
    check(o.gpus >= 0, f"--gpus must be 0 or more (got {o.gpus}).")
    check(o.cpus_per_task >= 1, f"--cpus-per-task must be at least 1 (got {o.cpus_per_task}).")
    check(bool(_TIME.match(o.time)), f"--time takes Slurm's [D-]HH:MM:SS (got '{o.time}').")
    check(o.parallel is None or o.parallel >= 1, "--parallel must be at least 1.")
    check(bool(re.match(r"^[A-Za-z0-9._-]+$", o.job_name)), "The job name may use letters, "
          "digits, '.', '_' and '-' only.")
    check(o.partition is None or bool(re.match(r"^[A-Za-z0-9._,-]+$", o.partition)),
          f"--partition takes Slurm partition names (letters, digits, '.', '_', '-', joined by "
          f"','; got {o.partition!r}).")


def directive_path(path: Path) -> str:
    """`path` quoted for an #SBATCH line: sbatch splits those lines at blanks, takes `#` as
    the start of a comment and `%` as a filename pattern; inside double quotes a backslash
    escapes the next character."""
    text = str(path)
    check("\n" not in text, f"The output folder {text!r} contains a newline, which an "
          "#SBATCH line cannot hold (sbatch reads its directives line by line). Choose an --out "
          "without one.")
    text = text.replace("\\", "\\\\").replace('"', '\\"').replace("%", "%%")
    return f'"{text}"'


def hw0_command() -> list[str]:
    """How a task starts hw0: this interpreter (the cluster's nodes share its file system)."""
    return [sys.executable, "-m", "hw0cli"]


def script(kind: str, run_args: list[str], n_cells: int, o: SlurmOptions,
           log_dir: Path) -> str:
    """The sbatch script for a grid or sweep (`kind`) of `n_cells` cells."""
    check_options(o)
    check(n_cells >= 1, "There are no cells to submit.")
    array = f"0-{n_cells - 1}" + (f"%{o.parallel}" if o.parallel else "")
    lines = ["#!/bin/bash",
             f"# hw0 {kind}: {n_cells} cells as a Slurm job array; task i runs cell i.",
             "# Submitting it again finishes what is missing: finished cells exit at once.",
             f"#SBATCH --job-name={o.job_name}", f"#SBATCH --array={array}",
             f"#SBATCH --cpus-per-task={o.cpus_per_task}", f"#SBATCH --time={o.time}",
             f"#SBATCH --output={directive_path(log_dir)}/%x-%A_%a.out"]
    if o.gpus:
        lines.append(f"#SBATCH --gres=gpu:{o.gpus}")
    if o.partition:
        lines.append(f"#SBATCH --partition={o.partition}")
    cmd = shlex.join([*hw0_command(), kind, "run", *run_args])
    lines += ["set -euo pipefail", "export OMP_NUM_THREADS=${SLURM_CPUS_PER_TASK:-1}",
              f'{cmd} --index "$SLURM_ARRAY_TASK_ID"', ""]
    return "\n".join(lines)


def write(path: Path, text: str) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic.write_text(path, text)
    path.chmod(0o755)
    return path


def submit(path: Path) -> str:
    """`sbatch` the script; its job id."""
    sbatch = shutil.which("sbatch")
    if sbatch is None:
        raise Hw0Error("sbatch is not on PATH: submit from a Slurm login node, or run the "
                       f"script's cells another way (`bash {path}` runs one, as task 0 needs "
                       "SLURM_ARRAY_TASK_ID).")
    proc = subprocess.run([sbatch, "--parsable", str(path)], capture_output=True, text=True)
    if proc.returncode != 0:
        raise Hw0Error(f"sbatch rejected {path}: {proc.stderr.strip() or proc.stdout.strip()}"
                       " (a CPU-only cluster rejects GPU requests: use --gpus 0).")
    return proc.stdout.strip().split(";")[0]
