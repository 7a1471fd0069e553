"""What one random-features fit of a linreg run holds, checked against the memory available
before the sweep starts."""

from __future__ import annotations

import torch

from hw0cli.linreg.config import LinregConfig
from hw0cli.memory import MemoryEstimate, check_fits
from hw0cli.options import flag

MNIST_PIXELS = 28 * 28


def random_features_estimate(n: int, d: int, dim: int, element_size: int) -> MemoryEstimate:
    """What one random-features fit with `dim` features holds: the projection (drawn in
    float64), the features of the n training points with the pseudo-inverse's factors, and the
    test set's blocks (2e8 bytes, at least one row)."""
    return MemoryEstimate({
        "projection": (8 + element_size) * d * dim,
        "features and their pseudo-inverse": 5 * element_size * n * dim,
        "test blocks": 3 * max(int(2e8), element_size * dim),
    })


def check_random_features_fit(cfg: LinregConfig, device: torch.device) -> None:
    """The largest feature count of a linreg run's random-features sweep must fit."""
    dim = max(cfg.rf_features)
    est = random_features_estimate(cfg.n, MNIST_PIXELS, dim, 8 if cfg.dtype == "float64" else 4)
    opt = flag(LinregConfig, "rf_features")
    check_fits(est, device, f"The random-features fit with {opt} {dim} at n = {cfg.n}",
               f"Use fewer features in {opt} (the default sweep stops at 20000), or "
               f"--dtype float32 to halve it.")
