"""The course's Myrtle5 CNN, and the optional pieces of Page's variant of it."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

# Per-channel mean and standard deviation of CIFAR-10's training images, as fractions of 255
# (the values Page's cifar10-fast normalizes with: 125.31, 122.95, 113.87 / 62.99, 62.09, 66.70)
CIFAR_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR_STD = (0.2470, 0.2435, 0.2616)


class Normalize(nn.Module):
    """(x - mean) / std per channel, for x in [0, 1]; constants kept out of the state_dict."""

    def __init__(self, mean: tuple[float, ...] = CIFAR_MEAN,
                 std: tuple[float, ...] = CIFAR_STD) -> None:
        super().__init__()
        self.register_buffer("mean", torch.tensor(mean).view(1, -1, 1, 1), persistent=False)
        self.register_buffer("inv_std", 1.0 / torch.tensor(std).view(1, -1, 1, 1),
                             persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) * self.inv_std


class Scale(nn.Module):
    """Multiply by a constant (Page's x0.125 on the classifier output)."""

    def __init__(self, factor: float) -> None:
        super().__init__()
        self.factor = float(factor)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.factor

    def extra_repr(self) -> str:
        return f"factor={self.factor}"


ACTIVATIONS = {"relu": nn.ReLU, "gelu": nn.GELU, "celu": lambda: nn.CELU(alpha=0.075)}
# CELU's alpha: Page's bag of tricks (a smoothed ReLU, +0.2 points there at equal epochs)


def make_cnn(c: int = 64, num_classes: int = 10, batchnorm: bool = True, bias: bool = True,
             logit_scale: float = 1.0, normalize: bool = False,
             activation: str = "relu") -> nn.Sequential:
    """Myrtle5 of width `c`; with the defaults exactly as the course notebook builds it.

    Input (N, 3, 32, 32) in [0, 1] -> logits (N, num_classes). Four 3x3 convs of widths c, 2c,
    4c, 8c, each followed by BatchNorm (unless `batchnorm=False`) and ReLU; MaxPool2d(2) after
    convs 1-3 (32 -> 16 -> 8 -> 4), MaxPool2d(4) (4 -> 1), flatten, Linear(8c, num_classes).
    Parameters: 1,558,026 at c=64, 6,666 at c=4 (with BatchNorm).

    Page's variant: `bias=False` drops the conv and linear biases (a bias before BatchNorm is a
    dead parameter), `logit_scale=0.125` scales the output, `normalize=True` standardizes the
    input per channel. The layers keep their numeric names ("0.weight", ...), the extra modules
    are named "normalize" and "logit_scale" and hold no saved state, so every run's weights
    load by the same keys. `activation` replaces every ReLU (no parameters: same keys).
    """
    act = ACTIVATIONS[activation]

    def block(cin: int, cout: int, pool: bool) -> list[nn.Module]:
        layers: list[nn.Module] = [nn.Conv2d(cin, cout, kernel_size=3, stride=1, padding=1,
                                             bias=bias or not batchnorm)]
        if batchnorm:
            layers.append(nn.BatchNorm2d(cout))
        layers.append(act())
        if pool:
            layers.append(nn.MaxPool2d(2))
        return layers

    body = [*block(3, c, pool=False), *block(c, 2 * c, pool=True),
            *block(2 * c, 4 * c, pool=True), *block(4 * c, 8 * c, pool=True),
            nn.MaxPool2d(4), nn.Flatten(), nn.Linear(8 * c, num_classes, bias=bias)]
    named: list[tuple[str, nn.Module]] = [(str(i), m) for i, m in enumerate(body)]
    if normalize:
        named.insert(0, ("normalize", Normalize()))
    if logit_scale != 1.0:
        named.append(("logit_scale", Scale(logit_scale)))
    return nn.Sequential(OrderedDict(named))


def cnn_from_config(cfg: Mapping[str, Any]) -> nn.Sequential:
    """The model a run's stored config describes (keys absent in older files take defaults),
    initialized as it says (from torch's current random state)."""
    model = make_cnn(int(cfg["width"]), batchnorm=bool(cfg.get("batchnorm", True)),
                     bias=bool(cfg.get("bias", True)),
                     logit_scale=float(cfg.get("logit_scale", 1.0)),
                     normalize=bool(cfg.get("normalize", False)),
                     activation=str(cfg.get("activation", "relu")))
    init_weights(model, str(cfg.get("init", "default")), float(cfg.get("init_scale", 1.0)))
    if cfg.get("dirac", False):
        dirac_init(model)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.momentum = float(cfg.get("bn_momentum", 0.1))
            if cfg.get("freeze_bn_scale", False):
                m.weight.requires_grad_(False)
    return model


def dirac_init(model: nn.Module) -> nn.Module:
    """Every convolution but the first passes its input through unchanged on its first Cin
    output channels (a 3x3 identity kernel; airbench's init: the net starts close to a
    shallower one, so early steps are not spent undoing random mixing); the other channels keep
    their initialization. The first convolution sees pixels, where identity is no feature."""
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    with torch.no_grad():
        for conv in convs[1:]:
            w = conv.weight
            nn.init.dirac_(w[:min(w.size(0), w.size(1))])
    return model


def init_weights(model: nn.Module, init: str = "default", scale: float = 1.0) -> nn.Module:
    """Re-initialize the conv and linear weights in place: `kaiming` (He, fan-in, for ReLU),
    `xavier` (Glorot, uniform) or `orthogonal` (ReLU gain), biases zeroed; `default` keeps
    PyTorch's (Kaiming-uniform with a = sqrt(5)). Every weight is then multiplied by `scale`.
    BatchNorm layers keep their unit scale and zero shift."""
    if init not in ("default", "kaiming", "xavier", "orthogonal"):
        raise ValueError(f"unknown initialization {init!r}")
    if init == "default" and scale == 1.0:
        return model  # the same random draws as before the option existed
    relu_gain = nn.init.calculate_gain("relu")
    with torch.no_grad():
        for m in model.modules():
            if not isinstance(m, (nn.Conv2d, nn.Linear)):
                continue
            if init == "kaiming":
                nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
            elif init == "xavier":
                nn.init.xavier_uniform_(m.weight)
            elif init == "orthogonal":
                nn.init.orthogonal_(m.weight, gain=relu_gain)
            if init != "default" and m.bias is not None:
                nn.init.zeros_(m.bias)
            m.weight.mul_(scale)
    return model


def whitening_filters(x: torch.Tensor, pairs: int, eps: float = 5e-4) -> torch.Tensor:
    """(2 * pairs, C, 3, 3) conv filters that whiten the 3x3 patches of the images `x`
    (N, C, H, W, as the first convolution sees them): the top `pairs` principal directions of
    the patches, each scaled by 1 / sqrt(its variance + eps * the mean variance), then the
    same with the opposite sign (so a ReLU after them keeps both halves; airbench's whitening
    layer). Patches are read in chunks, so N may be large."""
    c = x.shape[1]
    cov = torch.zeros(c * 9, c * 9, dtype=torch.float64)
    count = 0
    for i in range(0, len(x), 500):
        p = F.unfold(x[i:i + 500].double(), kernel_size=3).transpose(1, 2).reshape(-1, c * 9)
        cov += p.T @ p
        count += len(p)
    mean = F.unfold(x.double().mean(0, keepdim=True), 3).mean(-1)  # (1, 9C): patches' mean
    cov = cov / count - mean.T @ mean
    var, vec = torch.linalg.eigh(cov)  # ascending
    floor = eps * var.mean()  # relative to the mean over all directions, whatever is kept
    var, vec = var.flip(0)[:pairs], vec.flip(1)[:, :pairs]
    # an eigenvector's sign is LAPACK's choice: fix it (largest entry positive) so a run's
    # filters, and so its training, do not depend on the torch build
    big = vec.abs().argmax(0)
    vec = vec * torch.sign(vec[big, torch.arange(pairs)])
    filt = (vec / torch.sqrt(var + floor)).T.reshape(pairs, c, 3, 3)
    return torch.cat([filt, -filt]).float()


def whiten_first_conv(model: nn.Module, x: torch.Tensor) -> None:
    """Set the first convolution's filters to whitening filters of `x` (uint8-converted
    inputs in [0, 1], (N, C, 32, 32)), as many +- pairs as it has room for (at most 9C), the
    rest (c > 18 C) left as initialized; freeze the filters (a bias, if any, keeps
    training)."""
    conv = next(m for m in model.modules() if isinstance(m, nn.Conv2d))
    norm = next((m for m in model.modules() if isinstance(m, Normalize)), None)
    with torch.no_grad():
        seen = norm(x) if norm is not None else x
        pairs = min(conv.out_channels // 2, conv.in_channels * 9)
        conv.weight[:2 * pairs] = whitening_filters(seen.cpu(), pairs).to(conv.weight)
    conv.weight.requires_grad_(False)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def flops_per_image(c: int = 64, train: bool = False, num_classes: int = 10) -> int:
    """Multiply-add FLOPs (2 per MAC) of Myrtle5's convolutions and linear layer, per image.

    Forward: sum over the four 3x3 convs of 2 * H * W * Cin * 9 * Cout at their resolutions
    (32, 32, 16, 8), plus 2 * 8c * num_classes. A training step (`train=True`) adds the
    weight gradients (same FLOPs as the forward) and the input gradients of every layer but
    the first (the images need none): about 3x the forward. BatchNorm, ReLU and pooling are
    O(activations), not counted. 456 MFLOP forward at c = 64. The budget that decides how fast
    a device can possibly train: images/s <= peak FLOP/s / flops_per_image(c, train=True).
    """
    convs = [(32, 3, c), (32, c, 2 * c), (16, 2 * c, 4 * c), (8, 4 * c, 8 * c)]
    fwd = [2 * hw * hw * cin * 9 * cout for hw, cin, cout in convs] + [2 * 8 * c * num_classes]
    if not train:
        return sum(fwd)
    return 2 * sum(fwd) + sum(fwd[1:])  # forward + weight grads + input grads past layer 1


def readable_names(model: nn.Module) -> dict[str, str]:
    """state_dict key -> a name that says which layer it is ("0.weight" -> "conv1.weight").

    Stored beside the weights (the `weight_names` attribute), not in place of the keys, so a
    run file keeps loading with `load_state_dict` by the nn.Sequential's own keys.
    """
    kinds = {nn.Conv2d: "conv", nn.BatchNorm2d: "bn", nn.Linear: "linear"}
    counts: dict[str, int] = {}
    prefix: dict[str, str] = {}
    for name, module in model.named_children():
        kind = kinds.get(type(module))
        if kind is not None:
            counts[kind] = counts.get(kind, 0) + 1
            prefix[name] = "classifier" if kind == "linear" else f"{kind}{counts[kind]}"
    out = {}
    for key in model.state_dict():
        module, _, rest = key.partition(".")
        out[key] = f"{prefix.get(module, module)}.{rest}"
    return out
