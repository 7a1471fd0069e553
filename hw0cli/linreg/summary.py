"""Problem 3's headline figures as typed results.

`run_linreg` returns a `LinregSummary`; the results file stores its JSON form (`to_json`, the
same keys as always, so older files read back with `from_json`). The terminal, the report and
the plots read the typed fields.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any


def _known(cls: type, d: dict[str, Any]) -> dict[str, Any]:
    names = {f.name for f in dataclasses.fields(cls)}
    return {k: v for k, v in d.items() if k in names}


@dataclass
class SpectrumSummary:
    """The singular values of X that matter, and L = 2 sigma_max^2 (the gradient's
    Lipschitz constant)."""

    rank: int
    tol: float  # numpy's rank tolerance sigma_max * max(n, d) * eps
    sigma_max: float
    sigma_min_nonzero: float
    cond_X: float  # the stored key names
    cond_XtX: float
    L: float


@dataclass
class Fit:
    """How a solution b fits: mean squared errors, sign accuracy on the test set, ||b||."""

    train_mse: float
    test_mse: float
    test_acc: float
    norm: float


@dataclass
class ModeRate:
    """GD's error along one singular direction: predicted vs measured shrink per iteration."""

    index: int
    sigma: float
    predicted_factor: float
    measured_factor: float
    iters_for_1e3: float  # iterations the predicted factor needs for a 1000-fold shrink
    error_start: float
    error_end: float

    def to_json(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["iters_for_1e-3"] = d.pop("iters_for_1e3")
        return d

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> ModeRate:
        return cls(**_known(cls, {**d, "iters_for_1e3": d.get("iters_for_1e-3", math.nan)}))


@dataclass
class GradientDescent(Fit):
    """Full-batch gradient descent from b = 0, and its error along singular directions."""

    step: float = math.nan
    iters: int = 0
    diverged_at: int | None = None
    dist_pinv: float = math.nan
    modes: list[ModeRate] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {**dataclasses.asdict(self), "modes": [m.to_json() for m in self.modes]}

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> GradientDescent:
        modes = [ModeRate.from_json(m) for m in d.get("modes", [])]
        return cls(**_known(cls, {**d, "modes": modes}))


@dataclass
class Sgd(Fit):
    """Minibatch SGD from b = 0."""

    step: float = math.nan
    batch: int = 0
    schedule: str = "constant"
    iters: int = 0
    diverged_at: int | None = None
    dist_pinv: float = math.nan


@dataclass
class Factorized(Fit):
    """b = W1 b1 trained by SGD from a small initialization."""

    step: float = math.nan
    init: float = math.nan
    iters: int = 0
    dist_pinv: float = math.nan
    dist_gd: float = math.nan
    null_space_norm: float = math.nan


@dataclass
class FeatureSweep:
    """Random features of one kind over D: where test MSE peaks and where it is best."""

    peak_D: int
    peak_test_mse: float
    best_D: int
    best_test_mse: float
    best_test_acc: float


@dataclass
class RandomFeatures:
    ridge: float
    bandwidth: float
    kinds: dict[str, FeatureSweep] = field(default_factory=dict)  # rff, relu

    def to_json(self) -> dict[str, Any]:
        return {"ridge": self.ridge, "bandwidth": self.bandwidth,
                **{k: dataclasses.asdict(v) for k, v in self.kinds.items()}}

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> RandomFeatures:
        kinds = {k: FeatureSweep(**v) for k, v in d.items() if isinstance(v, dict)}
        return cls(d["ridge"], d["bandwidth"], kinds)


@dataclass
class Kernel:
    """Exact Gaussian kernel regression over bandwidths."""

    ridge: float
    best_bandwidth: float
    best_test_mse: float
    best_test_acc: float
    median_test_mse: float | None = None  # at the median heuristic, when swept by default
    median_test_acc: float | None = None


def _plain(obj: Any) -> dict[str, Any]:
    return obj.to_json() if hasattr(obj, "to_json") else dataclasses.asdict(obj)


def _read(cls: type, d: dict[str, Any]) -> Any:
    return cls.from_json(d) if hasattr(cls, "from_json") else cls(**_known(cls, d))


@dataclass
class LinregSummary:
    """Every headline figure of one `hw0 linreg` run; the parts not computed are None."""

    n: int
    seed: int
    d: int
    labels: str
    device: str
    spectrum: SpectrumSummary
    min_norm: dict[str, Fit] | None = None  # pinv, lstsq, solve
    min_norm_agreement: dict[str, float] | None = None  # ||b - b_pinv|| / ||b_pinv||
    gd: GradientDescent | None = None
    sgd: Sgd | None = None
    overparam: Factorized | None = None
    median_bandwidth: float | None = None
    rf: RandomFeatures | None = None
    kernel: Kernel | None = None
    seconds: float = 0.0

    def solvers(self) -> dict[str, Fit]:
        """GD, SGD and the factorized model, those that ran."""
        return {k: v for k in ("gd", "sgd", "overparam") if (v := getattr(self, k)) is not None}

    def to_json(self) -> dict[str, Any]:
        """The stored form (the keys results files have always had; parts not computed are
        left out)."""
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            if v is None:
                continue
            if f.name == "min_norm":
                v = {k: dataclasses.asdict(fit) for k, fit in v.items()}
            elif f.name == "kernel":
                v = {k: x for k, x in dataclasses.asdict(v).items() if x is not None}
            elif dataclasses.is_dataclass(v):
                v = _plain(v)
            out[f.name] = v
        return out

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> LinregSummary:
        """From a results file's summary (any version: missing parts are None)."""
        parts = {"spectrum": SpectrumSummary, "gd": GradientDescent, "sgd": Sgd,
                 "overparam": Factorized, "rf": RandomFeatures, "kernel": Kernel}
        typed = {k: _read(kind, d[k]) for k, kind in parts.items() if k in d}
        if "min_norm" in d:
            typed["min_norm"] = {k: _read(Fit, v) for k, v in d["min_norm"].items()}
        return cls(**{**_known(cls, d), **typed})
