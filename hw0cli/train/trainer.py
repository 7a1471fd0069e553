"""The device-side trainer: one run's data, model and optimizer on the device, the training step as
one compiled unit, and evaluation in fixed-size chunks.

Design (after airbench): the training set lives on the device as uint8. Each epoch's random
decisions (the permutation, flips, crop offsets, cutout squares) are drawn on the CPU from a
generator seeded by (seed, epoch), so an epoch's randomness does not depend on what ran before
it and a resumed run equals an uninterrupted one; they are copied into buffers allocated once. A
training step reads everything it needs from device tensors: its batch is `perm[pos + i]`, its
learning rate `lr_epoch[j]`, and it advances `pos`, `j` and `k` itself. So the step has no
Python arguments and no host synchronization: gather, augmentation, uint8 -> float, forward,
loss, backward, the optimizer's update (`hw0cli.train.optim`), BatchNorm statistics and metric
accumulation are one function that torch.compile captures whole (`fullgraph=True`; with
`compile_mode="reduce-overhead"` also as one CUDA graph). Its shapes depend on the width, batch
size and augmentation only, so the compile cache serves every run of those. A partial last batch
(every image is seen every epoch, as with the notebook's DataLoader) runs the same step eagerly:
one eager step per epoch costs milliseconds, a second compiled graph tens of seconds of one-time
cost. Evaluation runs eagerly too, in large fixed-size chunks whose kernels dwarf the launch
overhead (`hw0cli.train.evaluation`). So one graph is compiled per run.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from hw0cli.data import CifarData
from hw0cli.errors import Hw0UsageError
from hw0cli.models import Normalize, cnn_from_config, whiten_first_conv
from hw0cli.train.augment import (
    augment_batch,
    cutout_mask,
    epoch_draws,
    parse_augment,
)
from hw0cli.train.evaluation import Evaluation
from hw0cli.train.optim import Optim
from hw0cli.train.parts import (
    MODEL_KEYS,
    FirstCalls,
    Lookahead,
    all_finite,
    compile_step,
    ema_update,
    lr_at,
    noisy_labels,
    subset_indices,
    worst_view_loss,
)
from hw0cli.views import autocast, to_input, vflip

if TYPE_CHECKING:
    from hw0cli.train.config import TrainConfig



def whole_step_capturable() -> bool:
    """Whether this torch's Dynamo traces `loss.backward()` (then the step is one graph)."""
    return hasattr(torch._dynamo.config, "trace_autograd_ops")


class Trainer:
    """Everything one run holds on the device; one epoch of training; evaluation."""

    def __init__(self, cfg: TrainConfig, data: CifarData, device: torch.device, precision: str,
                 compile_mode: str | None) -> None:
        """`compile_mode` None trains eagerly; otherwise a torch.compile mode for the step."""
        self.cfg, self.device, self.precision = cfg, device, precision
        self.ops = parse_augment(cfg.augment)
        available = len(data.train_y)
        if cfg.train_samples > available:
            raise Hw0UsageError(f"--train-samples {cfg.train_samples} exceeds the {available} "
                                f"training images in {cfg.data_dir}.")
        self.idx = subset_indices(available, cfg.train_samples, cfg.seed)
        self.y_true = data.train_y[self.idx]
        self.y_used, self.mask = noisy_labels(self.y_true, cfg.noise, cfg.seed)
        self.realized_noise = float(np.mean(self.y_used != self.y_true))
        self.n = len(self.idx)
        self.x_train = torch.from_numpy(data.train_x[self.idx]).to(device)
        self.y_train = torch.from_numpy(self.y_used).to(device)
        self.x_test = torch.tensor(data.test_x, device=device)  # copies the read-only cache
        self.y_test = torch.tensor(data.test_y, device=device)
        bs = cfg.batch_size
        self.sizes = [bs] * (self.n // bs) + ([] if cfg.drop_last or self.n % bs == 0
                                              else [self.n % bs])
        self.steps_per_epoch = len(self.sizes)
        self.total_steps = self.steps_per_epoch * cfg.epochs
        self._build_model(cfg, device)
        self._build_buffers(cfg, device)
        self.compile_mode = compile_mode
        self.fullgraph = compile_mode is not None and whole_step_capturable() \
            and precision != "fp16"
        self._steps: dict[int, FirstCalls] = {}
        self.evaluation = Evaluation(cfg, self.model, self.eval_model,
                                     (self.x_train, self.y_train), (self.x_test, self.y_test),
                                     device, precision)

    def _build_model(self, cfg: TrainConfig, device: torch.device) -> None:
        torch.manual_seed(cfg.seed)
        model = cnn_from_config({k: getattr(cfg, k) for k in MODEL_KEYS})
        if cfg.whiten:  # from (up to) 5,000 training images, before the optimizer sees it
            whiten_first_conv(model, to_input(self.x_train[:5000].cpu()))
        self.model = model.to(device, memory_format=torch.channels_last)  # uncompiled handle
        self.params = [p for p in self.model.parameters() if p.requires_grad]
        bn_shifts = {id(m.bias) for m in self.model.modules() if isinstance(m, nn.BatchNorm2d)}
        # SGD with the gradient x k is SGD at lr x k with weight decay / k: the decay per step
        # is unchanged (airbench's bias_scaler)
        self.scaled = [i for i, p in enumerate(self.params) if id(p) in bn_shifts] \
            if cfg.bn_bias_lr != 1.0 else []
        self.lookahead = Lookahead(self.model, self.total_steps) if cfg.lookahead else None
        # with --ema, an exponential moving average of the weights (BatchNorm statistics
        # copied) is the model that is evaluated, exported and stored under weights/
        self.ema_model = copy.deepcopy(self.model).requires_grad_(False) if cfg.ema else None
        self.ema_params = [] if self.ema_model is None else [
            q for p, q in zip(self.model.parameters(), self.ema_model.parameters(), strict=True)
            if p.requires_grad]  # the averaged counterparts of self.params
        self.eval_model = self.ema_model or self.model
        self.optim = Optim(cfg, self.params, device, self.precision, self.scaled)
        if device.type == "cuda":
            torch.backends.cudnn.benchmark = True  # autotune conv algorithms (fixed shapes)

    def _build_buffers(self, cfg: TrainConfig, device: torch.device) -> None:
        n, long = self.n, torch.int64
        self.perm = torch.zeros(n, dtype=long, device=device)
        self.hf = torch.zeros(n, dtype=torch.bool, device=device) if "hflip" in self.ops else None
        self.vf = torch.zeros(n, dtype=torch.bool, device=device) if "vflip" in self.ops else None
        self.shift = torch.zeros(n, 2, dtype=long, device=device) if "crop" in self.ops else None
        self.cut = torch.zeros(n, 2, dtype=long, device=device) if cfg.cutout else None
        self.pos = torch.zeros((), dtype=long, device=device)  # next position in perm
        self.k = torch.zeros((), dtype=long, device=device)  # global optimizer step
        self.j = torch.zeros((), dtype=long, device=device)  # step within the epoch
        # the epoch's learning rates, loaded with its draws: the graph's shapes do not depend
        # on the number of epochs or the schedule, so one compiled step serves every run of
        # this width, batch size and augmentation (compile-cache hits across recipes/epochs)
        self.lr_epoch = torch.zeros(max(1, self.steps_per_epoch), device=device)
        self.loss_sum = torch.zeros((), device=device)
        self.correct = torch.zeros((), dtype=long, device=device)
        norm = next((m for m in self.model.modules() if isinstance(m, Normalize)), None)
        # cutout fills with what the network sees as 0: the mean colour when inputs are
        # standardized (Page cuts out after normalizing), black otherwise
        self.cut_fill = (norm.mean.to(device) if norm is not None
                         else torch.zeros(1, 3, 1, 1, device=device))

    def bind_optimizer_state(self) -> None:
        """Re-read the optimizer's state tensors (after loading a checkpoint), and tell
        torch.compile that every tensor the step mutates lives at a fixed address."""
        state = self.optim.bind()
        if self.device.type == "cuda" and self.compile_mode is not None:
            for t in [*state, self.perm, self.hf, self.vf, self.shift, self.cut, self.pos,
                      self.k, self.j, self.lr_epoch, self.loss_sum, self.correct, self.x_train,
                      self.y_train]:
                if t is not None:
                    torch._dynamo.mark_static_address(t)

    # -- the step -----------------------------------------------------------------------------

    def step_fn(self, size: int) -> FirstCalls:
        """The training step for batches of `size` images (built on first use): compiled for
        the full batch, eager for a partial last one."""
        if size not in self._steps:
            if not self.optim.bound:
                self.bind_optimizer_state()
            step, full = self._make_step(size), size == self.sizes[0]
            if full:
                step = compile_step(step, self.compile_mode, self.device, self.fullgraph)
            self._steps[size] = FirstCalls(step, self.device,
                                           compiled=full and self.compile_mode is not None)
        return self._steps[size]

    def _make_step(self, size: int) -> Callable[[], None]:
        cfg, offsets = self.cfg, torch.arange(size, device=self.device)

        def step() -> None:
            i = self.pos + offsets
            bi = self.perm[i]
            xb = augment_batch(self.x_train[bi], None if self.hf is None else self.hf[i],
                               None if self.vf is None else self.vf[i],
                               None if self.shift is None else self.shift[i], cfg.pad_mode,
                               cfg.crop_pad)
            x = to_input(xb)
            if self.cut is not None:
                x = torch.where(cutout_mask(self.cut[i], cfg.cutout), self.cut_fill, x)
            yb = self.y_train[bi]
            loss, out = self._loss(x, yb)
            self.optim.update(loss, self.lr_epoch, self.j)
            with torch.no_grad():
                if self.ema_model is not None:
                    ema_update(self.ema_model, self.ema_params, self.model, self.params,
                               self.k, self.cfg.ema)
                self.loss_sum.add_(loss.detach() * size)
                self.correct.add_((out.argmax(1) == yb).sum())
                self.pos.add_(size)
                self.k.add_(1)
                self.j.add_(1)

        return step

    def _loss(self, x: torch.Tensor, yb: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        ls = self.cfg.label_smoothing
        with autocast(self.device, self.precision):
            if self.cfg.objective == "worst-view":
                # one forward over [batch; its vertical flip]; minimize the larger loss
                out, out_f = self.model(torch.cat([x, vflip(x)])).float().chunk(2)
                return worst_view_loss(out, out_f, yb, ls), out.detach()
            out = self.model(x).float()
            return F.cross_entropy(out, yb, label_smoothing=ls), out.detach()

    # -- an epoch -----------------------------------------------------------------------------

    def load_draws(self, epoch: int) -> None:
        """The epoch's random decisions and learning rates, into the step's buffers."""
        cfg = self.cfg
        d = epoch_draws(self.n, cfg.seed, epoch, self.ops, torch.device("cpu"), cfg.cutout,
                        crop_pad=cfg.crop_pad, alternate_flip=cfg.alternate_flip)
        k0 = (epoch - 1) * self.steps_per_epoch
        lrs = [lr_at(k0 + s, self.total_steps, cfg.lr, cfg.schedule, cfg.warmup)
               for s in range(len(self.lr_epoch))]
        self.lr_epoch.copy_(torch.tensor(lrs, dtype=torch.float32))
        for buf, new in ((self.perm, d.perm), (self.hf, d.hflip), (self.vf, d.vflip),
                         (self.shift, d.shift), (self.cut, d.cut)):
            if buf is not None:
                buf.copy_(new, non_blocking=True)

    def train_epoch(self, epoch: int, reporter: Any = None,
                    max_steps: int | None = None) -> dict[str, float]:
        """One pass (or its first `max_steps` steps); metrics are read once at the end."""
        self.load_draws(epoch)
        sizes = self.sizes[:max_steps] if max_steps is not None else self.sizes
        progress = Progress(self, epoch, len(sizes), reporter)
        self.model.train()
        self.pos.zero_()
        self.k.fill_((epoch - 1) * self.steps_per_epoch)
        self.j.zero_()
        self.loss_sum.zero_()
        self.correct.zero_()
        t0 = time.perf_counter()
        k0 = (epoch - 1) * self.steps_per_epoch
        for s, size in enumerate(sizes):
            self.step_fn(size)()
            if self.lookahead is not None:
                self.lookahead.after_step(k0 + s + 1)
            progress.after(s + 1, sum(sizes[:s + 1]) if progress.due(s + 1) else 0, t0)
        seen = sum(sizes)
        # the epoch's one host sync: its metrics and whether every weight and BatchNorm
        # statistic is still finite (a diverged run can keep a finite loss: BatchNorm
        # normalizes weights that grew huge while its running variances overflow)
        loss_sum, correct, finite = torch.stack(
            [self.loss_sum, self.correct.float(),
             all_finite(list(self.state_tensors().values())).float()]).tolist()
        train_loss = loss_sum / seen
        train_err = (seen - correct) / seen  # exact: 0.713, not 1 - 0.287
        last = (epoch - 1) * self.steps_per_epoch + len(sizes) - 1
        return {"train_loss": train_loss, "train_err": train_err,
                "lr": lr_at(last, self.total_steps, self.cfg.lr, self.cfg.schedule,
                            self.cfg.warmup), "images": seen,
                "seconds": time.perf_counter() - t0, "finite": finite == 1.0}

    def state_tensors(self) -> dict[str, torch.Tensor]:
        """The floating-point weights and buffers a checkpoint stores (BatchNorm statistics
        included; with EMA both models), by name."""
        models = {"": self.eval_model, "train:": self.model} if self.ema_model is not None \
            else {"": self.model}
        return {prefix + k: v for prefix, m in models.items()
                for k, v in m.state_dict().items() if v.is_floating_point()}

    @property
    def one_time_train_s(self) -> float:
        """First-call excess of the compiled training steps (inside the epochs' seconds)."""
        return sum(f.one_time_s for f in self._steps.values())

    @property
    def one_time_s(self) -> float:
        """First-call excess of the training steps and evaluation so far (compile, autotune,
        CUDA-graph capture)."""
        return sum(f.one_time_s for f in (*self._steps.values(), self.evaluation.calls))

    # -- state <-> arrays ---------------------------------------------------------------------

    def state_arrays(self) -> tuple[dict[str, np.ndarray], list]:
        """Host copies of the weights and optimizer state (one device -> host transfer)."""
        # copy=True: on the CPU .cpu() would alias the live tensors, which the next epoch
        # changes while the background writer is still reading them
        arrays = {f"weights/{k}": v.detach().to("cpu", copy=True).numpy()
                  for k, v in self.eval_model.state_dict().items()}
        if self.lookahead is not None:
            arrays.update({f"lookahead/{k}": v.detach().to("cpu", copy=True).numpy()
                           for k, v in self.lookahead.slow.items()})
        if self.ema_model is not None:  # the trained weights, for resuming
            arrays.update({f"train_weights/{k}": v.detach().to("cpu", copy=True).numpy()
                           for k, v in self.model.state_dict().items()})
        optim, groups = self.optim.state_arrays()
        return {**arrays, **optim}, groups

    def load_state(self, weights: dict[str, torch.Tensor], optim: dict[str, np.ndarray],
                   groups: list, train_weights: dict[str, torch.Tensor] | None = None,
                   lookahead: dict[str, np.ndarray] | None = None) -> None:
        """Weights (and, with EMA, the trained weights; with lookahead, its slow weights) and
        optimizer state from a checkpoint, into the tensors the step uses."""
        self.eval_model.load_state_dict(weights)
        if self.ema_model is not None:
            self.model.load_state_dict(train_weights or weights)
        if self.lookahead is not None:
            self.lookahead.load(lookahead or {})
        self.optim.load(optim, groups)
        self.bind_optimizer_state()


class Progress:
    """A few progress reads per epoch for a display; on CUDA through a pinned host copy that is
    read only once its copy has finished, so the stream never waits for the display."""

    def __init__(self, tr: Trainer, epoch: int, steps: int, reporter: Any) -> None:
        self.tr, self.epoch, self.steps, self.reporter = tr, epoch, steps, reporter
        self.every = max(1, steps // 25)
        self.cuda = tr.device.type == "cuda"
        self.pending: tuple[Any, torch.Tensor, int, int] | None = None

    def due(self, s: int) -> bool:
        return self.reporter is not None and s % self.every == 0

    def after(self, s: int, seen: int, t0: float) -> None:
        if not self.due(s):
            return
        vals = torch.stack([self.tr.loss_sum, self.tr.correct.float()])
        if not self.cuda:
            self._show(s, seen, vals, t0)
            return
        if self.pending is not None and self.pending[0].query():
            _, host, ps, pseen = self.pending
            self._show(ps, pseen, host, t0)
        host = torch.empty(2, pin_memory=True)
        host.copy_(vals, non_blocking=True)
        ev = torch.cuda.Event()
        ev.record()
        self.pending = (ev, host, s, seen)

    def _show(self, s: int, seen: int, vals: torch.Tensor, t0: float) -> None:
        loss, correct = (float(v) for v in vals)
        self.reporter.on_step(self.epoch, s, self.steps, loss / seen, correct / seen,
                              seen / max(1e-9, time.perf_counter() - t0))
