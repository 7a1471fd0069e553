#!/usr/bin/env python3
"""CIFAR-10 re-encoded at lower JPEG qualities, to measure what the data's compression costs.

    scripts/jpeg_copies.py --data-dir data --dest /tmp/jpeg --quality 50,30

reads `<data-dir>/cifar-10-batches-py` (the official files, or the shared JPEG q75 copy) and
writes `<dest>/q<Q>/cifar-10-batches-py` for each quality Q in the official python-pickle
layout (train with `--data-dir <dest>/q<Q>`), plus `<dest>/q<Q>/jpeg.json`: the mean coded
bytes per image and the mean absolute pixel change from the source. Training the page control
on each copy gives accuracy against bytes per image; extrapolated to the source's own bytes
(and beyond, to lossless), it says what Page's 91.07% on the original files corresponds to on
a given copy. Every image is encoded with Pillow's defaults otherwise (4:2:0 chroma), as the
shared copy was.
"""

from __future__ import annotations

import argparse
import io
import json
import pickle
import sys
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from hw0cli.data import CIFAR_CLASSES, load_cifar10


def reencode(images: np.ndarray, quality: int) -> tuple[np.ndarray, float]:
    """(N, 3, 32, 32) uint8 -> the same images through JPEG at `quality`, and the mean coded
    bytes per image."""
    out = np.empty_like(images)
    total = 0
    for i, img in enumerate(images):
        buf = io.BytesIO()
        Image.fromarray(img.transpose(1, 2, 0)).save(buf, format="JPEG", quality=quality)
        total += buf.tell()
        buf.seek(0)
        out[i] = np.asarray(Image.open(buf).convert("RGB")).transpose(2, 0, 1)
    return out, total / max(1, len(images))


def _write_batch(path: Path, x: np.ndarray, y: np.ndarray, name: str) -> None:
    # the official layout: one row of 3072 bytes per image, labels a list; protocol 4 stores
    # bytes as bytes (protocol 2 would name _codecs.encode, which hw0's restricted unpickler
    # rightly refuses)
    batch = {b"batch_label": name.encode(), b"labels": [int(v) for v in y],
             b"data": np.ascontiguousarray(x.reshape(len(x), 3072)),
             b"filenames": [f"{name}_{i:05d}.png".encode() for i in range(len(y))]}
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(pickle.dumps(batch, protocol=4))
    tmp.replace(path)


def write_copy(data_dir: Path, dest: Path, quality: int) -> dict[str, float]:
    """The re-encoded copy at `quality` under `dest`; returns its jpeg.json figures."""
    data = load_cifar10(data_dir)
    folder = dest / "cifar-10-batches-py"
    folder.mkdir(parents=True, exist_ok=True)
    train, train_bytes = reencode(np.asarray(data.train_x), quality)
    test, test_bytes = reencode(np.asarray(data.test_x), quality)
    per = len(train) // 5
    for k in range(5):
        s = slice(per * k, per * (k + 1) if k < 4 else len(train))
        _write_batch(folder / f"data_batch_{k + 1}", train[s], data.train_y[s],
                     f"training batch {k + 1} of 5")
    _write_batch(folder / "test_batch", test, data.test_y, "testing batch 1 of 1")
    meta = {b"label_names": [c.encode() for c in CIFAR_CLASSES], b"num_cases_per_batch": per,
            b"num_vis": 3072}
    (folder / "batches.meta").write_bytes(pickle.dumps(meta, protocol=4))
    change = float(np.abs(train.astype(np.int16) - np.asarray(data.train_x)).mean())
    figures = {"quality": quality, "train_bytes_per_image": train_bytes,
               "test_bytes_per_image": test_bytes, "mean_abs_pixel_change": change}
    (dest / "jpeg.json").write_text(json.dumps(figures, indent=1))
    return figures


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data-dir", type=Path, required=True, help="holds cifar-10-batches-py/")
    ap.add_argument("--dest", type=Path, required=True, help="writes q<Q>/ folders here")
    ap.add_argument("--quality", default="50,30", help="comma-separated JPEG qualities 1-95")
    a = ap.parse_args(argv)
    try:
        qualities = [int(q) for q in a.quality.split(",")]
    except ValueError:
        ap.error(f"--quality takes comma-separated integers (got {a.quality!r})")
    if not all(1 <= q <= 95 for q in qualities):
        ap.error("--quality values must be in [1, 95] (Pillow's useful range)")
    for q in qualities:
        f = write_copy(a.data_dir, a.dest / f"q{q}", q)
        print(json.dumps(f))
    return 0


if __name__ == "__main__":
    sys.exit(main())
