"""Problem 3's findings in words, from a results summary: shared by the terminal
(`hw0 linreg`) and the report, so both say the same thing."""

from __future__ import annotations

import math

from hw0cli.linreg.summary import Fit, LinregSummary


def format_factor(f: float | None) -> str:
    """A contraction factor, as 1 - x when it is close to 1 (where the digits matter)."""
    if f is None or math.isnan(f):
        return "converged"
    return f"1 - {1 - f:.4g}" if f > 0.5 else f"{f:.4g}"


GD_FINDING = (
    "GD from b = 0 stays in the row space of X and converges to the min-norm solution, but "
    "each singular direction i shrinks by its own factor per iteration; the smallest sigma "
    "needs ~cond(X^T X) iterations, so in practice GD stops far from b_pinv, at a "
    "smaller-norm solution that generalizes better.")


def problem_lines(s: LinregSummary) -> list[str]:
    """The problem and the spectrum of X, in two lines."""
    sp = s.spectrum
    return [f"Problem 3 on MNIST: n = {s.n} training images (seed {s.seed}), d = {s.d}, "
            f"labels {s.labels}; test: 10,000 images",
            f"rank(X) = {sp.rank} (tolerance {sp.tol:.3g} = sigma_max * max(n, d) * eps); "
            f"sigma_max = {sp.sigma_max:.4g}, smallest nonzero sigma = "
            f"{sp.sigma_min_nonzero:.4g}; cond(X) = {sp.cond_X:.4g}, cond(X^T X) = "
            f"{sp.cond_XtX:.4g}; L = 2 sigma_max^2 = {sp.L:.4g}"]


def solution_rows(s: LinregSummary) -> list[tuple[str, Fit, str]]:
    """(label, fit, distance to b_pinv in words) per solution found: the min-norm solvers,
    then GD, SGD and the factorized model."""
    rows = []
    for how, fit in (s.min_norm or {}).items():
        agree = (s.min_norm_agreement or {}).get(how)
        rows.append((f"min-norm ({how})", fit,
                     "-" if agree is None else f"{agree:.1e} (relative)"))
    labels = {"gd": "GD, {} its", "sgd": "SGD, {} steps", "overparam": "W1 b1, {} steps"}
    for m, r in s.solvers().items():
        rows.append((labels[m].format(r.iters), r, f"{r.dist_pinv:.4g}"))
    return rows


def describe(s: LinregSummary) -> dict[str, str]:
    """One sentence per finding of a summary, shared by the terminal and the report."""
    out: dict[str, str] = {}
    if (r := s.overparam) is not None:
        out["overparam"] = (
            f"Factorized model b = W1 b1 (init scale {r.init}): after {r.iters} SGD steps, "
            f"distance to b_pinv {r.dist_pinv:.4g}, to the GD solution {r.dist_gd:.4g}, norm "
            f"{r.norm:.4g}, test MSE {r.test_mse:.4g}; null-space part "
            f"{r.null_space_norm:.2g}.")
    for kind in ("rff", "relu"):
        if s.rf is not None and kind in s.rf.kinds:
            k = s.rf.kinds[kind]
            out[f"rf_{kind}"] = (
                f"Random features ({kind}, {'min-norm' if not s.rf.ridge else 'ridge'} "
                f"fit): test MSE peaks at D = {k.peak_D} ({k.peak_test_mse:.4g}); best at "
                f"D = {k.best_D}: {k.best_test_mse:.4g} MSE, "
                f"{100 * k.best_test_acc:.2f}% accuracy.")
    if (g := s.kernel) is not None:
        med = (f" At the median-heuristic bandwidth {s.median_bandwidth:.4g}: test MSE "
               f"{g.median_test_mse:.4g}, accuracy {100 * g.median_test_acc:.2f}%."
               if g.median_test_mse is not None and g.median_test_acc is not None
               and s.median_bandwidth is not None else "")
        out["kernel"] = (
            f"Exact Gaussian kernel regression (ridge {g.ridge}): best bandwidth "
            f"{g.best_bandwidth:.4g}, test MSE {g.best_test_mse:.4g}, accuracy "
            f"{100 * g.best_test_acc:.2f}%.{med}")
    return out
