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
