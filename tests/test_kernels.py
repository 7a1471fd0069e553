"""Kernel code against scikit-learn and numpy references, with explicit tolerances."""

import numpy as np
import pytest
import torch
from sklearn.kernel_approximation import RBFSampler
from sklearn.kernel_ridge import KernelRidge
from sklearn.metrics.pairwise import rbf_kernel

from hw0cli import kernels
from hw0cli.errors import Hw0Error


def data(n=80, d=6, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, d))
    return x, np.sin(x.sum(1)) + 0.1 * rng.normal(size=n), rng.normal(size=(30, d))


def test_gaussian_kernel_matches_sklearn_and_blocks():
    x, _, xt = data()
    sigma = 1.7
    ref = rbf_kernel(xt, x, gamma=1 / (2 * sigma**2))
    got = kernels.gaussian_kernel(torch.tensor(xt), torch.tensor(x), sigma).numpy()
    np.testing.assert_allclose(got, ref, rtol=1e-12, atol=1e-13)
    from hw0cli.kernels import gaussian
    old = gaussian.BLOCK_BYTES
    gaussian.BLOCK_BYTES = 3 * 80 * 8  # 3 rows per block: exercises the blocking
    try:
        blocked = kernels.gaussian_kernel(torch.tensor(xt), torch.tensor(x), sigma).numpy()
    finally:
        gaussian.BLOCK_BYTES = old
    np.testing.assert_allclose(blocked, ref, rtol=1e-12, atol=1e-13)


@pytest.mark.parametrize("ridge", [1e-3, 0.5])
def test_kernel_regression_equals_sklearn_kernel_ridge(ridge):
    x, y, xt = data()
    sigma = 1.3
    kr = KernelRidge(alpha=ridge, kernel="rbf", gamma=1 / (2 * sigma**2)).fit(x, y)
    fit = kernels.fit_kernel_regression(torch.tensor(x), torch.tensor(y), sigma, ridge)
    pred = kernels.predict_kernel_regression(fit, torch.tensor(xt)).numpy()
    np.testing.assert_allclose(pred, kr.predict(xt), rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(fit.alpha.numpy(), kr.dual_coef_, rtol=1e-7, atol=1e-9)


def test_interpolation_fits_training_data_float64_and_float32():
    x, y, _ = data(n=60)
    for dt, tol in ((torch.float64, 1e-8), (torch.float32, 2e-2)):
        fit = kernels.fit_kernel_regression(torch.tensor(x, dtype=dt), torch.tensor(y, dtype=dt),
                                            2.0)
        pred = kernels.predict_kernel_regression(fit, torch.tensor(x, dtype=dt)).double().numpy()
        assert np.abs(pred - y).max() < tol, dt


def test_jitter_escalation_on_singular_matrix():
    x, y, _ = data(n=30)
    xx = torch.tensor(np.vstack([x, x]))  # duplicated points: K is exactly singular
    yy = torch.tensor(np.concatenate([y, y]))
    k = kernels.gaussian_kernel(xx, xx, 1.0)
    alpha, info = kernels.solve_psd(k, yy)
    assert info.method == "cholesky" and info.jitter > 0 and len(info.tried) >= 2
    assert torch.isfinite(alpha).all()
    assert float((k @ alpha - yy).abs().max()) < 1e-4


def test_cg_fallback_and_clear_error(monkeypatch):
    x, y, _ = data(n=40)
    k = kernels.gaussian_kernel(torch.tensor(x), torch.tensor(x), 1.0)
    from hw0cli.kernels import gaussian

    def never(a, out):  # pretend every factorization fails
        out[1].fill_(1)
        return out

    monkeypatch.setattr(gaussian.torch.linalg, "cholesky_ex", never)
    alpha, info = kernels.solve_psd(k, torch.tensor(y), ridge=0.1)
    assert info.method == "cg" and info.cg_iterations > 0
    ref = np.linalg.solve(k.numpy() + (0.1 + info.jitter) * np.eye(40), y)
    np.testing.assert_allclose(alpha.numpy(), ref, rtol=1e-4, atol=1e-6)
    # indefinite, distinct eigenvalues: Cholesky fails (patched), CG stalls within 3 steps
    bad = torch.diag(torch.tensor([1.0, -1.0, 2.0, -2.0, 3.0], dtype=torch.float64))
    with pytest.raises(Hw0Error, match="not numerically positive definite"):
        kernels.solve_psd(bad, torch.ones(5, dtype=torch.float64), cg_maxiter=3)


def test_rff_error_shrinks_like_inverse_sqrt_d():
    x, _, _ = data(n=40, d=5)
    sigma = 2.0
    k = rbf_kernel(x, x, gamma=1 / (2 * sigma**2))
    errs = {}
    for dim in (100, 1600, 25600):
        e = []
        for seed in range(4):
            w, b = kernels.rff_params(5, dim, sigma, seed)
            z = kernels.rff_transform(torch.tensor(x), w, b).numpy()
            e.append(np.abs(z @ z.T - k).mean())
        errs[dim] = np.mean(e)
    # 16x more features -> ~4x smaller error (1/sqrt(D)); allow 2.5x to 6.5x
    for a, b in ((100, 1600), (1600, 25600)):
        assert 2.5 < errs[a] / errs[b] < 6.5, errs


def test_rff_matches_sklearn_rbfsampler_in_distribution():
    d, dim, sigma = 6, 20000, 1.5
    w, b = kernels.rff_params(d, dim, sigma, seed=0)
    s = RBFSampler(gamma=1 / (2 * sigma**2), n_components=dim, random_state=0).fit(
        np.zeros((1, d)))
    ours, theirs = w.numpy().ravel(), s.random_weights_.ravel()
    assert abs(ours.std() - theirs.std()) < 0.01 * theirs.std()
    assert abs(ours.mean()) < 0.01 and abs(theirs.mean()) < 0.01
    qs = [0.05, 0.25, 0.5, 0.75, 0.95]
    np.testing.assert_allclose(np.quantile(ours, qs), np.quantile(theirs, qs), atol=0.02)
    np.testing.assert_allclose(np.quantile(b.numpy(), qs),
                               np.quantile(s.random_offset_, qs), atol=0.1)


def test_median_bandwidth_matches_numpy():
    x, _, _ = data(n=50)
    dists = np.sqrt(((x[:, None] - x[None]) ** 2).sum(-1))[np.triu_indices(50, 1)]
    assert kernels.median_bandwidth(torch.tensor(x)) == pytest.approx(np.median(dists),
                                                                      rel=1e-9)
