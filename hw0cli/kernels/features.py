"""Random features.

Random Fourier features (Rahimi and Recht 2007) for the Gaussian kernel of bandwidth sigma:
    z(x) = sqrt(2 / D) cos(W x + b),  W_ij ~ N(0, 1 / sigma^2),  b_j ~ U[0, 2 pi),
so that E[z(x) . z(x')] = exp(-||x - x'||^2 / (2 sigma^2)); the error of the estimate shrinks
like 1 / sqrt(D). This is scikit-learn's RBFSampler with gamma = 1 / (2 sigma^2).
ReLU random features: z(x) = sqrt(2 / D) max(0, W x), W_ij ~ N(0, 1 / d) (the arc-cosine
kernel of degree 1, up to scale).
"""

from __future__ import annotations

import math

import torch


def rff_params(d: int, num_features: int, bandwidth: float, seed: int = 0,
               dtype: torch.dtype = torch.float64,
               device: torch.device | str = "cpu") -> tuple[torch.Tensor, torch.Tensor]:
    """(W (d, D), b (D,)) for `rff_transform`."""
    g = torch.Generator().manual_seed(seed)
    w = torch.randn(d, num_features, generator=g, dtype=torch.float64) / bandwidth
    b = torch.rand(num_features, generator=g, dtype=torch.float64) * (2 * math.pi)
    return w.to(device, dtype), b.to(device, dtype)


def rff_transform(x: torch.Tensor, w: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """z(x) = sqrt(2/D) cos(x W + b): (n, d) -> (n, D)."""
    return torch.cos(x @ w + b) * math.sqrt(2.0 / w.shape[1])


def relu_params(d: int, num_features: int, seed: int = 0, dtype: torch.dtype = torch.float64,
                device: torch.device | str = "cpu") -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(d, num_features, generator=g, dtype=torch.float64)
            / math.sqrt(d)).to(device, dtype)


def relu_features(x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """z(x) = sqrt(2/D) max(0, x W): (n, d) -> (n, D)."""
    return torch.relu(x @ w) * math.sqrt(2.0 / w.shape[1])
