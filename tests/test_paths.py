"""Default folders: data, output, hw0's cache, and where torch.compile keeps its caches."""

import os
import subprocess
import sys

from hw0cli import paths


def test_cache_dir_follows_env(monkeypatch, tmp_path):
    monkeypatch.setenv("HW0_CACHE", str(tmp_path / "c"))
    assert paths.cache_dir() == tmp_path / "c"
    monkeypatch.delenv("HW0_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "x"))
    assert paths.cache_dir() == tmp_path / "x" / "hw0"


def test_compile_caches_follow_hw0s_cache_unless_the_user_chose(monkeypatch, tmp_path):
    for var in paths.COMPILE_CACHES:
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setattr(paths, "_pointed", {})
    monkeypatch.setenv("HW0_CACHE", str(tmp_path / "a"))
    paths.point_compile_caches()
    assert os.environ["TORCHINDUCTOR_CACHE_DIR"] == str(tmp_path / "a" / "inductor")
    assert os.environ["TRITON_CACHE_DIR"] == str(tmp_path / "a" / "triton")
    monkeypatch.setenv("HW0_CACHE", str(tmp_path / "b"))  # what hw0 set follows the cache
    paths.point_compile_caches()
    assert os.environ["TORCHINDUCTOR_CACHE_DIR"] == str(tmp_path / "b" / "inductor")
    monkeypatch.setenv("TRITON_CACHE_DIR", str(tmp_path / "mine"))  # the user's choice stays
    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", "/torch/default")  # torch's default does not
    paths.point_compile_caches(torch_defaults=("/torch/default",))
    assert os.environ["TRITON_CACHE_DIR"] == str(tmp_path / "mine")
    assert os.environ["TORCHINDUCTOR_CACHE_DIR"] == str(tmp_path / "b" / "inductor")


def test_torchvision_after_hw0_leaves_the_compile_cache_in_hw0s(tmp_path):
    """The import order of every command: hw0cli first, then torchvision (which imports
    torch._dynamo, which would otherwise write inductor's default folder into the environment
    and compile there for the rest of the process)."""
    code = ("import os, hw0cli, torchvision, torch._dynamo; "
            "print(os.environ['TORCHINDUCTOR_CACHE_DIR'])")
    env = {k: v for k, v in os.environ.items() if k not in paths.COMPILE_CACHES}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env={**env, "HW0_CACHE": str(tmp_path)}, check=True, timeout=600)
    assert out.stdout.strip() == str(tmp_path / "inductor")
