"""Problem 3's run: the solvers of `hw0cli.linreg.solvers` on the sample `LinregConfig`
describes, their headline figures as a typed `LinregSummary`, the arrays and the summary in
`<out>/linreg/<id>.h5`, and the plots.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from hw0cli import kernels, store
from hw0cli.datafiles import mnist_identity
from hw0cli.env import environment, resolve_device
from hw0cli.errors import Hw0Error
from hw0cli.linreg.config import (
    DEFAULT_BW_MULT,
    METHODS,
    MIN_NORM,
    LinregConfig,
    linreg_id,
    validate,
)
from hw0cli.linreg.memory import check_random_features_fit
from hw0cli.linreg.solvers import (
    Curve,
    Problem,
    Spectrum,
    fit_report,
    gradient_descent,
    kernel_sweep,
    load_problem,
    min_norm,
    overparam,
    random_features_sweep,
    sgd,
    spectrum,
    torch_dtype,
)
from hw0cli.linreg.summary import (
    Factorized,
    FeatureSweep,
    GradientDescent,
    Kernel,
    LinregSummary,
    ModeRate,
    RandomFeatures,
    Sgd,
    SpectrumSummary,
)


def _fit(b: np.ndarray, p: Problem) -> dict[str, float]:
    """fit_report's figures, to extend into a solver's result."""
    return dataclasses.asdict(fit_report(b, p))


# ---------------------------------------------------------------------------------------------
# the command


@dataclass
class LinregResult:
    id: str
    path: Path
    summary: LinregSummary  # every headline figure
    arrays: dict[str, np.ndarray]
    plots: list[Path] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0


def mode_indices(rank: int) -> list[int]:
    """Singular directions to track: top, middle and bottom of the nonzero spectrum."""
    return sorted({0, rank // 2, rank - 1})


def run_linreg(cfg: LinregConfig, progress: Callable[[str], None] | None = None) -> LinregResult:
    """Run the method(s), write `<out>/linreg/<id>.h5` and plots, return the figures."""
    validate(cfg)
    todo = set(METHODS[:-1]) if cfg.method == "all" else {cfg.method}
    if "rf" in todo:  # before anything runs: a sweep the memory cannot hold is refused now
        check_random_features_fit(cfg, resolve_device(cfg.device))
    t_start = time.perf_counter()
    run = _Computation(cfg, progress or (lambda _msg: None))
    if todo & set(MIN_NORM):
        run.min_norm_solutions()
    if todo & {"gd", "overparam"}:
        run.gradient_descent()
    if "sgd" in todo:
        run.sgd()
    if "overparam" in todo:
        run.factorized()
    if todo & {"rf", "kernel"}:
        run.summary.median_bandwidth = kernels.median_bandwidth(
            torch.tensor(run.p.x, dtype=torch.float64))
    if "rf" in todo:
        run.random_features()
    if "kernel" in todo:
        run.kernel()
    run.summary.seconds = time.perf_counter() - t_start
    rid = linreg_id(cfg)
    path = Path(cfg.out) / "linreg" / f"{rid}.h5"
    cfg_json = {**cfg.science(), "data_dir": str(cfg.data_dir), "device": cfg.device}
    store.write_h5(path, {"kind": "linreg", "id": rid, "config": cfg_json,
                          "summary": run.summary.to_json(),
                          "env": environment(run.device), "notes": run.notes,
                          "data": mnist_identity(cfg.data_dir),
                          "created": time.strftime("%Y-%m-%dT%H:%M:%S%z")}, run.arrays)
    from hw0cli.linreg.plots import linreg_plots  # matplotlib: only when plotting
    plots = linreg_plots(run.summary, run.arrays, Path(cfg.out) / "plots", rid)
    return LinregResult(rid, path, run.summary, run.arrays, plots, run.notes,
                        time.perf_counter() - t_start)


class _Computation:
    """One run's sample, its SVD and the pieces computed so far: the summary's figures, the
    arrays for the results file, notes for the user."""

    def __init__(self, cfg: LinregConfig, say: Callable[[str], None]) -> None:
        self.cfg, self.say = cfg, say
        self.device, self.dtype = resolve_device(cfg.device), torch_dtype(cfg.dtype)
        self.p = p = load_problem(cfg.data_dir, cfg.n, cfg.seed)
        self.arrays: dict[str, np.ndarray] = {"indices": p.indices}
        self.notes: list[str] = []
        say("SVD of X")
        self.sp = sp = spectrum(p.x)
        self.L = 2.0 * float(sp.singular_values[0]) ** 2
        self.summary = LinregSummary(
            n=cfg.n, seed=cfg.seed, d=p.x.shape[1], labels="+1 odd digit, -1 even",
            device=str(self.device), spectrum=SpectrumSummary(
                rank=sp.rank, tol=sp.tol, sigma_max=float(sp.singular_values[0]),
                sigma_min_nonzero=float(sp.singular_values[sp.rank - 1]), cond_X=sp.cond_x,
                cond_XtX=sp.cond_xtx, L=self.L))
        self.arrays["singular_values"] = sp.singular_values
        self.b_pinv = min_norm(p.x, p.y, "pinv")
        self.arrays["solutions/pinv"] = self.b_pinv
        self.modes = mode_indices(sp.rank)
        self.arrays["mode_index"] = np.asarray(self.modes)
        self.b_gd: np.ndarray | None = None

    def min_norm_solutions(self) -> None:
        p = self.p
        self.say("minimum-norm solutions")
        sols = {"pinv": self.b_pinv}
        for how in ("lstsq", "solve"):
            try:
                sols[how] = min_norm(p.x, p.y, how)
            except Hw0Error as exc:
                self.notes.append(str(exc))
        self.summary.min_norm = {how: fit_report(b, p) for how, b in sols.items()}
        self.summary.min_norm_agreement = {
            how: float(np.linalg.norm(b - self.b_pinv) / np.linalg.norm(self.b_pinv))
            for how, b in sols.items() if how != "pinv"}
        for how, b in sols.items():
            self.arrays[f"solutions/{how}"] = b

    def gradient_descent(self) -> None:
        cfg, L = self.cfg, self.L
        step = cfg.gd_step or 1.0 / L
        if step > 2.0 / L:
            self.notes.append(f"gd: step {step:.3g} exceeds 2/L = {2 / L:.3g}: gradient "
                              "descent diverges along the top singular direction; it is "
                              "stopped when the loss blows up.")
        self.say(f"gradient descent, {cfg.gd_iters} iterations")
        b, curve = gradient_descent(self.p, step, cfg.gd_iters, self.b_pinv,
                                    self.sp.vt[self.modes])
        self.arrays.update({f"curves/gd/{k}": v for k, v in curve.arrays().items()})
        self.arrays["solutions/gd"] = self.b_gd = b
        self.summary.gd = GradientDescent(
            **_fit(b, self.p), step=step, iters=curve.iters[-1], diverged_at=curve.diverged_at,
            dist_pinv=curve.dist_pinv[-1], modes=_mode_rates(curve, self.sp, self.modes, step))

    def sgd(self) -> None:
        cfg, p = self.cfg, self.p
        step = cfg.sgd_step or 1.0 / (2.0 * cfg.n * float((p.x ** 2).sum(1).max()))
        self.say(f"SGD, {cfg.sgd_iters} steps of batch {cfg.sgd_batch}")
        b, curve = sgd(p, step, cfg.sgd_iters, cfg.sgd_batch, cfg.sgd_schedule, cfg.seed,
                       self.b_pinv, self.sp.vt[self.modes])
        self.arrays.update({f"curves/sgd/{k}": v for k, v in curve.arrays().items()})
        self.arrays["solutions/sgd"] = b
        self.summary.sgd = Sgd(**_fit(b, p), step=step, batch=cfg.sgd_batch,
                               schedule=cfg.sgd_schedule, iters=curve.iters[-1],
                               diverged_at=curve.diverged_at, dist_pinv=curve.dist_pinv[-1])

    def factorized(self) -> None:
        cfg, sp = self.cfg, self.sp
        step = cfg.overparam_step or 1.0 / self.L
        self.say(f"factorized model b = W1 b1, {cfg.overparam_iters} SGD steps")
        b, trace = overparam(self.p, cfg.overparam_init, step, cfg.overparam_iters,
                             cfg.overparam_batch, cfg.seed, self.device, self.dtype)
        self.arrays["solutions/overparam"] = b
        self.arrays["curves/overparam/train_mse"] = np.asarray(trace)
        assert self.b_gd is not None  # the comparison run: gradient_descent() ran first
        self.summary.overparam = Factorized(
            **_fit(b, self.p), step=step, init=cfg.overparam_init, iters=cfg.overparam_iters,
            dist_pinv=float(np.linalg.norm(b - self.b_pinv)),
            dist_gd=float(np.linalg.norm(b - self.b_gd)),
            null_space_norm=float(np.linalg.norm(
                b - sp.vt[:sp.rank].T @ (sp.vt[:sp.rank] @ b))))

    def random_features(self) -> None:
        cfg, bw_median = self.cfg, self.summary.median_bandwidth
        assert bw_median is not None
        rf = self.summary.rf = RandomFeatures(ridge=cfg.rf_ridge, bandwidth=bw_median)
        for kind in cfg.rf_kinds:
            self.say(f"random features ({kind}), D = {', '.join(map(str, cfg.rf_features))}")
            sweep = random_features_sweep(self.p, kind, cfg.rf_features, cfg.rf_ridge,
                                          bw_median, cfg.seed, self.device, self.dtype)
            self.arrays.update({f"sweeps/rf_{kind}/{k}": v for k, v in sweep.items()})
            i = int(np.argmax(sweep["test_mse"]))
            j = int(np.argmin(sweep["test_mse"]))
            rf.kinds[kind] = FeatureSweep(
                peak_D=int(sweep["D"][i]), peak_test_mse=float(sweep["test_mse"][i]),
                best_D=int(sweep["D"][j]), best_test_mse=float(sweep["test_mse"][j]),
                best_test_acc=float(sweep["test_acc"][j]))

    def kernel(self) -> None:
        cfg, bw_median = self.cfg, self.summary.median_bandwidth
        assert bw_median is not None
        bws = list(cfg.kernel_bandwidths) or sorted({m * bw_median for m in DEFAULT_BW_MULT})
        self.say(f"exact Gaussian kernel regression, {len(bws)} bandwidths")
        sweep, knotes = kernel_sweep(self.p, bws, cfg.kernel_ridge, self.device, self.dtype)
        self.notes += knotes
        self.arrays.update({f"sweeps/kernel/{k}": v for k, v in sweep.items()})
        j = int(np.argmin(sweep["test_mse"]))
        at_median = {}
        if not cfg.kernel_bandwidths:
            k = int(np.argmin(np.abs(sweep["bandwidth"] - bw_median)))
            at_median = {"median_test_mse": float(sweep["test_mse"][k]),
                         "median_test_acc": float(sweep["test_acc"][k])}
        self.summary.kernel = Kernel(ridge=cfg.kernel_ridge,
                                     best_bandwidth=float(sweep["bandwidth"][j]),
                                     best_test_mse=float(sweep["test_mse"][j]),
                                     best_test_acc=float(sweep["test_acc"][j]), **at_median)


def _mode_rates(curve: Curve, sp: Spectrum, modes: list[int], step: float) -> list[ModeRate]:
    """Per tracked mode: sigma_i, predicted factor |1 - 2 step sigma_i^2| per iteration, the
    measured factor (error ratio between the first and last logged iteration, per step), and
    the iterations the predicted factor needs to shrink the error 1000-fold."""
    err = np.asarray(curve.modes)
    t = np.asarray(curve.iters)
    out = []
    for j, i in enumerate(modes):
        s = float(sp.singular_values[i])
        pred = abs(1.0 - 2.0 * step * s * s)
        e0 = err[0, j]
        # measure over the span where the error is still far above rounding (1e-8 of e0)
        ok = np.nonzero(err[:, j] > 1e-8 * max(e0, 1e-300))[0]
        last = int(ok[-1]) if len(ok) else 0
        measured = float((err[last, j] / e0) ** (1.0 / t[last])) if last > 0 and e0 > 0 \
            else float("nan")
        need = math.inf if pred >= 1 else (0 if pred == 0 else math.log(1e-3) / math.log(pred))
        out.append(ModeRate(index=i, sigma=s, predicted_factor=pred, measured_factor=measured,
                            iters_for_1e3=need, error_start=float(e0),
                            error_end=float(err[-1, j])))
    return out
