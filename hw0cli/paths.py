"""Where hw0 reads data and writes results by default, for library callers and the CLI alike.

The environment variables win over the built-in folders; an explicit argument wins over both.
Torch- and NumPy-free, so the command line's help can name these defaults cheaply.
"""

from __future__ import annotations

import os
from pathlib import Path

DATA_DIR_ENV = "HW0_DATA_DIR"
OUT_ENV = "HW0_OUT"
DEFAULT_DATA_DIR = Path("data")
DEFAULT_OUT_DIR = Path("artifacts")


def default_data_dir() -> Path:
    """`$HW0_DATA_DIR` if set, else `./data`."""
    return Path(os.environ.get(DATA_DIR_ENV) or DEFAULT_DATA_DIR)


def default_out_dir() -> Path:
    """`$HW0_OUT` if set, else `./artifacts`."""
    return Path(os.environ.get(OUT_ENV) or DEFAULT_OUT_DIR)
