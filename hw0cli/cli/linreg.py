"""`hw0 linreg`: least squares, GD/SGD, a factorized model and kernels on MNIST (Problem 3)."""

from __future__ import annotations

from typing import Any

from hw0cli.cli.common import Json, err_console, out_console, print_json, say, show, simple_table
from hw0cli.cli.declared import with_options
from hw0cli.linreg import LinregConfig


@with_options(LinregConfig)
def linreg(options: dict[str, Any], as_json: Json = False) -> None:
    """Least squares, GD/SGD, a factorized model and kernels on MNIST (Problem 3)."""
    from hw0cli.linreg import run_linreg
    cfg = LinregConfig(**options)
    with (err_console if as_json else out_console).status("starting") as status:
        res = run_linreg(cfg, progress=lambda msg: status.update(msg))
    if as_json:
        print_json({"id": res.id, "path": str(res.path), "summary": res.summary.to_json(),
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
            [[label, f"{r.train_mse:.3g}", f"{r.test_mse:.4g}", f"{100 * r.test_acc:.2f}%",
              f"{r.norm:.4g}", dist] for label, r, dist in rows]))
    if s.gd is not None:
        _print_gd_modes(s.gd)
        say(GD_FINDING)
    for line in describe(s).values():
        say(line)
    for note in res.notes:
        say(f"[yellow]note:[/] {note}")
    folder = res.plots[0].parent if res.plots else "-"
    say(f"saved {res.path} and {len(res.plots)} plots in {folder} ({res.seconds:.1f} s)")


def _print_gd_modes(gd: Any) -> None:
    from hw0cli.linreg import format_factor
    show(simple_table(
        f"GD error along singular directions (step {gd.step:.3g}): predicted factor "
        "|1 - 2 step sigma_i^2| per iteration vs measured",
        ("mode i", "sigma_i", "predicted", "measured", "its for 1e-3", "error start",
         "error end"),
        [[str(m.index), f"{m.sigma:.4g}", format_factor(m.predicted_factor),
          format_factor(m.measured_factor), f"{m.iters_for_1e3:.3g}", f"{m.error_start:.3g}",
          f"{m.error_end:.3g}"] for m in gd.modes]))
