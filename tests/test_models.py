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



def test_dirac_init_passes_input_through_the_channels_it_covers():
    """Convs 2-4 start as identities on their first Cin outputs (the rest keep their draws);
    the first conv, which sees pixels, is left as initialized."""
    import torch
    from torch import nn

    from hw0cli.models import cnn_from_config
    torch.manual_seed(0)
    plain = cnn_from_config({"width": 4, "bias": False})
    torch.manual_seed(0)
    dirac = cnn_from_config({"width": 4, "bias": False, "dirac": True})
    convs = [m for m in dirac.modules() if isinstance(m, nn.Conv2d)]
    before = [m for m in plain.modules() if isinstance(m, nn.Conv2d)]
    assert torch.equal(convs[0].weight, before[0].weight)
    for conv, orig in zip(convs[1:], before[1:], strict=True):
        cin = conv.in_channels
        x = torch.randn(2, cin, 8, 8)
        with torch.no_grad():
            torch.testing.assert_close(conv(x)[:, :cin], x)
            assert not torch.allclose(orig(x)[:, :cin], x, atol=0.1)
        assert torch.equal(conv.weight[cin:], orig.weight[cin:])


@pytest.mark.parametrize("name", ["gelu", "celu"])
def test_activation_replaces_every_relu_and_keeps_the_weight_names(name):
    import torch
    from torch import nn

    model = make_cnn(4, activation=name)
    acts = [m for m in model.modules() if isinstance(m, (nn.ReLU, nn.GELU, nn.CELU))]
    assert len(acts) == 4 and all(type(m) is (nn.GELU if name == "gelu" else nn.CELU)
                                  for m in acts)
    assert name == "gelu" or acts[0].alpha == 0.075  # Page's smoothing
    assert list(model.state_dict()) == list(make_cnn(4).state_dict())
    x = torch.tensor([-1.0, 0.5])
    assert acts[0](x)[0] < 0 and acts[0](x)[1] > 0  # negatives are not cut to 0 as by a ReLU


def test_bn_momentum_and_frozen_scales_from_the_config():
    import torch
    from torch import nn

    from hw0cli.models import cnn_from_config
    model = cnn_from_config({"width": 4, "bn_momentum": 0.4, "freeze_bn_scale": True})
    bns = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    assert all(m.momentum == 0.4 and not m.weight.requires_grad and m.bias.requires_grad
               for m in bns)
    x = torch.rand(8, 3, 32, 32)
    with torch.no_grad():
        model.train()(x)
        # the first BatchNorm sees conv1(x): its running mean moved 0.4 of the way there
        expected = 0.4 * getattr(model, "0")(x).mean((0, 2, 3))
    torch.testing.assert_close(bns[0].running_mean, expected)
