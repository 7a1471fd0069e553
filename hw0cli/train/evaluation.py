"""A run's evaluation on the device: eval-mode logits of the device-resident images in large
fixed-size chunks (eager: their kernels dwarf the launch overhead), the test loss and error, the
flip-TTA error, the full-train error and the accuracy on vertically flipped test images."""

from __future__ import annotations

import math
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from hw0cli.train.augment import translate
from hw0cli.train.config import TrainConfig
from hw0cli.train.parts import FirstCalls, error_rate
from hw0cli.views import autocast, hflip, to_input, vflip


class Evaluation:
    """Evaluates `eval_model` (the EMA model, or the trained one) on the run's images; `model`:
    the trained model, put back in its training mode afterwards."""

    def __init__(self, cfg: TrainConfig, model: nn.Module, eval_model: nn.Module,
                 train: tuple[torch.Tensor, torch.Tensor], test: tuple[torch.Tensor, torch.Tensor],
                 device: torch.device, precision: str) -> None:
        self.cfg, self.model, self.eval_model = cfg, model, eval_model
        self.x_train, self.y_train = train
        self.x_test, self.y_test = test
        self.device, self.precision = device, precision
        # evaluation chunk: 20,000 flip-eval images in two launches on a GPU (~1.3 GB of
        # activations per layer at c = 64); small on the CPU for cache-friendly blocks
        self.eval_bs = min(10_000 if device.type == "cuda" else 500, len(self.y_test))
        self.calls = FirstCalls(self._eval_chunk, device, compiled=False)

    def _eval_chunk(self, xb: torch.Tensor) -> torch.Tensor:
        with torch.no_grad(), autocast(self.device, self.precision):
            return self.eval_model(to_input(xb)).float()

    def logits(self, x: torch.Tensor, view: Callable | None = None) -> torch.Tensor:
        """Eval-mode logits of uint8 images x, in chunks of eval_bs (views applied to each)."""
        was_training = self.model.training
        self.model.eval()
        self.eval_model.eval()
        e = self.eval_bs
        out = torch.empty(len(x), 10, device=self.device)
        for i in range(0, len(x), e):
            xb = x[i:i + e]
            out[i:i + len(xb)].copy_(self.calls(xb if view is None else view(xb)))
        self.model.train(was_training)
        return out

    def evaluate(self, test: bool = True, train: bool = False) -> dict[str, float]:
        """Test loss/error (plain CE) and flip-TTA error when `test`; the full-train error
        (eval mode, on the labels trained on) when `train`; NaN for what was not asked."""
        t1 = time.perf_counter()
        res = {"test_loss": math.nan, "test_err": math.nan, "test_err_tta": math.nan,
               "train_eval_err": math.nan}
        if test:
            logits = self.logits(self.x_test)
            res["test_loss"] = F.cross_entropy(logits, self.y_test).item()
            res["test_err"] = error_rate(logits, self.y_test)
            if self.cfg.tta:
                res["test_err_tta"] = error_rate(self.tta_logits(logits), self.y_test)
                # what a TTA accuracy costs at inference, the plain pass included (airbench
                # counts it in the training time): the .item() calls above synchronize
                res["tta_seconds"] = time.perf_counter() - t1
        if train:
            res["train_eval_err"] = error_rate(self.logits(self.x_train), self.y_train)
        res["eval_seconds"] = time.perf_counter() - t1
        return res

    def tta_logits(self, plain: torch.Tensor) -> torch.Tensor:
        """Summed logits of the test images and their mirrors; with tta_shift s > 0 also of
        both translated by (s, s) and (-s, -s) (reflect padding), each with its mirror."""
        total = plain + self.logits(self.x_test, hflip)
        s = self.cfg.tta_shift
        for d in ((s, s), (-s, -s)) if s else ():
            moved = translate(self.x_test, d)
            total = total + self.logits(moved) + self.logits(moved, hflip)
        return total

    def view_accuracy(self, test_err: float) -> dict[str, float]:
        return {"original": 1.0 - test_err,
                "vflip": 1.0 - error_rate(self.logits(self.x_test, vflip), self.y_test)}
