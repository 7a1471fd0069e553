"""What every stored dataset means: its unit and a one-line description.

`store` writes these as the `units` and `description` attributes of each dataset it knows, so a
run file explains itself in `h5dump -A`, HDFView or h5py without this package. Names are matched
by their group and last component (`history/train_err`, `eval/vflip/accuracy`,
`curves/gd/test_mse`); a name missing here gets no attributes, and a test walks real files to
keep this table complete for the history, eval and linreg groups.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Meaning:
    units: str
    description: str


_FRACTION = "fraction (0-1)"

HISTORY = {
    "epoch": Meaning("epoch", "epoch number, 1-based (row i of every history dataset)"),
    "train_loss": Meaning("nats", "mean cross-entropy on the training batches of the epoch "
                          "(train mode, running average)"),
    "train_err": Meaning(_FRACTION, "fraction of training images misclassified during the "
                         "epoch, on the labels used (running, train mode)"),
    "test_loss": Meaning("nats", "mean cross-entropy on the test set (eval mode); "
                         "NaN where the test set was not evaluated"),
    "test_err": Meaning(_FRACTION, "fraction of the test images misclassified (eval "
                        "mode); NaN where the test set was not evaluated"),
    "lr": Meaning("1", "learning rate at the end of the epoch"),
    "seconds": Meaning("s", "wall time of the epoch's training steps (one-time compilation "
                       "included in the first)"),
    "eval_seconds": Meaning("s", "wall time of the epoch's evaluations"),
    "train_eval_err": Meaning(_FRACTION, "error on the whole training subset in eval mode, on "
                              "the labels used; NaN where not measured"),
    "test_err_tta": Meaning(_FRACTION, "test error with flip test-time averaging; NaN without "
                            "--tta"),
}

EVAL = {
    "accuracy": Meaning(_FRACTION, "test accuracy of this view"),
    "per_class_accuracy": Meaning(_FRACTION, "test accuracy per true class (CIFAR-10 class "
                                  "order, see the run's classes attribute)"),
    "confusion": Meaning("images", "confusion matrix: rows true class, columns predicted"),
    "provider": Meaning("", "inference provider that produced the logits"),
    "backend": Meaning("", "inference backend (onnxruntime or torch)"),
    "model": Meaning("", "model variant evaluated (fp32, fp16, int8)"),
    "seconds": Meaning("s", "wall time of inference over every evaluated view"),
    "images_per_s": Meaning("images/s", "inference throughput"),
    "backend_choice": Meaning("", "how --backend auto chose on a GPU (JSON): images/s and batch "
                              "size measured per candidate, those that could not run and why; "
                              "null where nothing was measured"),
    "logits": Meaning("1", "raw class scores, one row per test image"),
}

_CURVE = {
    "iter": Meaning("iterations", "iteration at which the row was recorded"),
    "train_mse": Meaning("squared label units", "mean squared error on the training sample"),
    "test_mse": Meaning("squared label units", "mean squared error on the test images"),
    "dist_pinv": Meaning("1", "Euclidean distance to the minimum-norm solution b_pinv"),
    "mode_error": Meaning("1", "error along each tracked right singular direction (columns: "
                          "mode_index)"),
}

_SWEEP = {
    "D": Meaning("features", "number of random features"),
    "bandwidth": Meaning("pixel-value distance", "kernel bandwidth"),
    "train_mse": _CURVE["train_mse"],
    "test_mse": _CURVE["test_mse"],
    "test_acc": Meaning(_FRACTION, "test accuracy of sign(prediction) (the linreg labels)"),
    "norm": Meaning("1", "Euclidean norm of the fitted coefficients"),
    "jitter": Meaning("1", "diagonal jitter added to the kernel matrix for a stable solve"),
    "seconds": Meaning("s", "wall time of the fit"),
}

LINREG = {
    "indices": Meaning("index", "indices of the training images drawn from MNIST's 60,000"),
    "singular_values": Meaning("1", "singular values of the design matrix X, descending"),
    "mode_index": Meaning("index", "which singular directions the mode_error curves track"),
    "solutions": Meaning("1", "coefficient vector b of this solution (one per pixel + bias)"),
}


def meaning(name: str, kind: str | None = None) -> Meaning | None:
    """The unit and description of dataset `name` in a file of `kind` (train or linreg)."""
    parts = name.strip("/").split("/")
    leaf = parts[-1]
    if parts[0] == "history" and len(parts) == 2:
        return HISTORY.get(leaf)
    if parts[0] == "eval" or parts[0].startswith("eval_"):
        return EVAL.get(leaf)
    if kind != "linreg":
        return None
    if parts[0] == "curves":
        return _CURVE.get(leaf)
    if parts[0] == "sweeps":
        return _SWEEP.get(leaf)
    if parts[0] == "solutions":
        return LINREG["solutions"]
    return LINREG.get(name) if len(parts) == 1 else None
