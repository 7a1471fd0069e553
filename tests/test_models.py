import pytest
import torch

from hw0cli.models import count_parameters, make_cnn


@pytest.mark.parametrize(("c", "n"), [(64, 1_558_026), (4, 6_666)])
def test_parameter_counts_match_the_course(c, n):
    assert count_parameters(make_cnn(c)) == n


def test_shapes_and_no_batchnorm():
    m = make_cnn(8, batchnorm=False)
    assert not any(isinstance(x, torch.nn.BatchNorm2d) for x in m.modules())
    assert m(torch.rand(5, 3, 32, 32)).shape == (5, 10)
    assert count_parameters(m) == count_parameters(make_cnn(8)) - 2 * (8 + 16 + 32 + 64)
