import pytest
import torch

from hw0cli.models import count_parameters, flops_per_image, make_cnn


@pytest.mark.parametrize(("c", "n"), [(64, 1_558_026), (4, 6_666)])
def test_parameter_counts_match_the_course(c, n):
    assert count_parameters(make_cnn(c)) == n


def test_shapes_and_no_batchnorm():
    m = make_cnn(8, batchnorm=False)
    assert not any(isinstance(x, torch.nn.BatchNorm2d) for x in m.modules())
    assert m(torch.rand(5, 3, 32, 32)).shape == (5, 10)
    assert count_parameters(m) == count_parameters(make_cnn(8)) - 2 * (8 + 16 + 32 + 64)


@pytest.mark.parametrize("c", [4, 64])
def test_flops_per_image_matches_torch_flop_counter(c):
    """Our analytic count against torch's own FlopCounterMode, forward and a training step."""
    from torch.utils.flop_counter import FlopCounterMode

    model = make_cnn(c)
    x = torch.randn(2, 3, 32, 32)
    with FlopCounterMode(display=False) as fwd:
        model(x)
    assert fwd.get_total_flops() == 2 * flops_per_image(c)
    with FlopCounterMode(display=False) as step:
        model(x).sum().backward()
    assert step.get_total_flops() == 2 * flops_per_image(c, train=True)


@pytest.mark.parametrize("init", ["kaiming", "xavier", "orthogonal"])
def test_init_weights_follows_its_rule(init):
    import math

    from hw0cli.models import init_weights
    torch.manual_seed(0)
    m = init_weights(make_cnn(16), init)
    conv = m[3]  # 16 -> 32 channels, 3x3
    fan_in, fan_out = 16 * 9, 32 * 9
    want = {"kaiming": math.sqrt(2 / fan_in), "xavier": math.sqrt(2 / (fan_in + fan_out)),
            "orthogonal": None}[init]
    w = conv.weight.detach().reshape(32, -1)
    if want is None:  # rows orthonormal, times the ReLU gain
        gram = w @ w.T / 2
        assert torch.allclose(gram, torch.eye(32), atol=1e-5)
    else:
        assert abs(float(w.std()) / want - 1) < 0.1
    assert float(conv.bias.detach().abs().max()) == 0.0


def test_init_scale_and_default():
    from hw0cli.models import cnn_from_config
    torch.manual_seed(3)
    default = make_cnn(4)
    torch.manual_seed(3)
    same = cnn_from_config({"width": 4})  # older run files: PyTorch's draws, untouched
    torch.manual_seed(3)
    scaled = cnn_from_config({"width": 4, "init": "default", "init_scale": 0.5})
    for a, b in zip(default.state_dict().values(), same.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    assert torch.allclose(scaled[0].weight, 0.5 * default[0].weight)
    assert torch.equal(scaled[1].weight, default[1].weight)  # BatchNorm keeps its unit scale
