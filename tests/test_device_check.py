"""scripts/device_check.sh in --cpu-smoke mode: every step of the GPU check at toy sizes."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_device_check_cpu_smoke(tmp_path):
    env = {**os.environ, "OUT": str(tmp_path), "PYTHON": sys.executable,
           "EXPLORE": "base:|alt:--alternate-flip"}
    # a hang guard only: the smoke's steps take many times longer on a loaded CPU
    r = subprocess.run(["bash", str(ROOT / "scripts" / "device_check.sh"), "--cpu-smoke"],
                       capture_output=True, text=True, env=env, timeout=6000)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-2000:]
    table = (tmp_path / "table.txt").read_text()
    for metric in ("notebook recipe, cold cache", "notebook recipe, warm cache",
                   "fast recipe (as committed), 1 epochs seed 0",
                   "fast recipe --alternate-flip, 1 epochs seed 0",
                   "page recipe, 1 epochs seed 1", "train images/s",
                   "hw0 eval --flip (defaults)", "flip eval", "Gaussian KRR",
                   "ortgpu: hw0 eval --flip (defaults, again): images/s",
                   "ortgpu: hw0 eval --flip --backend onnxruntime --provider cpu: images/s",
                   "ortgpu: hw0 eval --flip --backend onnxruntime --provider cuda: did not run",
                   "ortgpu: flip eval 20k images/s: onnxruntime CPU fp32",
                   "hw0 all --preset quick: wall from a cold process"):
        assert metric in table, table
    best = "(as committed)" if "best variant of the fast recipe at seed 0: base" in r.stdout \
        else "--alternate-flip"
    assert f"fast recipe {best}, 1 epochs over 2 seeds" in table  # the best, on every seed
    assert "cut short at the deadline" in table  # the last step was cut; the table still came
    assert "0 failed step(s)" in r.stdout


def test_device_check_rejects_bad_groups_before_running(tmp_path):
    for args in (["--only"], ["--only", ","], ["--only", "notebook,,bench"],
                 ["--only", "notebook,foo"], ["--frobnicate"]):
        r = subprocess.run(["bash", str(ROOT / "scripts" / "device_check.sh"), *args],
                           capture_output=True, text=True, timeout=60,
                           env={**os.environ, "OUT": str(tmp_path)})
        assert r.returncode == 2, (args, r.stdout, r.stderr)
        assert "device_check.sh:" in r.stderr and r.stdout == ""
    assert list(tmp_path.iterdir()) == []  # nothing ran, nothing written


def test_device_check_stops_when_hw0_does_not_import(tmp_path):
    """A package missing on the device image (annotated_types was) fails every step the same
    way: the script says so once and exits 2 instead of spending the call."""
    fake = tmp_path / "fake"
    fake.mkdir()
    (fake / "annotated_types.py").write_text("raise ImportError('not on this image')\n")
    wrapper = tmp_path / "python"
    wrapper.write_text(f'#!/bin/sh\nPYTHONPATH="{fake}:$PYTHONPATH" exec "{sys.executable}" "$@"\n')
    wrapper.chmod(0o755)
    r = subprocess.run(["bash", str(ROOT / "scripts" / "device_check.sh"), "--cpu-smoke"],
                       capture_output=True, text=True, timeout=1200,
                       env={**os.environ, "OUT": str(tmp_path / "out"), "PYTHON": str(wrapper)})
    assert r.returncode == 2, r.stdout[-2000:] + r.stderr[-2000:]
    assert "hw0 does not import here" in r.stderr
    assert "not on this image" in (tmp_path / "out" / "imports.log").read_text()
    assert not (tmp_path / "out" / "train_notebook_s0.log").exists()  # nothing else ran


@pytest.mark.slow
def test_device_check_compare_group_tabulates_the_arms_and_the_verdict(tmp_path):
    """`--only compare`: every arm over the seeds, seeds interleaved, then mean +- std per arm,
    the fast arms' gap to the page control and issue 25's verdict rows."""
    env = {**os.environ, "OUT": str(tmp_path), "PYTHON": sys.executable,
           "CMP_ARMS": "page:--recipe page|fast:--recipe fast"}
    r = subprocess.run(["bash", str(ROOT / "scripts" / "device_check.sh"), "--cpu-smoke",
                        "--only", "compare"], capture_output=True, text=True, env=env,
                       timeout=3000)  # a hang guard only
    assert r.returncode == 0 and "0 failed step(s)" in r.stdout, r.stdout[-3000:] + r.stderr
    ran = [ln.split()[1] for ln in r.stdout.splitlines() if ln.startswith("== train_")]
    assert ran == ["train_cmp-page_s0", "train_cmp-fast_s0", "train_cmp-page_s1",
                   "train_cmp-fast_s1"]
    table = (tmp_path / "table.txt").read_text()
    assert "compare: page control, test acc %" in table and "(n=2)" in table
    assert "compare page (--recipe page) over 2 seeds" in table
    gap = next(ln for ln in table.splitlines() if "compare: fast, 1 epochs" in ln)
    assert "page " in gap and " points" in gap
    assert "compare: fast: TTA mean >= page + 2.5 in <= 10 s" in table
