"""The pure pieces of a training batch: an epoch's random draws, augmentation on the device
(flips, crops with zero or reflect padding, cutout), and uint8 -> float input conversion.

Every random decision of an epoch is drawn on the CPU from a generator seeded by (seed, epoch),
so an epoch's randomness does not depend on what ran before it; the functions that apply the
draws are plain tensor code that torch.compile captures inside the training step.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from hw0cli.errors import Hw0UsageError
from hw0cli.views import hflip, vflip

AUGMENTS = ("none", "hflip", "vflip", "crop")
CROP_PAD = 4  # default pixels of translation for `crop` (pad 4 + random 32x32 crop, the CIFAR
# standard); `--crop-pad` changes it (airbench translates by 2: less distortion for short runs)


def parse_augment(spec: str) -> tuple[str, ...]:
    """'hflip+crop' -> ('hflip', 'crop'); 'none' -> ()."""
    parts = [p.strip() for p in spec.replace(",", "+").split("+") if p.strip()]
    bad = [p for p in parts if p not in AUGMENTS]
    if bad or not parts:
        raise Hw0UsageError(f"Unknown augmentation '{spec}'. Use none, or any of hflip, vflip, "
                            "crop joined by '+' (e.g. --augment hflip+crop).")
    return tuple(p for p in parts if p != "none")


@dataclass
class EpochDraws:
    """All random decisions of one epoch, aligned with the permutation's positions."""

    perm: torch.Tensor  # (n,) int64
    hflip: torch.Tensor | None  # (n,) bool
    vflip: torch.Tensor | None
    shift: torch.Tensor | None  # (n, 2) int64 crop offsets in [0, 2 * crop_pad]
    cut: torch.Tensor | None = None  # (n, 2) int64 top-left corner of the cutout square


def epoch_draws(n: int, seed: int, epoch: int, ops: tuple[str, ...], device: torch.device,
                cutout: int = 0, size: int = 32, crop_pad: int = CROP_PAD,
                alternate_flip: bool = False) -> EpochDraws:
    """One epoch's draws from a CPU generator seeded by (seed, epoch); cutout's come last, so
    runs without cutout draw exactly what they always did.

    `alternate_flip` (airbench's derandomized flip): each image's mirror bit is drawn once per
    run (from the seed) in epoch 1 and inverted every epoch after, so every image is seen both
    ways in any two consecutive epochs (with a fresh coin each epoch: half the time).
    """
    g = torch.Generator().manual_seed(seed * 100_003 + epoch)
    perm = torch.randperm(n, generator=g)
    hf = torch.rand(n, generator=g) < 0.5 if "hflip" in ops else None
    vf = torch.rand(n, generator=g) < 0.5 if "vflip" in ops else None
    sh = torch.randint(0, 2 * crop_pad + 1, (n, 2), generator=g) if "crop" in ops else None
    cut = torch.randint(0, size - cutout + 1, (n, 2), generator=g) if cutout else None
    if hf is not None and alternate_flip:
        first = torch.rand(n, generator=torch.Generator().manual_seed(seed * 100_003)) < 0.5
        hf = first[perm] ^ bool((epoch - 1) % 2)
    return EpochDraws(*(t.to(device) if t is not None else None
                        for t in (perm, hf, vf, sh, cut)))


def pad_source(size: int, pad: int, mode: str, device: torch.device | None = None
               ) -> torch.Tensor:
    """For each coordinate of a `pad`-padded axis, the source pixel (-1: zero padding)."""
    p = torch.arange(-pad, size + pad, device=device)
    if mode == "reflect":  # mirror without repeating the edge pixel, like F.pad(mode="reflect")
        p = p.abs()
        return torch.where(p > size - 1, 2 * (size - 1) - p, p)
    return torch.where((p >= 0) & (p < size), p, -1)


def augment_batch(x: torch.Tensor, hf: torch.Tensor | None, vf: torch.Tensor | None,
                  shift: torch.Tensor | None, pad_mode: str = "zeros",
                  crop_pad: int = CROP_PAD) -> torch.Tensor:
    """Per-image flips (bool masks (B,)) and crops (offsets (B, 2) into the image padded by
    `crop_pad` pixels) of x (B, C, H, W); the crop pads with zeros or by reflection."""
    if hf is not None:
        x = torch.where(hf[:, None, None, None], hflip(x), x)
    if vf is not None:
        x = torch.where(vf[:, None, None, None], vflip(x), x)
    if shift is not None:
        b, c, h, w = x.shape
        rows = pad_source(h, crop_pad, pad_mode, x.device)[shift[:, 0:1]
                                                           + torch.arange(h, device=x.device)]
        cols = pad_source(w, crop_pad, pad_mode, x.device)[shift[:, 1:2]
                                                           + torch.arange(w, device=x.device)]
        bidx = torch.arange(b, device=x.device)[:, None, None, None]
        cidx = torch.arange(c, device=x.device)[None, :, None, None]
        out = x[bidx, cidx, rows.clamp(min=0)[:, None, :, None],
                cols.clamp(min=0)[:, None, None, :]]
        if pad_mode == "zeros":
            inside = (rows >= 0)[:, None, :, None] & (cols >= 0)[:, None, None, :]
            out = out * inside.to(out.dtype)
        x = out
    return x


def cutout_mask(corner: torch.Tensor, k: int, h: int = 32, w: int = 32) -> torch.Tensor:
    """(B, 1, H, W) bool: the k x k square at each image's top-left `corner` (B, 2)."""
    r = torch.arange(h, device=corner.device)[None, :]
    c = torch.arange(w, device=corner.device)[None, :]
    rin = (r >= corner[:, 0:1]) & (r < corner[:, 0:1] + k)
    cin = (c >= corner[:, 1:2]) & (c < corner[:, 1:2] + k)
    return (rin[:, :, None] & cin[:, None, :])[:, None]


def translate(x: torch.Tensor, d: tuple[int, int]) -> torch.Tensor:
    """Images moved by d = (rows, cols) pixels, the uncovered border filled by reflection."""
    p = max(abs(d[0]), abs(d[1]))
    padded = F.pad(x.float(), (p, p, p, p), mode="reflect").to(x.dtype)
    h, w = x.shape[-2:]
    return padded[..., p - d[0]:p - d[0] + h, p - d[1]:p - d[1] + w]
