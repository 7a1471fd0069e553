"""The run's optimizer as the compiled training step sees it.

torch.optim's SGD or Adam object holds the state (pre-filled at construction, so the state
dict never grows inside a compiled graph, and a checkpoint saves and loads it the usual way);
the step itself runs torch.optim's functional kernels on the state tensors bound here, since
the `Optimizer.step` wrapper breaks torch.compile graphs on purpose. fp16 runs go through the
object with dynamic loss scaling instead.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch.optim.adam import adam as adam_update
from torch.optim.sgd import sgd as sgd_update

from hw0cli.train.config import TrainConfig

ADAM_BETAS, ADAM_EPS = (0.9, 0.999), 1e-8  # torch.optim.Adam's defaults


class Optim:
    """SGD or Adam over `params`; `scaled`: the indices of the parameters whose gradient is
    multiplied by `cfg.bn_bias_lr` (the BatchNorm shifts)."""

    def __init__(self, cfg: TrainConfig, params: list[torch.Tensor], device: torch.device,
                 precision: str, scaled: list[int]) -> None:
        self.cfg, self.params, self.device, self.scaled = cfg, params, device, scaled
        cuda = device.type == "cuda"
        # muon: the convolution filters (4-d) take Muon's step; the SGD object holds their
        # momentum buffers beside the other parameters', so checkpoints save them alike
        self.filters = [i for i, p in enumerate(params) if p.ndim == 4] \
            if cfg.optimizer == "muon" else []
        self.rest = [i for i in range(len(params)) if i not in self.filters]
        if cfg.optimizer in ("sgd", "muon"):
            self.opt: torch.optim.Optimizer = torch.optim.SGD(
                params, lr=cfg.lr, momentum=cfg.momentum, nesterov=cfg.nesterov,
                weight_decay=cfg.weight_decay)
            if cfg.momentum > 0 or self.filters:  # zeros + grad == SGD's first buffer
                for p in params:
                    self.opt.state[p]["momentum_buffer"] = torch.zeros_like(p)
        else:  # step counters on the device when CUDA graphs may capture the update
            self.opt = torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay,
                                        capturable=cuda)
            for p in params:
                self.opt.state[p].update(
                    step=torch.zeros((), dtype=torch.float32, device=device if cuda else "cpu"),
                    exp_avg=torch.zeros_like(p), exp_avg_sq=torch.zeros_like(p))
        self.loss_scaling = precision == "fp16"  # a plain bool: torch.compile reads it
        self.scaler = torch.amp.GradScaler(device.type, enabled=self.loss_scaling)
        self.bound = False

    def bind(self) -> list[torch.Tensor]:
        """Re-read the state tensors (after loading a checkpoint); returns them, for the
        caller to mark as living at fixed addresses."""
        st = [self.opt.state[p] for p in self.params]
        self.bufs = [s.get("momentum_buffer") for s in st]
        self.exp_avgs = [s.get("exp_avg") for s in st]
        self.exp_avg_sqs = [s.get("exp_avg_sq") for s in st]
        self.adam_steps = [s.get("step") for s in st]
        self.bound = True
        return [t for t in (*self.bufs, *self.exp_avgs, *self.exp_avg_sqs, *self.adam_steps)
                if t is not None]

    def update(self, loss: torch.Tensor, lr_epoch: torch.Tensor, j: torch.Tensor) -> None:
        """Backward and the update at lr_epoch[j], through torch.optim's functional kernels."""
        cfg = self.cfg
        if self.loss_scaling:  # fp16: dynamic loss scaling through the optimizer object
            self.scaler.scale(loss).backward()
            for i in self.scaled:
                self.params[i].grad.mul_(cfg.bn_bias_lr)
            for g in self.opt.param_groups:
                g["lr"] = float(lr_epoch[j])
            self.scaler.step(self.opt)
            self.scaler.update()
            self.opt.zero_grad(set_to_none=True)
            return
        loss.backward()
        with torch.no_grad():
            # index_select, not lr_epoch[j]: torch 2.11's AOTAutograd reads a 0-d index as a
            # data-dependent Python int and fails to compile the whole step
            lr = lr_epoch.index_select(0, j.view(1)).squeeze(0)
            grads = [p.grad for p in self.params]
            for i in self.scaled:
                grads[i] = grads[i] * cfg.bn_bias_lr
            if cfg.weight_decay:  # not on muon's filters: their renormalization bounds them
                # the L2 term added here, as torch.optim does (grad + wd * param): inductor
                # (torch 2.14, CPU) miscompiles the single-tensor kernels' own weight-decay add
                # inside a whole-step graph; tests compare the compiled step with eager
                decayed = torch._foreach_add([grads[i] for i in self.rest],
                                             [self.params[i] for i in self.rest],
                                             alpha=cfg.weight_decay)
                for i, g in zip(self.rest, decayed, strict=True):
                    grads[i] = g
            if self.filters:
                muon_update([self.params[i] for i in self.filters],
                            [grads[i] for i in self.filters],
                            [self.bufs[i] for i in self.filters], lr * (cfg.muon_lr / cfg.lr),
                            cfg.muon_momentum)
            if cfg.optimizer != "adam":  # sgd: every parameter; muon: all but the filters
                sgd_update([self.params[i] for i in self.rest], [grads[i] for i in self.rest],
                           [self.bufs[i] for i in self.rest], weight_decay=0.0,
                           momentum=cfg.momentum, lr=lr, dampening=0.0,
                           nesterov=cfg.nesterov, maximize=False)
            else:
                adam_update(self.params, grads, self.exp_avgs, self.exp_avg_sqs, [],
                            self.adam_steps, amsgrad=False, beta1=ADAM_BETAS[0],
                            beta2=ADAM_BETAS[1], lr=lr, weight_decay=0.0,
                            eps=ADAM_EPS, maximize=False,
                            capturable=self.device.type == "cuda")
            for p in self.params:
                p.grad = None

    def state_arrays(self) -> tuple[dict[str, np.ndarray], list]:
        """Host copies of the state as `optim/state/<param>/<key>` arrays, and the groups."""
        arrays = {}
        sd = self.opt.state_dict()
        for idx, st in sd["state"].items():
            for k, v in st.items():
                # copy=True: on the CPU .cpu() would alias the live tensors
                arrays[f"optim/state/{idx}/{k}"] = (v.detach().to("cpu", copy=True).numpy()
                                                    if torch.is_tensor(v) else np.asarray(v))
        return arrays, sd["param_groups"]

    def load(self, optim: dict[str, np.ndarray], groups: list) -> None:
        """State from a checkpoint's `<param>/<key>` arrays and groups."""
        state: dict[int, dict[str, Any]] = {}
        for name, arr in optim.items():
            idx, key = name.split("/")
            state.setdefault(int(idx), {})[key] = torch.from_numpy(np.array(arr))
        self.opt.load_state_dict({"state": state, "param_groups": groups})


NS_COEFFS, NS_STEPS = (3.4445, -4.7750, 2.0315), 3  # airbench94_muon's quintic, 3 iterations


def orthogonalize(g: torch.Tensor) -> torch.Tensor:
    """Newton-Schulz approximation of U V^T for g = U S V^T (singular values ~0.5-1.5)."""
    a, b, c = NS_COEFFS
    x = g / (g.norm() + 1e-7)
    tall = x.size(0) > x.size(1)
    if tall:
        x = x.T
    for _ in range(NS_STEPS):
        m = x @ x.T
        x = a * x + (b * m + c * m @ m) @ x
    return x.T if tall else x


def muon_update(params: list[torch.Tensor], grads: list[torch.Tensor],
                bufs: list[torch.Tensor], lr: torch.Tensor, momentum: float) -> None:
    """Muon on convolution filters (airbench94_muon): Nesterov momentum, the filters scaled to
    a Frobenius norm of sqrt(out channels), then a step along the orthogonalized update."""
    for p, g, buf in zip(params, grads, bufs, strict=True):
        buf.mul_(momentum).add_(g)
        u = g.add(buf, alpha=momentum)
        p.mul_(p.size(0) ** 0.5 / p.norm())
        p.sub_(lr * orthogonalize(u.reshape(p.size(0), -1).float()).view_as(p).to(p.dtype))
