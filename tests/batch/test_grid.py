import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from hw0cli import runs, store
from hw0cli.batch import cells, grid
from hw0cli.errors import Hw0Error
from hw0cli.train.config import run_id_for
from hw0cli.train.run import run_train
from tests.helpers import config_from_train_args

runner = CliRunner()
ROOT = Path(__file__).resolve().parents[2]


def opts(cifar_root, out):
    return ["--widths", "2,4", "--noise", "0,1", "--train-samples", "200", "--batch-size", "50",
            "--epochs", "2", "--precision", "fp32", "--no-compile", "--data-dir",
            str(cifar_root), "--out", str(out)]


def test_expansion_and_defaults(tmp_path):
    cfg = grid.GridConfig(data_dir=tmp_path, out=tmp_path)
    cs = grid.cells(cfg)
    assert [(c.width, c.noise) for c in cs] == [(4, 0.0), (4, 0.5), (4, 1.0), (64, 0.0),
                                               (64, 0.5), (64, 1.0)]
    assert all(c.optimizer == "adam" and c.until_train_error == 0.01 for c in cs)
    assert len({run_id_for(c) for c in cs}) == 6
    assert grid.parse_list("4,64", int, "--widths") == (4, 64)
    for bad in ("4,,64", "4,x", "4,4"):
        with pytest.raises(Hw0Error):
            grid.parse_list(bad, int, "--widths")


def test_fast_recipe_cells_at_each_width(tmp_path):
    """A grid of the fast recipe runs the recipe's settings of each width, and each cell's
    command line runs exactly that cell (same run id)."""
    cs = grid.cells(grid.GridConfig(widths=(16, 32, 64), noises=(0.0,), recipe="fast",
                                    data_dir=tmp_path, out=tmp_path))
    assert [(c.lr, c.logit_scale, c.batch_size) for c in cs] == [
        (0.5657, 0.25, 256), (0.5657, 0.1768, 512), (0.4, 0.125, 512)]
    for c in cs:
        args = cells.train_args(c)
        assert "--lr" not in args
        assert run_id_for(config_from_train_args(args)) == run_id_for(c)


def test_lock_refuses_second_writer(cifar_root, tmp_path):
    c = grid.cells(grid.GridConfig(widths=(2,), noises=(0.0,), data_dir=cifar_root,
                                   out=tmp_path, train_options=(("train_samples", 100),
                                                                ("batch_size", 50))))[0]
    path = runs.run_path(tmp_path, run_id_for(c))
    with store.lock(path), pytest.raises(Hw0Error, match="being written by pid"):
        run_train(c)
    assert store.is_locked(path) is False


def test_grid_sh_syntax_and_dry_run(tmp_path):
    for script in ("grid.sh", "grid.slurm"):
        assert subprocess.run(["bash", "-n", str(ROOT / "scripts" / script)]).returncode == 0
    env = {**os.environ, "HW0": f"{sys.executable} -m hw0cli"}
    r = subprocess.run(["bash", str(ROOT / "scripts" / "grid.sh"), "-j", "2", "--dry-run",
                        "--train-samples", "2000", "--out", str(tmp_path)],
                       capture_output=True, text=True, env=env)
    assert r.returncode == 0, r.stderr
    lines = [ln for ln in r.stdout.splitlines() if ln.startswith("cell ")]
    assert len(lines) == 6 and "--width 64" in lines[0]  # widest first
    assert all("--train-samples 2000" in ln for ln in lines)


def test_slurm_scripts_size_threads_from_the_cpus_slurm_gives(cifar_root, tmp_path):
    """The hand-written script asks for no fixed CPU count (a count larger than the cluster's
    nodes waits forever) and runs each cell on the CPUs Slurm gave its task; the generated one
    asks for --cpus-per-task and uses them."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake = bin_dir / "hw0"  # says what the script ran, and on how many threads
    fake.write_text('#!/bin/sh\necho "threads=$OMP_NUM_THREADS args=$*"\n')
    fake.chmod(0o755)
    script = ROOT / "scripts" / "grid.slurm"
    assert "#SBATCH --cpus-per-task" not in script.read_text()
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "SLURM_ARRAY_TASK_ID": "4"}
    env.pop("SLURM_CPUS_PER_TASK", None)
    asked = subprocess.run(["bash", str(script), "--out", "o"], capture_output=True, text=True,
                           env={**env, "SLURM_CPUS_PER_TASK": "3"}, check=True).stdout
    bound = subprocess.run(["bash", str(script)], capture_output=True, text=True, env=env,
                           check=True).stdout
    nproc = subprocess.run(["nproc"], capture_output=True, text=True, check=True).stdout.strip()
    assert asked.strip() == "threads=3 args=grid run --index 4 --out o"
    assert bound.strip() == f"threads={nproc} args=grid run --index 4"
    from hw0cli.cli import app
    r = runner.invoke(app, ["grid", "slurm", *opts(cifar_root, tmp_path), "--cpus-per-task", "3"])
    assert r.exit_code == 0, r.output
    text = next((tmp_path / "slurm").glob("*.sbatch")).read_text()
    assert "#SBATCH --cpus-per-task=3\n" in text
    assert "export OMP_NUM_THREADS=${SLURM_CPUS_PER_TASK:-1}\n" in text


# ---- hostile paths, concurrent runs ----------------------------------------------------------

# a folder name that breaks unquoted commands: a space, quotes, ';', '#', '$( )', backquotes, a
# Slurm filename pattern, and (HOSTILE_NL) a newline
HOSTILE = "o u't\";touch PWNED;#$(touch PWNED2)`touch PWNED3`%j"
HOSTILE_NL = HOSTILE + "\nx"


def hw0_on_path(tmp_path: Path) -> dict[str, str]:
    """An environment whose PATH has an `hw0` that runs this checkout's hw0cli."""
    import shlex
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    shim = bin_dir / "hw0"
    shim.write_text(f'#!/bin/sh\nexec {shlex.quote(sys.executable)} -m hw0cli "$@"\n')
    shim.chmod(0o755)
    return {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}",
            "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}


def readme_pipeline(kind: str) -> str:
    """What the docs (docs/grid-and-sweep.md) pipe `hw0 <kind> list --null ...` into."""
    line = next(ln for ln in (ROOT / "docs" / "grid-and-sweep.md").read_text().splitlines()
                if ln.startswith(f"hw0 {kind} list --null"))
    return line.split("|", 1)[1].split("  #")[0].strip()


def assert_ran_exactly(tmp_path: Path, out: Path, n_cells: int) -> None:
    """The cells' run files are there, finished; nothing a path smuggled in ran."""
    files = sorted((out / "runs").glob("*.h5"))
    assert len(files) == n_cells, files
    assert all(store.read_h5(f, attrs_only=True).attrs["status"] == "finished" for f in files)
    assert not [p for p in tmp_path.rglob("PWNED*")]


def hostile_args(cifar_root, out) -> list[str]:
    from tests.helpers import tiny_train_args
    return ["--widths", "2", "--noise", "0,1", *tiny_train_args(cifar_root, out)]


@pytest.mark.slow
def test_readme_pipeline_keeps_hostile_paths_whole(cifar_root, tmp_path):
    import shlex
    env = hw0_on_path(tmp_path)
    out = tmp_path / HOSTILE_NL
    pipeline = readme_pipeline("grid")
    assert pipeline.startswith("xargs -0")
    cmd = shlex.join(["hw0", "grid", "list", "--null", *hostile_args(cifar_root, out)])
    r = subprocess.run(["bash", "-c", f"set -o pipefail; {cmd} | {pipeline}"], cwd=tmp_path,
                       env=env, capture_output=True, text=True, timeout=1800)
    assert r.returncode == 0, r.stdout + r.stderr
    assert_ran_exactly(tmp_path, out, 2)


@pytest.mark.slow
def test_grid_sh_keeps_hostile_paths_whole(cifar_root, tmp_path):
    env = {**hw0_on_path(tmp_path), "HW0": str(tmp_path / "bin" / "hw0")}
    out = tmp_path / HOSTILE_NL
    r = subprocess.run(["bash", str(ROOT / "scripts" / "grid.sh"), "-j", "2",
                        *hostile_args(cifar_root, out)], cwd=tmp_path, env=env,
                       capture_output=True, text=True, timeout=1800)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "2 cells in 2 lane(s)" in r.stdout
    assert_ran_exactly(tmp_path, out, 2)


def test_slurm_script_quotes_paths_and_refuses_a_newline(cifar_root, tmp_path):
    from hw0cli.cli import app
    r = runner.invoke(app, ["grid", "slurm", *hostile_args(cifar_root, tmp_path / HOSTILE_NL)])
    assert r.exit_code == 2 and "newline" in r.output and "Traceback" not in r.output
    out = tmp_path / HOSTILE
    r = runner.invoke(app, ["grid", "slurm", *hostile_args(cifar_root, out)])
    assert r.exit_code == 0, r.output
    script = next((out / "slurm").glob("*.sbatch"))
    assert subprocess.run(["bash", "-n", str(script)]).returncode == 0
    text = script.read_text()
    log_dir = str((out / "slurm").resolve()).replace('"', '\\"').replace("%", "%%")
    assert f'#SBATCH --output="{log_dir}"/%x-%A_%a.out\n' in text
    assert not [p for p in tmp_path.rglob("PWNED*")]


@pytest.mark.slow
def test_slurm_script_body_runs_its_cell_with_hostile_paths(cifar_root, tmp_path):
    """What a Slurm task runs, run by bash here (the real Slurm: tests/test_slurm.py)."""
    from hw0cli.cli import app
    out = tmp_path / HOSTILE
    assert runner.invoke(app, ["grid", "slurm", *hostile_args(cifar_root, out)]).exit_code == 0
    script = next((out / "slurm").glob("*.sbatch"))
    for task in ("0", "1"):
        r = subprocess.run(["bash", str(script)], cwd=tmp_path, capture_output=True, text=True,
                           env={**os.environ, "SLURM_ARRAY_TASK_ID": task}, timeout=900)
        assert r.returncode == 0, r.stdout + r.stderr
    assert_ran_exactly(tmp_path, out, 2)


@pytest.mark.slow
def test_a_cell_held_by_another_process_is_not_a_failure(cifar_root, tmp_path):
    """A cell another process trains is "running in another process": not run here, not a
    failure (exit 0); a later run trains it."""
    from hw0cli.cli import app
    args = hostile_args(cifar_root, tmp_path)
    ids = [c["run_id"] for c in json.loads(
        runner.invoke(app, ["grid", "list", "--json", *args]).stdout)]
    held = runs.run_path(tmp_path, ids[0])
    with store.lock(held):
        r = runner.invoke(app, ["grid", "run", *args])
    assert r.exit_code == 0, r.output
    assert "1 of 2 cells were running in another process (cells 0)" in " ".join(r.output.split())
    assert not held.exists() and runs.run_path(tmp_path, ids[1]).exists()
    r = runner.invoke(app, ["grid", "run", *args])
    assert r.exit_code == 0 and held.exists(), r.output


@pytest.mark.slow
def test_two_grid_runs_on_one_folder_share_the_cells(cifar_root, tmp_path):
    """Two `hw0 grid run` at once on one folder: both exit 0; every cell trained once."""
    from tests.helpers import tiny_train_args
    args = [sys.executable, "-m", "hw0cli", "grid", "run", "--widths", "2,3", "--noise", "0,1",
            *tiny_train_args(cifar_root, tmp_path)]
    procs = [subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              text=True) for _ in range(2)]
    outs = [p.communicate(timeout=1800)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    assert not any("failed" in o for o in outs), outs
    files = sorted((tmp_path / "runs").glob("*.h5"))
    assert len(files) == 4
    for f in files:  # trained once, start to end: never resumed, never retrained
        a = store.read_h5(f, attrs_only=True).attrs
        assert a["status"] == "finished" and a["epochs_done"] == 1 and "resumed_at" not in a
