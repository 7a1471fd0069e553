"""Where hw0 reads data, writes results and keeps its caches by default, for library callers and
the CLI alike.

The environment variables win over the built-in folders; an explicit argument wins over both.
Torch- and NumPy-free, so the command line's help can name these defaults cheaply.
"""

from __future__ import annotations

import os
from collections.abc import Collection
from pathlib import Path

DATA_DIR_ENV = "HW0_DATA_DIR"
OUT_ENV = "HW0_OUT"
CACHE_ENV = "HW0_CACHE"
# torch.compile's on-disk caches: the variable that places each, and its folder in hw0's cache
COMPILE_CACHES = {"TORCHINDUCTOR_CACHE_DIR": "inductor", "TRITON_CACHE_DIR": "triton"}
_pointed: dict[str, str] = {}  # what point_compile_caches set, per variable
DEFAULT_DATA_DIR = Path("data")
DEFAULT_OUT_DIR = Path("artifacts")


def default_data_dir() -> Path:
    """`$HW0_DATA_DIR` if set, else `./data`."""
    return Path(os.environ.get(DATA_DIR_ENV) or DEFAULT_DATA_DIR)


def default_out_dir() -> Path:
    """`$HW0_OUT` if set, else `./artifacts`."""
    return Path(os.environ.get(OUT_ENV) or DEFAULT_OUT_DIR)


def cache_dir() -> Path:
    """`$HW0_CACHE`, else hw0/ under the user's cache folder (`$XDG_CACHE_HOME` or ~/.cache)."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "hw0"


def point_compile_caches(torch_defaults: Collection[str] = ()) -> Path:
    """Point torch.compile's caches into `cache_dir()` where the user has not pointed them
    elsewhere: a variable unset, set by this function for an earlier `$HW0_CACHE`, or set to
    one of `torch_defaults` counts as not pointed. Runs when hw0cli is imported, before torch:
    importing torch._dynamo (torchvision does) writes inductor's default folder into the
    environment and keeps it for the process. Returns the cache folder."""
    root = cache_dir()
    for var, sub in COMPILE_CACHES.items():
        now = os.environ.get(var)
        if now is None or now == _pointed.get(var) or now in torch_defaults:
            os.environ[var] = _pointed[var] = str(root / sub)
    return root
