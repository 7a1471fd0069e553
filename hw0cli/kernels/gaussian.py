"""Exact Gaussian kernel regression.

Fit: solve (K + lambda I) alpha = Y with K_ij = exp(-||x_i - x_j||^2 / (2 sigma^2)).
lambda = 0 is interpolation; numerically, a tiny jitter is added. Solver: Cholesky with jitter
escalation (jitter = j * mean(diag K) for j in JITTERS, each step reported), then conjugate
gradients, then a clear error. Predict: f(x) = k(x, X) alpha, in row blocks.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from hw0cli.errors import Hw0Error

JITTERS_FP64 = (0.0, 1e-12, 1e-10, 1e-8, 1e-6)  # relative to mean(diag K) = 1
JITTERS_FP32 = (1e-7, 1e-6, 1e-5, 1e-4)  # float32 needs a floor near its epsilon
CG_TOL = 1e-6  # relative residual at which CG stops
BLOCK_BYTES = 256 * 2**20  # memory per temporary block of the kernel matrix


def sq_dists(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """||a_i - b_j||^2 for a (m, d), b (k, d) -> (m, k), clamped at 0 (rounding)."""
    d = (a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2.0 * (a @ b.T)
    return d.clamp_min_(0.0)


def gaussian_kernel(a: torch.Tensor, b: torch.Tensor, bandwidth: float,
                    out: torch.Tensor | None = None) -> torch.Tensor:
    """K (m, k) with K_ij = exp(-||a_i - b_j||^2 / (2 bandwidth^2)), built in row blocks."""
    if not bandwidth > 0:
        raise Hw0Error(f"The kernel bandwidth must be positive (got {bandwidth}).")
    m, k = len(a), len(b)
    if out is None:
        out = torch.empty(m, k, dtype=a.dtype, device=a.device)
    rows = max(1, BLOCK_BYTES // (max(k, 1) * a.element_size()))
    scale = -1.0 / (2.0 * bandwidth * bandwidth)
    for i in range(0, m, rows):
        blk = out[i:i + rows]
        torch.mul(sq_dists(a[i:i + rows], b), scale, out=blk)
        blk.exp_()
    return out


def median_bandwidth(x: torch.Tensor, max_points: int = 2000, seed: int = 0) -> float:
    """Median pairwise distance (the median heuristic), over at most `max_points` points."""
    if len(x) > max_points:
        g = torch.Generator().manual_seed(seed)
        x = x[torch.randperm(len(x), generator=g)[:max_points].to(x.device)]
    d = sq_dists(x, x)
    iu = torch.triu_indices(len(x), len(x), 1, device=x.device)
    return float(d[iu[0], iu[1]].double().sqrt().median())


@dataclass
class SolveInfo:
    method: str  # cholesky | cg
    jitter: float  # absolute value added to the diagonal (besides the ridge)
    tried: list[str] = field(default_factory=list)  # each escalation step, in order
    cg_iterations: int = 0


def _cg(k: torch.Tensor, y: torch.Tensor, ridge: float, maxiter: int) -> tuple[torch.Tensor,
                                                                                 int, float]:
    """Conjugate gradients on (K + ridge I) x = y, y (n, t). Returns x, iterations, rel. res."""
    x = torch.zeros_like(y)
    r = y.clone()
    p = r.clone()
    rs = (r * r).sum(0)
    y_norm = y.norm(dim=0).clamp_min(1e-30)
    it = 0
    for it in range(1, maxiter + 1):  # noqa: B007 (the count is returned)
        ap = k @ p + ridge * p
        alpha = rs / (p * ap).sum(0)
        x += alpha * p
        r -= alpha * ap
        rs_new = (r * r).sum(0)
        if float((rs_new.sqrt() / y_norm).max()) < CG_TOL:
            rs = rs_new
            break
        p = r + (rs_new / rs) * p
        rs = rs_new
    return x, it, float((rs.sqrt() / y_norm).max())


def solve_psd(k: torch.Tensor, y: torch.Tensor, ridge: float = 0.0, cg_maxiter: int = 2000,
              rebuild: Callable[[], object] | None = None) -> tuple[torch.Tensor, SolveInfo]:
    """Solve (K + ridge I) x = y for symmetric PSD K (n, n), y (n,) or (n, t).

    Cholesky with escalating jitter; if every factorization fails, conjugate gradients with the
    largest jitter; if CG does not converge either, Hw0Error.
    Memory: without `rebuild`, K is left intact and one n x n workspace is allocated. With
    `rebuild`, K's own storage is the workspace (no copy: peak memory is one n x n matrix) and
    `rebuild()` must refill it with K; it is called after each failed attempt.
    """
    if ridge < 0:
        raise Hw0Error(f"The ridge must be >= 0 (got {ridge}).")
    vec = y.ndim == 1
    y2 = y[:, None] if vec else y
    scale = float(k.diagonal().mean()) or 1.0
    jitters = JITTERS_FP64 if k.dtype == torch.float64 else JITTERS_FP32
    if ridge > 0:  # a ridge already regularizes: try without jitter first
        jitters = (0.0, *[j for j in jitters if j > 0])
    info = SolveInfo("cholesky", 0.0)
    work = k if rebuild is not None else torch.empty_like(k)
    status = torch.empty((), dtype=torch.int32, device=k.device)
    for attempt, j in enumerate(jitters):
        if rebuild is None:
            work.copy_(k)
        elif attempt > 0:
            rebuild()
        work.diagonal().add_(ridge + j * scale)
        torch.linalg.cholesky_ex(work, out=(work, status))  # lower factor, in place
        if int(status) == 0:
            info.jitter = j * scale
            x = torch.cholesky_solve(y2, work)
            if bool(torch.isfinite(x).all()):
                info.tried.append(f"cholesky ok with jitter {j:g} x mean diag")
                return (x[:, 0] if vec else x), info
        info.tried.append(f"cholesky failed with jitter {j:g} x mean diag")
    if rebuild is not None:
        rebuild()
        k = work
    else:
        del work
    j = jitters[-1] * scale
    x, its, res = _cg(k, y2, ridge + j, cg_maxiter)
    info.method, info.jitter, info.cg_iterations = "cg", j, its
    info.tried.append(f"cg: {its} iterations, relative residual {res:.2e}")
    if not math.isfinite(res) or res > 1e-3:
        raise Hw0Error(
            "The kernel matrix is not numerically positive definite: Cholesky failed with every "
            f"jitter up to {jitters[-1]:g} x its mean diagonal, and conjugate gradients reached "
            f"only a relative residual of {res:.2e}. Use --dtype float64, a ridge (--ridge), or "
            "a larger bandwidth.")
    return (x[:, 0] if vec else x), info


@dataclass
class KernelFit:
    x: torch.Tensor  # (n, d) training inputs
    alpha: torch.Tensor  # (n,) or (n, t) coefficients
    bandwidth: float
    ridge: float
    info: SolveInfo


def fit_kernel_regression(x: torch.Tensor, y: torch.Tensor, bandwidth: float,
                          ridge: float = 0.0) -> KernelFit:
    """alpha = (K + ridge I)^-1 y with the Gaussian kernel of `bandwidth`."""
    k = gaussian_kernel(x, x, bandwidth)
    alpha, info = solve_psd(k, y.to(k.dtype), ridge,
                            rebuild=lambda: gaussian_kernel(x, x, bandwidth, out=k))
    return KernelFit(x, alpha, bandwidth, ridge, info)


def predict_kernel_regression(fit: KernelFit, x_new: torch.Tensor) -> torch.Tensor:
    """f(x) = k(x, X) alpha for x_new (m, d), in row blocks."""
    rows = max(1, BLOCK_BYTES // (max(len(fit.x), 1) * fit.x.element_size()))
    out = [gaussian_kernel(x_new[i:i + rows], fit.x, fit.bandwidth) @ fit.alpha
           for i in range(0, len(x_new), rows)]
    return torch.cat(out) if out else torch.empty(0, dtype=fit.alpha.dtype)
