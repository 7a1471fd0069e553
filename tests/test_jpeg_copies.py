"""scripts/jpeg_copies.py: CIFAR-10 re-encoded at lower JPEG qualities, readable by hw0."""

import importlib.util
import json
from pathlib import Path

import numpy as np

from hw0cli.data import load_cifar10

ROOT = Path(__file__).resolve().parents[1]


def _script():
    spec = importlib.util.spec_from_file_location("jpeg_copies", ROOT / "scripts" /
                                                  "jpeg_copies.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_lower_quality_copies_load_and_lose_more(cifar_root, tmp_path):
    script = _script()
    assert script.main(["--data-dir", str(cifar_root), "--dest", str(tmp_path),
                        "--quality", "90,20"]) == 0
    src = load_cifar10(cifar_root)
    figures = {}
    for q in (90, 20):
        copy = load_cifar10(tmp_path / f"q{q}")  # hw0's own (restricted) loader reads it
        np.testing.assert_array_equal(copy.train_y, src.train_y)
        np.testing.assert_array_equal(copy.test_y, src.test_y)
        assert copy.train_x.shape == src.train_x.shape and copy.classes == src.classes
        change = np.abs(copy.test_x.astype(int) - src.test_x.astype(int)).mean()
        figures[q] = json.loads((tmp_path / f"q{q}" / "jpeg.json").read_text())
        assert figures[q]["quality"] == q and change > 0
    # a lower quality codes fewer bytes and moves the pixels further
    assert figures[20]["train_bytes_per_image"] < figures[90]["train_bytes_per_image"]
    assert figures[20]["mean_abs_pixel_change"] > figures[90]["mean_abs_pixel_change"]
