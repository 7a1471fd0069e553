"""The course's Myrtle5 CNN."""

from __future__ import annotations

from torch import nn

MAX_WIDTH = 1024  # c = 1024 is ~400M parameters: beyond any homework GPU's sensible range


def make_cnn(c: int = 64, num_classes: int = 10, batchnorm: bool = True) -> nn.Sequential:
    """Myrtle5 of width `c`, exactly as the course notebook builds it.

    Input (N, 3, 32, 32) -> logits (N, num_classes). Four 3x3 convs of widths c, 2c, 4c, 8c,
    each followed by BatchNorm (unless `batchnorm=False`) and ReLU; MaxPool2d(2) after convs
    1-3 (32 -> 16 -> 8 -> 4), MaxPool2d(4) (4 -> 1), flatten, Linear(8c, num_classes).
    Parameters: 1,558,026 at c=64, 6,666 at c=4 (with BatchNorm).
    """
    def block(cin: int, cout: int, pool: bool) -> list[nn.Module]:
        layers: list[nn.Module] = [nn.Conv2d(cin, cout, kernel_size=3, stride=1, padding=1)]
        if batchnorm:
            layers.append(nn.BatchNorm2d(cout))
        layers.append(nn.ReLU())
        if pool:
            layers.append(nn.MaxPool2d(2))
        return layers

    return nn.Sequential(
        *block(3, c, pool=False),
        *block(c, 2 * c, pool=True),
        *block(2 * c, 4 * c, pool=True),
        *block(4 * c, 8 * c, pool=True),
        nn.MaxPool2d(4),
        nn.Flatten(),
        nn.Linear(8 * c, num_classes),
    )


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
