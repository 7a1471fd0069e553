"""`hw0 linreg`: least squares, GD/SGD, a factorized model and kernels on MNIST (Problem 3)."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from hw0cli.choices import Device, Dtype, LinregMethod, SgdSchedule
from hw0cli.cli.common import (
    DataDir,
    Json,
    OutDir,
    choice,
    data_dir_or_default,
    err_console,
    out_console,
    out_or_default,
    print_json,
    say,
    show,
    simple_table,
)


def linreg(
    method: Annotated[str, choice(LinregMethod, help="What to compute")] = "all",
    n: Annotated[int, typer.Option(help="Training images drawn from the 60,000")] = 500,
    seed: Annotated[int, typer.Option(help="Seeds the sample, SGD and random features")] = 0,
    gd_iters: Annotated[int, typer.Option(help="Gradient-descent iterations")] = 10_000,
    gd_step: Annotated[float | None, typer.Option(
        help="GD step", show_default="1/L, L = 2 sigma_max^2")] = None,
    sgd_iters: Annotated[int, typer.Option(help="SGD steps")] = 20_000,
    sgd_batch: Annotated[int, typer.Option(help="SGD batch size")] = 32,
    sgd_step: Annotated[float | None, typer.Option(
        help="SGD step", show_default="1/(2 n max ||x_i||^2)")] = None,
    sgd_schedule: Annotated[str, choice(SgdSchedule, help="SGD step schedule; invsqrt: "
                                        "step / sqrt(1 + t / 1000)")] = "constant",
    overparam_iters: Annotated[int, typer.Option(help="SGD steps for b = W1 b1")] = 5_000,
    overparam_init: Annotated[float, typer.Option(help="Init scale of W1, b1")] = 0.01,
    overparam_step: Annotated[float | None, typer.Option(
        help="SGD step for b = W1 b1", show_default="1/L")] = None,
    overparam_batch: Annotated[int, typer.Option(help="Batch size; 0 = full batch")] = 0,
    rf_features: Annotated[str | None, typer.Option(
        help="Comma-separated sweep of the number of random features D",
        show_default="50 .. 20000")] = None,
    rf_kinds: Annotated[str, typer.Option(help="rff and/or relu, comma-separated")] = "rff,relu",
    rf_ridge: Annotated[float, typer.Option(help="Random-features ridge; 0 = minimum-norm "
                                            "fit")] = 0.0,
    bandwidths: Annotated[str | None, typer.Option(
        help="Comma-separated kernel bandwidths", show_default="1/8 .. 8 x median")] = None,
    ridge: Annotated[float, typer.Option(help="Kernel ridge lambda (0 = interpolate)")] = 0.0,
    device: Annotated[str, choice(Device, help="Device of the torch parts")] = "auto",
    dtype: Annotated[str, choice(Dtype, help="Float type of the torch parts")] = "float64",
    as_json: Json = False,
    data_dir: DataDir = None,
    out: OutDir = None,
) -> None:
    """Least squares, GD/SGD, a factorized model and kernels on MNIST (Problem 3)."""
    from hw0cli.linreg import DEFAULT_RF_D, LinregConfig, parse_floats, run_linreg
    cfg = LinregConfig(
        method=method, n=n, seed=seed, gd_iters=gd_iters, gd_step=gd_step, sgd_iters=sgd_iters,
        sgd_batch=sgd_batch, sgd_step=sgd_step, sgd_schedule=sgd_schedule,
        overparam_iters=overparam_iters, overparam_init=overparam_init,
        overparam_step=overparam_step, overparam_batch=overparam_batch,
        rf_features=parse_floats(rf_features, "--rf-features", int, DEFAULT_RF_D), rf_kinds=tuple(
            k.strip() for k in rf_kinds.split(",") if k.strip()), rf_ridge=rf_ridge,
        kernel_bandwidths=parse_floats(bandwidths, "--bandwidths"), kernel_ridge=ridge,
        device=device, dtype=dtype, data_dir=data_dir_or_default(data_dir),
        out=out_or_default(out))
    with (err_console if as_json else out_console).status("starting") as status:
        res = run_linreg(cfg, progress=lambda msg: status.update(msg))
    if as_json:
        print_json({"id": res.id, "path": str(res.path), "summary": res.summary,
                    "notes": res.notes, "plots": [str(p) for p in res.plots]})
    else:
        _print_linreg(res)


def _print_linreg(res: Any) -> None:
    from hw0cli.linreg import GD_FINDING, describe, problem_lines, solution_rows
    s = res.summary
    for line in problem_lines(s):
        say(line)
    rows = solution_rows(s)
    if rows:
        show(simple_table(
            "Solutions", ("solution", "train MSE", "test MSE", "test acc", "||b||",
                          "||b - b_pinv||"),
            [[label, f"{r['train_mse']:.3g}", f"{r['test_mse']:.4g}",
              f"{100 * r['test_acc']:.2f}%", f"{r['norm']:.4g}", dist]
             for label, r, dist in rows]))
    if "gd" in s:
        _print_gd_modes(s["gd"])
        say(GD_FINDING)
    for line in describe(s).values():
        say(line)
    for note in res.notes:
        say(f"[yellow]note:[/] {note}")
    folder = res.plots[0].parent if res.plots else "-"
    say(f"saved {res.path} and {len(res.plots)} plots in {folder} ({res.seconds:.1f} s)")


def _print_gd_modes(gd: dict[str, Any]) -> None:
    from hw0cli.linreg import format_factor
    show(simple_table(
        f"GD error along singular directions (step {gd['step']:.3g}): predicted factor "
        "|1 - 2 step sigma_i^2| per iteration vs measured",
        ("mode i", "sigma_i", "predicted", "measured", "its for 1e-3", "error start",
         "error end"),
        [[str(m["index"]), f"{m['sigma']:.4g}", format_factor(m["predicted_factor"]),
          format_factor(m["measured_factor"]), f"{m['iters_for_1e-3']:.3g}",
          f"{m['error_start']:.3g}", f"{m['error_end']:.3g}"] for m in gd["modes"]]))
