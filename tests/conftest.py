"""Fixtures shared by every test; the helpers they use are in tests/helpers.py."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers import write_cifar, write_mnist


@pytest.fixture(scope="session", autouse=True)
def hw0_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Probe results and compile caches of the tests stay out of the user's cache folder
    (hw0cli, imported already, pointed the compile caches at it: point them again)."""
    import os

    from hw0cli.paths import point_compile_caches
    path = tmp_path_factory.mktemp("hw0_cache")
    os.environ["HW0_CACHE"] = str(path)
    point_compile_caches()
    return path


@pytest.fixture(scope="session")
def cifar_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_cifar(tmp_path_factory.mktemp("cifar"))


@pytest.fixture(scope="session")
def mnist_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_mnist(tmp_path_factory.mktemp("mnist"))
