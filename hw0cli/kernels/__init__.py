"""Kernel regression and random features: pure torch functions, CPU or GPU.

Conventions: X is (n, d), a bandwidth sigma defines the Gaussian kernel
k(x, x') = exp(-||x - x'||^2 / (2 sigma^2)), i.e. scikit-learn's rbf with gamma = 1/(2 sigma^2).
Kernel matrices are built in row blocks so peak memory stays near the output's size.
"""

from hw0cli.kernels.features import relu_features, rff_params, rff_transform
from hw0cli.kernels.gaussian import (
    KernelFit,
    fit_kernel_regression,
    gaussian_kernel,
    median_bandwidth,
    predict_kernel_regression,
    solve_psd,
    sq_dists,
)

__all__ = [
    "KernelFit", "fit_kernel_regression", "gaussian_kernel", "median_bandwidth",
    "predict_kernel_regression", "relu_features", "rff_params", "rff_transform", "solve_psd",
    "sq_dists",
]
