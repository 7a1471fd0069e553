"""Least-squares solvers and gradient methods against numpy, on random and MNIST-like data."""

import json

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from hw0cli import linreg as lr
from hw0cli import store
from hw0cli.errors import Hw0Error
from hw0cli.linreg import run as lr_run
from hw0cli.linreg import solvers
from tests.helpers import write_mnist

runner = CliRunner()


def problem(x, y, xt=None, yt=None):
    xt = x if xt is None else xt
    yt = y if yt is None else yt
    return lr.Problem(x, y, xt, yt, np.arange(len(y)))


@pytest.fixture
def wide():
    rng = np.random.default_rng(0)
    return rng.normal(size=(20, 50)), rng.normal(size=20)


@pytest.fixture
def rank_deficient():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(30, 6)) @ rng.normal(size=(6, 40))  # rank 6
    return x, rng.normal(size=30)


def test_min_norm_solvers_match_numpy(wide):
    x, y = wide
    ref = np.linalg.pinv(x) @ y
    for how in lr.MIN_NORM:
        np.testing.assert_allclose(lr.min_norm(x, y, how), ref, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(x @ ref, y, atol=1e-10)  # interpolates (n < d, full row rank)


def test_rank_deficient(rank_deficient):
    x, y = rank_deficient
    sp = lr.spectrum(x)
    assert sp.rank == np.linalg.matrix_rank(x) == 6
    s = np.linalg.svd(x, compute_uv=False)
    assert sp.cond_x == pytest.approx(s[0] / s[5], rel=1e-12)
    assert sp.cond_xtx == pytest.approx((s[0] / s[5]) ** 2, rel=1e-12)
    ref = np.linalg.pinv(x) @ y
    np.testing.assert_allclose(lr.min_norm(x, y, "pinv"), ref, rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(lr.min_norm(x, y, "lstsq"), ref, rtol=1e-6, atol=1e-8)
    # solve on a singular Gram matrix: an error, or an answer far from the min-norm one
    try:
        b = lr.min_norm(x, y, "solve")
        assert not np.allclose(b, ref, rtol=1e-3)
    except Hw0Error as exc:
        assert "row rank" in str(exc)


def test_gd_converges_to_pinv_and_stays_in_row_space(wide):
    x, y = wide
    p = problem(x, y)
    sp = lr.spectrum(x)
    b_ref = np.linalg.pinv(x) @ y
    b, curve = lr.gradient_descent(p, 1 / (2 * sp.singular_values[0] ** 2), 4000, b_ref,
                                   sp.vt[[0, sp.rank - 1]])
    np.testing.assert_allclose(b, b_ref, rtol=1e-6, atol=1e-8)
    null = b - sp.vt[:sp.rank].T @ (sp.vt[:sp.rank] @ b)
    assert np.linalg.norm(null) < 1e-10
    assert curve.train_mse[-1] < 1e-12 and curve.iters[-1] == 4000
    rates = lr_run._mode_rates(curve, sp, [0, sp.rank - 1], 1 / (2 * sp.singular_values[0] ** 2))
    bottom = rates[1]
    assert bottom.measured_factor == pytest.approx(bottom.predicted_factor, rel=1e-6)


def test_gd_divergence_stops_cleanly(wide):
    x, y = wide
    sp = lr.spectrum(x)
    L = 2 * sp.singular_values[0] ** 2
    _b, curve = lr.gradient_descent(problem(x, y), 2.5 / L, 5000, np.zeros(50), sp.vt[:1])
    assert curve.diverged_at is not None and curve.diverged_at < 5000
    assert len(curve.train_mse) == len(curve.iters) >= 2


def test_sgd_converges_on_consistent_system(wide):
    x, y = wide
    b_ref = np.linalg.pinv(x) @ y
    sp = lr.spectrum(x)
    step = 1 / (2 * len(y) * (x**2).sum(1).max())
    b, _ = lr.sgd(problem(x, y), step, 60_000, 5, "constant", 0, b_ref, sp.vt[:1])
    assert np.linalg.norm(b - b_ref) / np.linalg.norm(b_ref) < 1e-3


def test_torch_feature_fit_matches_numpy(wide):
    x, y = wide
    z = torch.tensor(x)
    np.testing.assert_allclose(solvers._fit_features(z, torch.tensor(y), 0.0).numpy(),
                               np.linalg.pinv(x) @ y, rtol=1e-8, atol=1e-10)
    lam = 0.3
    ref = x.T @ np.linalg.solve(x @ x.T + lam * np.eye(20), y)
    np.testing.assert_allclose(solvers._fit_features(z, torch.tensor(y), lam).numpy(), ref,
                               rtol=1e-10, atol=1e-12)


def test_parity_labels_and_draw():
    assert lr.parity_labels(np.arange(4)).tolist() == [-1, 1, -1, 1]
    idx = lr.draw_indices(500, 0)
    assert len(set(idx.tolist())) == 500 and idx.max() < 60_000
    assert np.array_equal(idx, lr.draw_indices(500, 0))


@pytest.mark.slow
def test_run_all_on_synthetic_mnist_recomputes_from_stored_indices(tmp_path):
    root = write_mnist(tmp_path / "d", n_train=300, n_test=100)
    cfg = lr.LinregConfig(method="all", n=120, seed=3, gd_iters=300, sgd_iters=300,
                          overparam_iters=200, rf_features=(20, 120, 400), data_dir=root,
                          out=tmp_path / "o", device="cpu")
    res = lr.run_linreg(cfg)
    rec = store.read_h5(res.path)
    assert rec.attrs["kind"] == "linreg" and rec.attrs["config"]["n"] == 120
    # the typed summary is what the file stores, and reads back from it unchanged
    stored = rec.attrs["summary"]
    assert json.dumps(res.summary.to_json(), sort_keys=True) == json.dumps(stored, sort_keys=True)
    again = lr.LinregSummary.from_json(stored).to_json()
    assert json.dumps(again, sort_keys=True) == json.dumps(stored, sort_keys=True)
    # independent recomputation from the stored indices, with numpy only
    from hw0cli.data import read_idx
    raw = root / "MNIST" / "raw"
    imgs = read_idx(raw / "train-images-idx3-ubyte.gz").reshape(300, -1) / 255.0
    labs = read_idx(raw / "train-labels-idx1-ubyte.gz")
    idx = rec.arrays["indices"]
    x, y = imgs[idx], np.where(labs[idx] % 2 == 1, 1.0, -1.0)
    s = np.linalg.svd(x, compute_uv=False)
    assert res.summary.spectrum.rank == np.linalg.matrix_rank(x)
    np.testing.assert_allclose(rec.arrays["singular_values"], s, rtol=1e-10)
    xt = read_idx(raw / "t10k-images-idx3-ubyte.gz").reshape(100, -1) / 255.0
    yt = np.where(read_idx(raw / "t10k-labels-idx1-ubyte.gz") % 2 == 1, 1.0, -1.0)
    b = np.linalg.pinv(x) @ y
    assert res.summary.min_norm["pinv"].test_mse == pytest.approx(
        np.mean((xt @ b - yt) ** 2), rel=1e-8)
    # GD curve points: run plain GD with numpy to the logged iterations
    step, bb, it = res.summary.gd.step, np.zeros(784), rec.arrays["curves/gd/iter"]
    want = {int(t): v for t, v in zip(it, rec.arrays["curves/gd/train_mse"], strict=True)}
    for t in range(1, int(it[-1]) + 1):
        bb -= step * 2 * x.T @ (x @ bb - y)
        if t in want:
            assert np.mean((x @ bb - y) ** 2) == pytest.approx(want[t], rel=1e-9)
    # Gaussian kernel at the median bandwidth
    d = np.sqrt(((x[:, None] - x[None]) ** 2).sum(-1))
    med = np.median(d[np.triu_indices(len(x), 1)])
    k = np.exp(-d**2 / (2 * med**2))
    kt = np.exp(-((xt[:, None] - x[None]) ** 2).sum(-1) / (2 * med**2))
    pred = kt @ np.linalg.solve(k, y)
    assert res.summary.kernel.median_test_mse == pytest.approx(
        np.mean((pred - yt) ** 2), rel=1e-6)
    assert all(p.stat().st_size > 1000 for p in res.plots) and len(res.plots) == 4
