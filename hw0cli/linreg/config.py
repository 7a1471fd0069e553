"""Problem 3's settings, each declared once (see hw0cli.options), and their checks.

Torch-free, so that `hw0 linreg --help` is generated from these declarations cheaply; the
computation is `hw0cli.linreg`.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Annotated, Any, get_args

from annotated_types import Ge, Gt, Interval

from hw0cli.choices import (
    MAX_SEED,
    MNIST_TRAIN_SIZE,
    Device,
    Dtype,
    LinregMethod,
    RfKind,
    SgdSchedule,
)
from hw0cli.errors import check
from hw0cli.options import Opt, check_declared, command_args, declarations, flag
from hw0cli.paths import DATA_DIR_ENV, OUT_ENV, default_data_dir, default_out_dir

METHODS = get_args(LinregMethod)
MIN_NORM = ("pinv", "lstsq", "solve")
DEFAULT_RF_D = (50, 100, 200, 300, 400, 450, 500, 550, 600, 800, 1000, 2000, 5000, 10000, 20000)
DEFAULT_BW_MULT = (0.125, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0)  # multiples of the median distance


@dataclass(frozen=True)
class LinregConfig:
    """Problem 3's settings; each field is a `hw0 linreg` option (see hw0cli.options)."""

    method: Annotated[LinregMethod, Opt("What to compute")] = "all"
    n: Annotated[int, Interval(ge=1, le=MNIST_TRAIN_SIZE), Opt(
        "Training images drawn (without replacement) from the 60,000")] = 500
    seed: Annotated[int, Interval(ge=0, le=MAX_SEED), Opt(
        "Seeds the sample, SGD order and random features")] = 0
    gd_iters: Annotated[int, Ge(1), Opt(
        "Gradient-descent iterations (0.6 ms each at n = 500 on a 2-core CPU)")] = 10_000
    gd_step: Annotated[float | None, Gt(0), Opt(
        "GD step", default_text="1/L, L = 2 sigma_max^2")] = None
    sgd_iters: Annotated[int, Ge(1), Opt("SGD steps")] = 20_000
    sgd_batch: Annotated[int, Ge(1), Opt("SGD batch size")] = 32
    sgd_step: Annotated[float | None, Gt(0), Opt(
        "SGD step (stable for any batch)", default_text="1/(2 n max ||x_i||^2)")] = None
    sgd_schedule: Annotated[SgdSchedule, Opt(
        "SGD step schedule; invsqrt: step / sqrt(1 + t / 1000)")] = "constant"
    overparam_iters: Annotated[int, Ge(1), Opt("SGD steps on (W1, b1) for b = W1 b1")] = 5_000
    overparam_init: Annotated[float, Gt(0), Opt(
        "Init scale: entries of W1 and b1 ~ N(0, init^2 / 784)")] = 0.01
    overparam_step: Annotated[float | None, Gt(0), Opt(
        "SGD step for b = W1 b1", default_text="1/L (the GD step)")] = None
    overparam_batch: Annotated[int, Ge(0), Opt("Batch size for b = W1 b1; 0 = full batch")] = 0
    rf_features: Annotated[tuple[int, ...], Ge(1), Opt(
        "Sweep of the number of random features D", default_text="50 .. 20000")] = DEFAULT_RF_D
    rf_kinds: Annotated[tuple[RfKind, ...], Opt("Random-feature maps",
                                                noun="random-feature map")] = ("rff", "relu")
    rf_ridge: Annotated[float, Ge(0), Opt("Random-features ridge; 0 = minimum-norm fit")] = 0.0
    kernel_bandwidths: Annotated[tuple[float, ...], Gt(0), Opt(
        "Kernel bandwidths", flag="--bandwidths", default_text="1/8 .. 8 x the median "
        "distance")] = ()
    kernel_ridge: Annotated[float, Ge(0), Opt("Kernel ridge lambda (0 = interpolate)",
                                              flag="--ridge")] = 0.0
    device: Annotated[Device, Opt("Device of the torch parts (factorized model, random "
                                  "features, kernels)")] = "auto"
    dtype: Annotated[Dtype, Opt("Float type of the torch parts")] = "float64"
    data_dir: Annotated[Path, Opt("Folder holding MNIST/raw/", envvar=DATA_DIR_ENV,
                                  default_text="./data")] = field(
        default_factory=default_data_dir)
    out: Annotated[Path, Opt("Output folder (linreg/ and plots/ inside)", envvar=OUT_ENV,
                             default_text="./artifacts")] = field(
        default_factory=default_out_dir)

    def science(self) -> dict[str, Any]:
        d = asdict(self)
        for k in ("data_dir", "out", "device"):
            d.pop(k)
        return d


def linreg_id(cfg: LinregConfig) -> str:
    """Readable and stable: the same settings give the same results file."""
    digest = hashlib.sha256(json.dumps(cfg.science(), sort_keys=True,
                                       default=str).encode()).hexdigest()[:8]
    return f"{cfg.method}-n{cfg.n}-s{cfg.seed}-{digest}"


def validate(cfg: LinregConfig) -> None:
    """Every declared choice and bound (hw0cli.options), and what a bound cannot say."""
    def opt(name: str) -> str:
        return flag(LinregConfig, name)

    check(all(b > 0 for b in cfg.kernel_bandwidths), f"Kernel bandwidths must be positive "
          f"(got {opt('kernel_bandwidths')} {','.join(f'{b:g}' for b in cfg.kernel_bandwidths)}).")
    check(bool(cfg.rf_features), f"{opt('rf_features')} needs positive feature counts D (e.g. "
          "100,500,2000).")
    check(bool(cfg.rf_kinds), f"{opt('rf_kinds')} takes rff and/or relu.")
    check_declared(cfg)


def linreg_args(stored: dict[str, Any]) -> list[str]:
    """`hw0 linreg` arguments that reproduce a stored config (the same results file): its
    method, n and seed, and every option that differs from its default."""
    fields = {d.name: d for d in declarations(LinregConfig)}
    known = {k: tuple(v) if fields[k].many else v for k, v in stored.items()
             if k in fields and k not in ("data_dir", "out")}
    return command_args(LinregConfig(**known), LinregConfig(), always=("method", "n", "seed"),
                        skip=("data_dir", "out"))
