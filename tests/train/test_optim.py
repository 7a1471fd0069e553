"""The Muon update of `--optimizer muon`: what it does to a gradient's spectrum and to the
filters, checked against direct computations."""

import pytest
import torch

from hw0cli.data import load_cifar10
from hw0cli.train.optim import muon_update, orthogonalize
from hw0cli.train.trainer import Trainer
from tests.helpers import tiny_config


def spectrum(u: torch.Tensor, s: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    return u @ torch.diag(s) @ v.T


def test_orthogonalize_evens_the_spectrum_and_keeps_the_directions():
    """A gradient whose singular values span 100x comes out with them within a few x of one
    another, along the same singular vectors (close to U V^T); a tall matrix is treated as its
    transpose."""
    torch.manual_seed(0)
    u, _ = torch.linalg.qr(torch.randn(16, 16))
    v, _ = torch.linalg.qr(torch.randn(144, 16))
    g = spectrum(u, torch.logspace(-1, 1, 16), v)
    o = orthogonalize(g)
    sv = torch.linalg.svdvals(o)
    assert sv.max() / sv.min() < 5 and 0.7 < sv.max() < 1.6
    ref = u @ v.T
    assert float((o * ref).sum() / (o.norm() * ref.norm())) > 0.9
    torch.testing.assert_close(orthogonalize(g.T), o.T)
    torch.testing.assert_close(orthogonalize(10 * g), o)  # the gradient's scale drops out


def test_muon_update_renormalizes_the_filters_and_steps_along_the_nesterov_momentum():
    torch.manual_seed(1)
    p, g, buf = torch.randn(8, 4, 3, 3), torch.randn(8, 4, 3, 3), torch.randn(8, 4, 3, 3)
    lr, m = 0.1, 0.6
    new_buf = m * buf + g
    want = p * (8 ** 0.5 / p.norm()) - lr * orthogonalize(
        (g + m * new_buf).reshape(8, -1)).view_as(p)
    muon_update([p], [g], [buf], torch.tensor(lr), m)
    torch.testing.assert_close(buf, new_buf)
    torch.testing.assert_close(p, want)


def test_muon_moves_the_filters_by_its_own_lr_and_the_rest_by_sgd(cifar_root, tmp_path):
    """--optimizer muon: every convolution filter's step is --muon-lr times an orthogonalized
    matrix (its size set by the lr, not by the gradient's), after scaling the filters to norm
    sqrt(out channels); BatchNorm parameters and the head take the SGD step they take without
    it. Weight decay reaches the rest and not the filters (their renormalization bounds them,
    as in airbench)."""
    data = load_cifar10(cifar_root)
    trs, before = {}, {}
    for opt, muon_lr, wd in (("sgd", 0.24, 5e-4), ("muon", 0.02, 5e-4), ("muon", 0.04, 5e-4),
                             ("muon", 0.02, 0.5)):
        cfg = tiny_config(cifar_root, tmp_path, optimizer=opt, muon_lr=muon_lr, momentum=0.9,
                          nesterov=True, schedule="constant", weight_decay=wd)
        tr = Trainer(cfg, data, torch.device("cpu"), "fp32", None)
        before[opt, muon_lr] = [p.detach().clone() for p in tr.params]
        tr.load_draws(1)
        tr.step_fn(cfg.batch_size)()
        trs[opt, muon_lr, wd] = tr
    sgd, small, large = trs["sgd", 0.24, 5e-4], trs["muon", 0.02, 5e-4], trs["muon", 0.04, 5e-4]
    decayed = trs["muon", 0.02, 0.5]
    pairs = list(zip(small.params, decayed.params, strict=True))
    assert all(torch.equal(p, q) for p, q in pairs if p.ndim == 4)
    assert not all(torch.equal(p, q) for p, q in pairs if p.ndim != 4)
    for i, p in enumerate(small.params):
        if p.ndim != 4:
            torch.testing.assert_close(p, sgd.params[i])  # same SGD step as without muon
            continue
        start = before["muon", 0.02][i]
        scaled = start * (p.size(0) ** 0.5 / start.norm())
        step_small, step_large = scaled - p, scaled - large.params[i]
        torch.testing.assert_close(step_large, 2 * step_small, rtol=1e-4, atol=1e-6)
        sv = torch.linalg.svdvals(step_small.reshape(p.size(0), -1) / 0.02)
        assert sv.max() < 1.6 and sv.max() / sv.min() < 10
        assert not torch.allclose(p, sgd.params[i])


@pytest.mark.parametrize("bad", [{"precision": "fp16"}, {"batchnorm": False}])
def test_muon_refuses_what_it_does_not_support(cifar_root, tmp_path, bad):
    from hw0cli.errors import Hw0UsageError
    from hw0cli.train.config import validate
    with pytest.raises(Hw0UsageError, match="--optimizer muon"):
        validate(tiny_config(cifar_root, tmp_path, optimizer="muon", **bad))
