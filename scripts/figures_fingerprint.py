"""Every number the figure-producing commands give on small synthetic data, as one JSON file;
with --check, the differences from a baseline. A developer check that a move of code (issue 23's
restructure) changes no result:

    python scripts/figures_fingerprint.py OUT.json [--check tests/fixtures/figures_da7b9d5.json]

It runs, on the CPU with fixed seeds, in a temporary folder, through the command line (typer's
CliRunner, in this process): a tiny `hw0 train` (with TTA), `hw0 runs history`, `hw0 export`,
`hw0 eval` (original, vflip, hflip; onnxruntime and torch), tiny `hw0 grid run/report` and
`hw0 sweep run/report` cells, `hw0 linreg` with every method (the kernels included), and
`hw0 report` (the numbers of report.md, the names of its figures). Timings, dates and paths are
left out. There is no probe command to run: the precision probe only times candidates.

The baseline tests/fixtures/figures_da7b9d5.json was written by main at da7b9d5. Its floats are
only comparable on the same machine with the same library versions (torch, numpy, onnxruntime,
BLAS): compare there, before and after a move, so it is not a CI test. --check compares integers
and strings exactly and floats to a relative 1e-9, prints each difference and exits 1 on any.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

# keys whose values are timings, dates, paths or machine load, not results
VOLATILE = re.compile(r"(^|_)(seconds|s|time|started|ended|created|path|plot|plots|dir|file|"
                      r"one_time|images_per_s|eta|env|device|backend_reason|resumed_at)$")
REL = 1e-9


def clean(value: Any, tmp: str) -> Any:
    """`value` without volatile keys, with the temporary folder written as <tmp>."""
    if isinstance(value, dict):
        return {k: clean(v, tmp) for k, v in value.items() if not VOLATILE.search(str(k))}
    if isinstance(value, (list, tuple)):
        return [clean(v, tmp) for v in value]
    if isinstance(value, str):
        return value.replace(tmp, "<tmp>")
    return value


class Cli:
    """`hw0 ARGS` in this process; the output parsed as JSON where asked."""

    def __init__(self, tmp: Path) -> None:
        from typer.testing import CliRunner

        from hw0cli.cli import app
        self.app, self.runner, self.tmp = app, CliRunner(), str(tmp)

    def __call__(self, *args: object, as_json: bool = True) -> Any:
        r = self.runner.invoke(self.app, [str(a) for a in args])
        if r.exit_code != 0:
            raise SystemExit(f"hw0 {' '.join(map(str, args))} failed ({r.exit_code}):\n"
                             f"{r.output}{r.exception!r}")
        return clean(json.loads(r.stdout), self.tmp) if as_json else r.stdout


def train_part(hw0: Cli, data: Path, out: Path) -> dict:
    common = ["--device", "cpu", "--precision", "fp32", "--no-compile", "--data-dir", data,
              "--out", out]
    res = {"train": hw0("train", "--width", 4, "--epochs", 2, "--batch-size", 50, "--lr",
                        0.05, "--train-samples", 500, "--seed", 0, "--tta", *common, "--json")}
    run_id = res["train"]["run_id"]
    res["history"] = hw0("runs", "history", run_id, "--json", "--out", out)
    res["export"] = hw0("export", run_id, "--json", "--data-dir", data, "--out", out)
    res["eval_onnxruntime"] = hw0("eval", run_id, "--vflip", "--hflip", "--backend",
                                  "onnxruntime", "--provider", "cpu", "--json", "--data-dir",
                                  data, "--out", out)
    res["eval_torch"] = hw0("eval", run_id, "--vflip", "--hflip", "--backend", "torch",
                            "--device", "cpu", "--no-plot", "--json", "--data-dir", data,
                            "--out", out)
    res["runs"] = hw0("runs", "--json", "--out", out)
    return res


def batch_part(hw0: Cli, data: Path, out: Path) -> dict:
    from tests.helpers import tiny_train_args
    cell = tiny_train_args(data, out, samples=200)
    grid = ["--widths", "2,4", "--noise", "0,1", *cell]
    sweep = ["--axis", "lr=0.03,0.1", "--axis", "width=2", "--name", "fingerprint", *cell]
    hw0("grid", "run", *grid, as_json=False)
    hw0("sweep", "run", *sweep, as_json=False)
    return {"grid_list": hw0("grid", "list", *grid, "--json"),
            "grid_report": hw0("grid", "report", *grid, "--json"),
            "sweep_list": hw0("sweep", "list", *sweep, "--json"),
            "sweep_report": hw0("sweep", "report", *sweep, "--json")}


LINREG_SMALL = ("--n", 60, "--seed", 0, "--gd-iters", 200, "--sgd-iters", 300,
                "--overparam-iters", 200, "--rf-features", "20,60,100", "--bandwidths",
                "5,10", "--device", "cpu")
LINREG_METHODS = ("rank", "pinv", "lstsq", "solve", "gd", "sgd", "overparam", "rf", "kernel",
                  "all")


def linreg_part(hw0: Cli, data: Path, out: Path) -> dict:
    return {m: hw0("linreg", "--method", m, *LINREG_SMALL, "--data-dir", data, "--out", out,
                   "--json") for m in LINREG_METHODS}


NUMBER = re.compile(r"-?\d[\d,]*\.?\d*(?:e[-+]?\d+)?%?")
TIMING_COLUMN = re.compile(r"(^|\s)(s|seconds|time|images/s|eta)$|^git", re.I)
TIMING_TEXT = re.compile(r"\d s\b|seconds|images/s|Generated", re.I)


def report_numbers(md: str) -> dict[str, list[str]]:
    """The number tokens of report.md per section; table columns and lines of timings left
    out."""
    sections: dict[str, list[str]] = {}
    current, drop = "head", set()
    for line in md.splitlines():
        if line.startswith("#"):
            current = line.lstrip("# ").strip()
            continue
        if line.startswith("|"):
            cells = [c.strip() for c in line.strip("|").split("|")]
            if all(set(c) <= set("-: ") for c in cells):
                continue
            if not any(NUMBER.fullmatch(c) for c in cells) and cells[0] and not drop:
                drop = {i for i, c in enumerate(cells) if TIMING_COLUMN.search(c)}
                continue
            cells = [c for i, c in enumerate(cells) if i not in drop]
            tokens = [t for c in cells for t in NUMBER.findall(c)]
        else:
            drop = set()
            tokens = [] if TIMING_TEXT.search(line) else NUMBER.findall(line)
        sections.setdefault(current, []).extend(tokens)
    return sections


def report_part(hw0: Cli, out: Path) -> dict:
    hw0("report", "--out", out, "--format", "md", as_json=False)
    folder = out / "report"
    return {"numbers": report_numbers((folder / "report.md").read_text()),
            "figures": sorted(p.name for p in (folder / "figures").glob("*.png"))}


def fingerprint(keep: Path | None = None) -> dict:
    """The numbers, computed in a temporary folder (in `keep`, kept, if given)."""
    os.environ["CUDA_VISIBLE_DEVICES"] = ""  # the CPU, even where a GPU is
    from tests.helpers import write_cifar, write_mnist
    with tempfile.TemporaryDirectory(prefix="hw0-fingerprint-") as tmp:
        tmp_path = Path(tmp) if keep is None else keep.resolve()
        os.environ["HW0_CACHE"] = str(tmp_path / "cache")
        data = write_mnist(write_cifar(tmp_path / "data"))
        out = tmp_path / "out"
        hw0 = Cli(tmp_path)
        return {"train": train_part(hw0, data, out), "batch": batch_part(hw0, data, out),
                "linreg": linreg_part(hw0, data, out), "report": report_part(hw0, out)}


def differences(old: Any, new: Any, where: str = "") -> list[str]:
    """One line per value that differs: ints and strings exactly, floats to a relative 1e-9
    (NaN equals NaN), keys and list lengths exactly."""
    if isinstance(old, dict) and isinstance(new, dict):
        out = [f"{where}.{k}: only in the baseline" for k in old if k not in new]
        out += [f"{where}.{k}: new" for k in new if k not in old]
        return out + [d for k in old if k in new for d in differences(old[k], new[k],
                                                                       f"{where}.{k}")]
    if isinstance(old, list) and isinstance(new, list):
        if len(old) != len(new):
            return [f"{where}: {len(old)} items -> {len(new)}"]
        return [d for i, (a, b) in enumerate(zip(old, new, strict=True))
                for d in differences(a, b, f"{where}[{i}]")]
    if isinstance(old, float) or isinstance(new, float):
        if (isinstance(old, (int, float)) and isinstance(new, (int, float))
                and not isinstance(old, bool) and not isinstance(new, bool)
                and ((math.isnan(old) and math.isnan(new))
                     or math.isclose(old, new, rel_tol=REL, abs_tol=0.0))):
            return []
    elif old == new and type(old) is type(new):
        return []
    return [f"{where}: {old!r} -> {new!r}"]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("out", type=Path, help="where to write this run's numbers (JSON)")
    ap.add_argument("--check", type=Path, help="a baseline to compare with")
    ap.add_argument("--keep", type=Path, help="work in this (new) folder and keep it")
    args = ap.parse_args(argv)
    start = time.monotonic()
    result = fingerprint(args.keep)
    args.out.write_text(json.dumps(result, indent=1, allow_nan=True) + "\n")
    print(f"{args.out}: written in {time.monotonic() - start:.0f} s")
    if args.check is None:
        return 0
    diff = differences(json.loads(args.check.read_text()), json.loads(args.out.read_text()))
    for line in diff:
        print(line)
    print(f"{len(diff)} differences from {args.check}" if diff else
          f"the same numbers as {args.check}")
    return 1 if diff else 0


if __name__ == "__main__":
    sys.exit(main())
