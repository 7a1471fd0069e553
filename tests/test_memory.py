"""Memory estimates against what the machine has: refused before anything is allocated."""

from pathlib import Path

import pytest
import torch

from hw0cli import memory, store
from hw0cli.errors import Hw0Error, Hw0UsageError
from hw0cli.linreg import memory as linreg_memory
from hw0cli.models import make_cnn
from hw0cli.train import memory as train_memory
from hw0cli.train.run import run_train
from tests.helpers import tiny_config

CPU = torch.device("cpu")


def test_available_memory_is_read_here():
    have = memory.available_bytes(CPU)
    assert have is not None and 10**8 < have < 10**15


def test_training_estimate_grows_with_width_and_batch():
    def total(**kw):
        return train_memory.training_estimate(tiny_config(Path("."), Path("."), **kw), CPU,
                                        10_000).total
    small, wide = total(width=4, batch_size=128), total(width=1024, batch_size=128)
    assert small < 10**8 and wide > 10**10  # ~40 MB, ~13 GB
    assert total(width=64, batch_size=512) > total(width=64, batch_size=128)
    assert total(width=64, optimizer="adam") > total(width=64)
    for c in (4, 64):
        parameters = sum(p.numel() for p in make_cnn(c).parameters())
        assert train_memory.myrtle5_parameters(c) == parameters


def test_training_that_cannot_fit_is_refused_before_anything_is_written(cifar_root, tmp_path,
                                                                        monkeypatch):
    monkeypatch.setattr(memory, "available_bytes", lambda device: 2 * 10**9)
    cfg = tiny_config(cifar_root, tmp_path / "out", width=1024, batch_size=100)
    with pytest.raises(Hw0UsageError, match="--width 1024 and --batch-size 100 needs about") \
            as e:
        run_train(cfg)
    assert "2.0 GB is available" in str(e.value) and "activations" in str(e.value)
    assert not (tmp_path / "out").exists()
    run_train(tiny_config(cifar_root, tmp_path / "out", epochs=1))  # width 4 fits in 2 GB


def test_an_allocation_failure_while_training_is_a_message(cifar_root, tmp_path, monkeypatch):
    from hw0cli.train.trainer import Trainer

    def fail(*args, **kwargs):
        raise RuntimeError("DefaultCPUAllocator: can't allocate memory: you tried to allocate "
                           "123456789 bytes. Error code 12 (Cannot allocate memory)")
    monkeypatch.setattr(Trainer, "train_epoch", fail)
    cfg = tiny_config(cifar_root, tmp_path)
    with pytest.raises(Hw0Error, match="ran out of memory") as e:
        run_train(cfg)
    assert e.value.exit_code == 1 and "--width" in str(e.value)
    path = next((tmp_path / "runs").glob("*.h5"))
    assert store.read_h5(path, attrs_only=True).attrs["epochs_done"] == 0  # epoch 0 kept


def test_random_features_estimate():
    est = linreg_memory.random_features_estimate(500, 784, 10**9, 8)
    assert est.total > 10**13  # terabytes
    assert linreg_memory.random_features_estimate(500, 784, 20_000, 8).total < 2 * 10**9
