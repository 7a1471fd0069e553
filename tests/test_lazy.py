"""A lazy face loads a name's module on first use only, keeps it, and refuses unknown names."""

from __future__ import annotations

import sys

import pytest


@pytest.fixture
def package(tmp_path, monkeypatch):
    """A package `lazypkg` whose face exports `A` from `lazypkg.a` and `B` from `lazypkg.b`."""
    root = tmp_path / "lazypkg"
    root.mkdir()
    (root / "__init__.py").write_text(
        "from hw0cli.lazy import face\n"
        "_EXPORTS = {'A': 'a', 'B': 'b'}\n"
        "__getattr__ = face(__name__, _EXPORTS)\n")
    (root / "a.py").write_text("A = 'from a'\n")
    (root / "b.py").write_text("B = 'from b'\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    yield
    for name in [n for n in sys.modules if n == "lazypkg" or n.startswith("lazypkg.")]:
        del sys.modules[name]


def test_a_name_loads_only_its_own_module_and_is_kept(package):
    import lazypkg

    assert "lazypkg.a" not in sys.modules and "lazypkg.b" not in sys.modules
    assert lazypkg.A == "from a"
    assert "lazypkg.a" in sys.modules and "lazypkg.b" not in sys.modules
    assert vars(lazypkg)["A"] == "from a"  # the next lookup skips the face
    from lazypkg import B
    assert B == "from b"


def test_an_unknown_name_is_an_attribute_error(package):
    import lazypkg

    with pytest.raises(AttributeError, match="'lazypkg' has no attribute 'C'"):
        _ = lazypkg.C
    assert not hasattr(lazypkg, "C")


def test_the_train_face_loads_without_torch():
    """`hw0 --help` reads the options through train's face: torch must not come with them."""
    import subprocess

    code = ("import sys; from hw0cli.train import TrainConfig, make_config; "
            "print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
