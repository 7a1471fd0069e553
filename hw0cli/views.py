"""How a model sees images: the flipped views, the uint8-to-float input transform, and eval-mode
logits in batches. Training and evaluation both use these, so they live below both."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn


def vflip(x: torch.Tensor) -> torch.Tensor:
    """Upside-down images: reverse the height axis of (N, C, H, W)."""
    return x.flip(-2)


def hflip(x: torch.Tensor) -> torch.Tensor:
    """Mirror images: reverse the width axis of (N, C, H, W)."""
    return x.flip(-1)


def to_input(xb_uint8: torch.Tensor) -> torch.Tensor:
    """uint8 (B, 3, 32, 32) -> float in [0, 1], channels_last (the notebook's x / 255)."""
    return (xb_uint8.float() * (1.0 / 255.0)).contiguous(memory_format=torch.channels_last)


def autocast(device: torch.device, precision: str) -> torch.autocast:
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(precision, torch.float32)
    return torch.autocast(device_type=device.type, dtype=dtype, enabled=precision != "fp32")


@torch.inference_mode()
def predict_logits(model: nn.Module, x: torch.Tensor, device: torch.device, precision: str,
                   batch_size: int = 1000, view: Callable | None = None) -> torch.Tensor:
    """Eval-mode logits (N, 10) float32 on `device` for uint8 images x (N, 3, 32, 32)."""
    was_training = model.training
    model.eval()
    out = []
    for i in range(0, len(x), batch_size):
        xb = x[i:i + batch_size].to(device, non_blocking=True)
        if view is not None:
            xb = view(xb)
        with autocast(device, precision):
            out.append(model(to_input(xb)).float())
    model.train(was_training)
    return torch.cat(out) if out else torch.empty(0, 10, device=device)

