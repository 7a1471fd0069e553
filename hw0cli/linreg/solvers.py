"""Problem 3: least squares, gradient methods, a factorized model and kernels on MNIST.

Set-up: n training images drawn without replacement from the 60,000 with
`np.random.default_rng(seed).choice(60000, n, replace=False)` (the drawn indices are stored);
x = pixels / 255 flattened to 784; y = +1 for odd digits, -1 for even; test: all 10,000 test
images, labelled the same way. Loss: L(b) = ||X b - Y||^2, gradient 2 X^T (X b - Y), whose
Lipschitz constant is L = 2 sigma_max(X)^2.

Under the hood of the three minimum-norm solvers:
- pinv: `np.linalg.pinv`, the SVD X = U S V^T, singular values below rcond * sigma_max set to
  zero, b = V S^+ U^T Y. Sound for any rank; costs a full SVD.
- lstsq: `np.linalg.lstsq`, LAPACK's gelsd (SVD by divide and conquer), also min-norm for
  rank-deficient X. Sound for any rank; the usual choice.
- solve: b = X^T (X X^T)^-1 Y with `np.linalg.solve` (LU with partial pivoting, gesv) on the
  n x n Gram matrix. Only valid when X has full row rank; it squares the condition number
  (cond(X X^T) = cond(X)^2), so it loses twice the digits: fine here (cond(X)^2 ~ 1e8 of the
  1e16 float64 holds), unsound when X is nearly rank-deficient.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from hw0cli import kernels
from hw0cli.choices import MNIST_TRAIN_SIZE
from hw0cli.data import load_mnist
from hw0cli.errors import Hw0Error, check
from hw0cli.linreg.summary import Fit


@dataclass(frozen=True)
class Problem:
    x: np.ndarray  # (n, 784) float64 in [0, 1]
    y: np.ndarray  # (n,) +-1
    x_test: np.ndarray  # (10000, 784)
    y_test: np.ndarray
    indices: np.ndarray  # (n,) indices into the 60,000 training images, as drawn


def parity_labels(digits: np.ndarray) -> np.ndarray:
    """+1 for odd digits, -1 for even (the course notebook's convention)."""
    return np.where(np.asarray(digits) % 2 == 1, 1.0, -1.0)


def draw_indices(n: int, seed: int, total: int = MNIST_TRAIN_SIZE) -> np.ndarray:
    return np.random.default_rng(seed).choice(total, n, replace=False)


def load_problem(data_dir: Path, n: int, seed: int) -> Problem:
    m = load_mnist(data_dir)
    check(n <= len(m.train_y), f"--n {n} exceeds the {len(m.train_y)} MNIST training images.")
    idx = draw_indices(n, seed, len(m.train_y))
    x = m.train_x[idx].reshape(n, -1).astype(np.float64) / 255.0
    xt = m.test_x.reshape(len(m.test_x), -1).astype(np.float64) / 255.0
    return Problem(x, parity_labels(m.train_y[idx]), xt, parity_labels(m.test_y), idx)


def mse(pred: np.ndarray, y: np.ndarray) -> float:
    return float(np.mean((np.asarray(pred) - y) ** 2))


def sign_accuracy(pred: np.ndarray, y: np.ndarray) -> float:
    """Fraction with sign(pred) == y, counting pred = 0 as +1."""
    return float(np.mean(np.where(np.asarray(pred) >= 0, 1.0, -1.0) == y))


def fit_report(b: np.ndarray, p: Problem) -> Fit:
    return Fit(train_mse=mse(p.x @ b, p.y), test_mse=mse(p.x_test @ b, p.y_test),
               test_acc=sign_accuracy(p.x_test @ b, p.y_test), norm=float(np.linalg.norm(b)))


# ---------------------------------------------------------------------------------------------
# spectrum and minimum-norm solutions


@dataclass(frozen=True)
class Spectrum:
    singular_values: np.ndarray  # (min(n, d),) descending
    vt: np.ndarray  # (min(n, d), d) right singular vectors (rows)
    tol: float  # numpy's default: sigma_max * max(n, d) * eps
    rank: int
    cond_x: float  # sigma_max / sigma_min over the nonzero spectrum
    cond_xtx: float  # its square: the condition number of X^T X on the row space


def spectrum(x: np.ndarray) -> Spectrum:
    _, s, vt = np.linalg.svd(x, full_matrices=False)
    tol = float(s.max() * max(x.shape) * np.finfo(x.dtype).eps) if s.size else 0.0
    rank = int((s > tol).sum())
    cond = float(s[0] / s[rank - 1]) if rank else math.inf
    return Spectrum(s, vt, tol, rank, cond, cond * cond)


def min_norm(x: np.ndarray, y: np.ndarray, how: str) -> np.ndarray:
    """The minimum-norm least-squares solution b = X^+ y, three ways (see module doc)."""
    if how == "pinv":
        return np.linalg.pinv(x) @ y
    if how == "lstsq":
        return np.linalg.lstsq(x, y, rcond=None)[0]
    if how == "solve":
        try:
            return x.T @ np.linalg.solve(x @ x.T, y)
        except np.linalg.LinAlgError:
            raise Hw0Error("solve: X X^T is singular (X lacks full row rank), so the Gram "
                           "system has no unique solution; use pinv or lstsq.") from None
    raise ValueError(how)


# ---------------------------------------------------------------------------------------------
# gradient methods


def log_grid(iters: int, points: int = 60) -> np.ndarray:
    """0 and about `points` geometrically spaced iterations up to `iters`, unique, sorted."""
    g = np.unique(np.round(np.geomspace(1, iters, points)).astype(int))
    return np.concatenate([[0], g])


@dataclass
class Curve:
    """Quantities at logged iterations t (arrays aligned with `iters`)."""

    iters: list[int] = field(default_factory=list)
    train_mse: list[float] = field(default_factory=list)
    test_mse: list[float] = field(default_factory=list)
    dist_pinv: list[float] = field(default_factory=list)  # ||b_t - b_pinv||
    modes: list[list[float]] = field(default_factory=list)  # |v_i . (b_t - b_pinv)| per mode
    diverged_at: int | None = None

    def arrays(self) -> dict[str, np.ndarray]:
        return {"iter": np.asarray(self.iters), "train_mse": np.asarray(self.train_mse),
                "test_mse": np.asarray(self.test_mse), "dist_pinv": np.asarray(self.dist_pinv),
                "mode_error": np.asarray(self.modes)}


def _tracker(p: Problem, b_ref: np.ndarray, v_modes: np.ndarray) -> Callable:
    curve = Curve()

    def log(t: int, b: np.ndarray) -> bool:
        r = p.x @ b - p.y
        tr = float(r @ r / len(r))
        curve.iters.append(t)
        curve.train_mse.append(tr)
        curve.test_mse.append(mse(p.x_test @ b, p.y_test))
        curve.dist_pinv.append(float(np.linalg.norm(b - b_ref)))
        curve.modes.append(np.abs(v_modes @ (b - b_ref)).tolist())
        return math.isfinite(tr) and tr < 1e30

    log.curve = curve  # type: ignore[attr-defined]
    return log


def gradient_descent(p: Problem, step: float, iters: int, b_ref: np.ndarray,
                     v_modes: np.ndarray) -> tuple[np.ndarray, Curve]:
    """b_{t+1} = b_t - step * 2 X^T (X b_t - Y) from b_0 = 0; stops cleanly on divergence."""
    b = np.zeros(p.x.shape[1])
    grid = set(log_grid(iters).tolist())
    log = _tracker(p, b_ref, v_modes)
    xt = np.ascontiguousarray(p.x.T)
    log(0, b)
    for t in range(1, iters + 1):
        b -= step * 2.0 * (xt @ (p.x @ b - p.y))
        if t in grid and not log(t, b):
            log.curve.diverged_at = t
            break
    return b, log.curve


def sgd(p: Problem, step: float, iters: int, batch: int, schedule: str, seed: int,
        b_ref: np.ndarray, v_modes: np.ndarray) -> tuple[np.ndarray, Curve]:
    """Minibatch SGD with the unbiased gradient (n / B) 2 X_B^T (X_B b - Y_B), b_0 = 0.

    Batches are drawn by reshuffling every epoch; step_t = step (constant) or
    step / sqrt(1 + t / 1000) (invsqrt).
    """
    n = len(p.y)
    batch = min(batch, n)
    rng = np.random.default_rng([seed, 7])
    b = np.zeros(p.x.shape[1])
    grid = set(log_grid(iters).tolist())
    log = _tracker(p, b_ref, v_modes)
    log(0, b)
    order, pos = rng.permutation(n), 0
    for t in range(1, iters + 1):
        if pos + batch > n:
            order, pos = rng.permutation(n), 0
        sel = order[pos:pos + batch]
        pos += batch
        xb = p.x[sel]
        lr = step if schedule == "constant" else step / math.sqrt(1.0 + t / 1000.0)
        b -= lr * (n / batch) * 2.0 * (xb.T @ (xb @ b - p.y[sel]))
        if t in grid and not log(t, b):
            log.curve.diverged_at = t
            break
    return b, log.curve


def overparam(p: Problem, init: float, step: float, iters: int, batch: int, seed: int,
              device: torch.device, dtype: torch.dtype) -> tuple[np.ndarray, list[float]]:
    """b = W1 b1, W1 (784, 784), b1 (784,), trained by SGD (torch) on ||X W1 b1 - Y||^2.

    Init: W1, b1 entries ~ N(0, init^2 / 784). batch = 0: full-batch steps. Returns the
    end-to-end b and the training-loss trace (at a geometric grid of steps).
    """
    d = p.x.shape[1]
    g = torch.Generator().manual_seed(seed)
    w1 = (torch.randn(d, d, generator=g, dtype=torch.float64) * init / math.sqrt(d))
    b1 = (torch.randn(d, generator=g, dtype=torch.float64) * init / math.sqrt(d))
    w1 = w1.to(device, dtype).requires_grad_(True)
    b1 = b1.to(device, dtype).requires_grad_(True)
    x = torch.tensor(p.x, device=device, dtype=dtype)
    y = torch.tensor(p.y, device=device, dtype=dtype)
    opt = torch.optim.SGD([w1, b1], lr=step)
    n = len(y)
    rng = np.random.default_rng([seed, 9])
    grid = set(log_grid(iters).tolist())
    trace = []
    for t in range(1, iters + 1):
        if batch and batch < n:
            sel = torch.from_numpy(rng.choice(n, batch, replace=False)).to(device)
            r = x[sel] @ (w1 @ b1) - y[sel]
            loss = (n / batch) * (r @ r)
        else:
            r = x @ (w1 @ b1) - y
            loss = r @ r
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if t in grid:
            lv = float(loss.detach())
            trace.append(lv / n)
            if not math.isfinite(lv) or lv > 1e30:
                raise Hw0Error(f"overparam: SGD diverged at step {t} (loss {lv:.3g}). Lower "
                               f"--overparam-step (now {step:.3g}) or --overparam-init.")
    return (w1 @ b1).detach().double().cpu().numpy(), trace


# ---------------------------------------------------------------------------------------------
# random features and kernels


def torch_dtype(name: str) -> torch.dtype:
    return torch.float64 if name == "float64" else torch.float32


def _fit_features(z: torch.Tensor, y: torch.Tensor, ridge: float) -> torch.Tensor:
    """Min-norm (ridge = 0, via the SVD pseudo-inverse) or ridge least squares on features z."""
    if ridge == 0:
        return torch.linalg.pinv(z) @ y
    n, dim = z.shape
    if dim > n:
        return z.T @ torch.linalg.solve(z @ z.T + ridge * torch.eye(n, dtype=z.dtype,
                                                                    device=z.device), y)
    return torch.linalg.solve(z.T @ z + ridge * torch.eye(dim, dtype=z.dtype, device=z.device),
                              z.T @ y)


def random_features_sweep(p: Problem, kind: str, dims: tuple[int, ...], ridge: float,
                          bandwidth: float, seed: int, device: torch.device,
                          dtype: torch.dtype) -> dict[str, np.ndarray]:
    """Test MSE and accuracy of a random-features fit for each D (test set in blocks)."""
    x = torch.tensor(p.x, device=device, dtype=dtype)
    y = torch.tensor(p.y, device=device, dtype=dtype)
    xt = torch.tensor(p.x_test, device=device, dtype=dtype)
    rows: dict[str, list[float]] = {"D": [], "train_mse": [], "test_mse": [], "test_acc": [],
                                    "norm": [], "seconds": []}
    for dim in dims:
        t0 = time.perf_counter()
        if kind == "rff":
            w, bias = kernels.rff_params(x.shape[1], dim, bandwidth, seed, dtype, device)

            def feats(a: torch.Tensor, w=w, bias=bias) -> torch.Tensor:
                return kernels.rff_transform(a, w, bias)
        else:
            w = kernels.features.relu_params(x.shape[1], dim, seed, dtype, device)

            def feats(a: torch.Tensor, w=w) -> torch.Tensor:
                return kernels.relu_features(a, w)
        z = feats(x)
        beta = _fit_features(z, y, ridge)
        block = max(1, int(2e8 // (dim * z.element_size())))
        pred = torch.cat([feats(xt[i:i + block]) @ beta for i in range(0, len(xt), block)])
        pred_np = pred.double().cpu().numpy()
        rows["D"].append(dim)
        rows["train_mse"].append(float(((z @ beta - y) ** 2).mean()))
        rows["test_mse"].append(mse(pred_np, p.y_test))
        rows["test_acc"].append(sign_accuracy(pred_np, p.y_test))
        rows["norm"].append(float(beta.norm()))
        rows["seconds"].append(time.perf_counter() - t0)
    return {k: np.asarray(v) for k, v in rows.items()}


def kernel_sweep(p: Problem, bandwidths: list[float], ridge: float, device: torch.device,
                 dtype: torch.dtype) -> tuple[dict[str, np.ndarray], list[str]]:
    x = torch.tensor(p.x, device=device, dtype=dtype)
    y = torch.tensor(p.y, device=device, dtype=dtype)
    xt = torch.tensor(p.x_test, device=device, dtype=dtype)
    rows: dict[str, list[float]] = {"bandwidth": [], "train_mse": [], "test_mse": [],
                                    "test_acc": [], "jitter": [], "seconds": []}
    notes = []
    for bw in bandwidths:
        t0 = time.perf_counter()
        fit = kernels.fit_kernel_regression(x, y, bw, ridge)
        if len(fit.info.tried) > 1:
            notes.append(f"bandwidth {bw:.4g}: " + "; ".join(fit.info.tried))
        pred = kernels.predict_kernel_regression(fit, xt).double().cpu().numpy()
        train = kernels.predict_kernel_regression(fit, x).double().cpu().numpy()
        rows["bandwidth"].append(bw)
        rows["train_mse"].append(mse(train, p.y))
        rows["test_mse"].append(mse(pred, p.y_test))
        rows["test_acc"].append(sign_accuracy(pred, p.y_test))
        rows["jitter"].append(fit.info.jitter)
        rows["seconds"].append(time.perf_counter() - t0)
    return {k: np.asarray(v) for k, v in rows.items()}, notes
