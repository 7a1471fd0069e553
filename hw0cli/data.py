"""Data layer: CIFAR-10 and MNIST in torchvision's on-disk layouts, read without a bare unpickle.

Layouts (as `torchvision.datasets` writes them under one root folder):
    <root>/cifar-10-batches-py/{data_batch_1..5, test_batch, batches.meta}   python pickles
    <root>/MNIST/raw/{train,t10k}-{images-idx3,labels-idx1}-ubyte[.gz]          IDX files

CIFAR batches are pickles; they are read through `_RestrictedUnpickler`, which resolves only the
few numpy globals the official files name, so a crafted file cannot run code. Everything is
loaded once per process as uint8 arrays and cached by (path, size, mtime).
"""

from __future__ import annotations

import functools
import gzip
import io
import pickle
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np

from hw0cli.choices import CIFAR_TRAIN_SIZE, MNIST_TRAIN_SIZE  # noqa: F401
from hw0cli.errors import Hw0Error
from hw0cli.paths import DATA_DIR_ENV, DEFAULT_DATA_DIR, default_data_dir  # noqa: F401

CIFAR_DIRNAME = "cifar-10-batches-py"
CIFAR_TRAIN_FILES = tuple(f"data_batch_{i}" for i in range(1, 6))
CIFAR_TEST_FILE = "test_batch"
CIFAR_META_FILE = "batches.meta"
CIFAR_CLASSES = (
    "airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck",
)
MNIST_RAW = Path("MNIST") / "raw"
MNIST_FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}
# MD5 of the official uncompressed IDX files (the .gz wrappers vary between mirrors).
MNIST_RAW_MD5 = {
    "train-images-idx3-ubyte": "6bbc9ace898e44ae57da46a324031adb",
    "train-labels-idx1-ubyte": "a25bea736e30d166cdddb491f175f624",
    "t10k-images-idx3-ubyte": "2646ac647ad5339dbf082846283269ea",
    "t10k-labels-idx1-ubyte": "27ae3e4e09519cfbb04c329615203637",
}


def _fetch_hint(data_dir: Path) -> str:
    data_dir = Path(data_dir)
    for inside in (Path(CIFAR_DIRNAME), MNIST_RAW, MNIST_RAW.parent):
        n = len(inside.parts)
        if len(data_dir.parts) > n and data_dir.parts[-n:] == inside.parts:
            # the data set's own folder: the files are there, a level or two too deep
            return (f"--data-dir (or ${DATA_DIR_ENV}) names the data set's own folder; point "
                    f"it at the folder that holds {inside.parts[0]}/: --data-dir "
                    f"{data_dir.parents[n - 1]}")
    return (
        f"Fetch it with `hw0 data download --data-dir {data_dir}`, or point --data-dir "
        f"(or ${DATA_DIR_ENV}) at the folder that holds it."
    )


def missing_data(data_dir: Path, which: tuple[str, ...] = ("cifar10", "mnist")) -> str | None:
    """What the data sets in `which` lack under `data_dir`, with the fix (None: all files
    are there; nothing is read)."""
    data_dir = Path(data_dir)
    lack = []
    if "cifar10" in which:
        folder = cifar_dir(data_dir)
        files = [n for n in (*CIFAR_TRAIN_FILES, CIFAR_TEST_FILE) if not (folder / n).is_file()]
        if files:
            lack.append(f"CIFAR-10 ({folder} lacks {', '.join(files)})")
    if "mnist" in which:
        files = [stem for stem in MNIST_FILES.values() if mnist_file(data_dir, stem) is None]
        if files:
            lack.append(f"MNIST ({data_dir / MNIST_RAW} lacks {', '.join(files)})")
    if not lack:
        return None
    return f"Data not found: {'; '.join(lack)}. " + _fetch_hint(data_dir)


# ---------------------------------------------------------------------------------------------
# CIFAR-10


class _RestrictedUnpickler(pickle.Unpickler):
    """Unpickler that admits only the numpy globals an official CIFAR batch names."""

    _reconstruct = np.ndarray.__reduce__(np.empty(0))[0]  # numpy's array reconstructor
    _ALLOWED: ClassVar[dict[tuple[str, str], object]] = {
        ("numpy.core.multiarray", "_reconstruct"): _reconstruct,
        ("numpy._core.multiarray", "_reconstruct"): _reconstruct,
        ("numpy", "ndarray"): np.ndarray,
        ("numpy", "dtype"): np.dtype,
    }

    def find_class(self, module: str, name: str) -> object:
        try:
            return self._ALLOWED[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(
                f"global '{module}.{name}' is not allowed in a CIFAR-10 batch file"
            ) from None


def safe_load_pickle(path: Path) -> object:
    """Load a CIFAR-style pickle, resolving only numpy array globals (bytes keys kept)."""
    with open(path, "rb") as f:
        return _RestrictedUnpickler(io.BufferedReader(f), encoding="bytes").load()


def _corrupt(path: Path, why: str, data_dir: Path) -> Hw0Error:
    return Hw0Error(
        f"CIFAR-10 file {path} is unreadable ({why}). It is probably truncated or corrupt: "
        f"delete {path.parent} and run `hw0 data download --data-dir {data_dir}` again."
    )


def _read_cifar_batch(path: Path, data_dir: Path) -> tuple[np.ndarray, np.ndarray]:
    """One batch file -> (images uint8 (N, 3, 32, 32), labels int64 (N,))."""
    try:
        batch = safe_load_pickle(path)
    except Exception as exc:  # truncated pickles raise EOFError, UnpicklingError, ValueError...
        raise _corrupt(path, f"{type(exc).__name__}: {exc}", data_dir) from None
    if not isinstance(batch, dict) or b"data" not in batch or b"labels" not in batch:
        raise _corrupt(path, "not a CIFAR-10 batch dictionary", data_dir)
    x, y = batch[b"data"], np.asarray(batch[b"labels"])
    if not isinstance(x, np.ndarray) or x.dtype != np.uint8 or x.ndim != 2 or x.shape[1] != 3072:
        raise _corrupt(path, "its 'data' entry is not a uint8 array of shape (N, 3072)", data_dir)
    if y.shape != (x.shape[0],) or y.size == 0 or y.min() < 0 or y.max() > 9:
        raise _corrupt(path, "its labels do not match its images", data_dir)
    return x.reshape(-1, 3, 32, 32), y.astype(np.int64)


@dataclass(frozen=True)
class CifarData:
    """CIFAR-10 as uint8 arrays: images (N, 3, 32, 32) in RGB order, labels int64 (N,)."""

    train_x: np.ndarray
    train_y: np.ndarray
    test_x: np.ndarray
    test_y: np.ndarray
    classes: tuple[str, ...]


def cifar_dir(data_dir: Path) -> Path:
    return Path(data_dir) / CIFAR_DIRNAME


def file_stamp(folder: Path, names: tuple[str, ...]) -> tuple:
    return tuple((n, (folder / n).stat().st_size, (folder / n).stat().st_mtime_ns) for n in names)


def load_cifar10(data_dir: Path) -> CifarData:
    """Read `<data_dir>/cifar-10-batches-py` (cached per process by file size and mtime)."""
    data_dir = Path(data_dir)
    folder = cifar_dir(data_dir)
    names = (*CIFAR_TRAIN_FILES, CIFAR_TEST_FILE)
    missing = [n for n in names if not (folder / n).is_file()]
    if missing:
        raise Hw0Error(
            f"CIFAR-10 not found: {folder} lacks {', '.join(missing)}. " + _fetch_hint(data_dir)
        )
    return _load_cifar10_cached(str(folder.resolve()), file_stamp(folder, names), str(data_dir))


@functools.lru_cache(maxsize=2)
def _load_cifar10_cached(folder: str, _stamp: tuple, data_dir: str) -> CifarData:
    root, ddir = Path(folder), Path(data_dir)
    parts = [_read_cifar_batch(root / n, ddir) for n in CIFAR_TRAIN_FILES]
    train_x = np.concatenate([p[0] for p in parts])
    train_y = np.concatenate([p[1] for p in parts])
    test_x, test_y = _read_cifar_batch(root / CIFAR_TEST_FILE, ddir)
    classes = CIFAR_CLASSES
    meta = root / CIFAR_META_FILE
    if meta.is_file():
        try:
            names = safe_load_pickle(meta)[b"label_names"]  # type: ignore[index]
            classes = tuple(n.decode() for n in names)
        except Exception:
            classes = CIFAR_CLASSES  # the meta file only names classes; the defaults are right
    for a in (train_x, train_y, test_x, test_y):
        a.setflags(write=False)  # shared by every caller through the cache
    return CifarData(train_x, train_y, test_x, test_y, classes)


# ---------------------------------------------------------------------------------------------
# MNIST

_IDX_DTYPES = {0x08: np.uint8}


def read_idx(path: Path) -> np.ndarray:
    """Read an IDX file (gzip-compressed or not) into a uint8 array of its declared shape."""
    path = Path(path)
    try:
        raw = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    except (OSError, EOFError) as exc:
        raise Hw0Error(f"MNIST file {path} is unreadable ({exc}); download it again.") from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_DTYPES:
        raise Hw0Error(f"{path} is not an IDX file of unsigned bytes; download it again.")
    ndim = raw[3]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise Hw0Error(f"MNIST file {path} is truncated (header); download it again.")
    dims = struct.unpack(f">{ndim}I", raw[4:header])
    need = header + int(np.prod(dims))
    if len(raw) != need:
        raise Hw0Error(
            f"MNIST file {path} is truncated or padded: {len(raw)} bytes, its header declares "
            f"{need}. Delete it and run `hw0 data download` again."
        )
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(dims)


@dataclass(frozen=True)
class MnistData:
    """MNIST as uint8 arrays: images (N, 28, 28), labels (N,)."""

    train_x: np.ndarray
    train_y: np.ndarray
    test_x: np.ndarray
    test_y: np.ndarray


def mnist_file(data_dir: Path, stem: str) -> Path | None:
    for folder in (Path(data_dir) / MNIST_RAW, Path(data_dir)):
        for name in (stem, stem + ".gz"):
            if (folder / name).is_file():
                return folder / name
    return None


def load_mnist(data_dir: Path) -> MnistData:
    """Read MNIST from `<data_dir>/MNIST/raw` (or `<data_dir>` itself), .gz or not."""
    data_dir = Path(data_dir)
    found = {k: mnist_file(data_dir, stem) for k, stem in MNIST_FILES.items()}
    missing = [MNIST_FILES[k] for k, p in found.items() if p is None]
    if missing:
        raise Hw0Error(
            f"MNIST not found: {data_dir / MNIST_RAW} lacks {', '.join(missing)}. "
            + _fetch_hint(data_dir)
        )
    paths = {k: p for k, p in found.items() if p is not None}
    return _load_mnist_cached(tuple(sorted((k, str(p), p.stat().st_mtime_ns)
                                           for k, p in paths.items())))


@functools.lru_cache(maxsize=2)
def _load_mnist_cached(key: tuple) -> MnistData:
    arrays = {k: read_idx(Path(p)) for k, p, _ in key}
    for split in ("train", "test"):
        x, y = arrays[f"{split}_images"], arrays[f"{split}_labels"]
        if x.ndim != 3 or y.ndim != 1 or len(x) != len(y):
            raise Hw0Error(f"MNIST {split} images and labels do not match: {x.shape} vs {y.shape}.")
    return MnistData(arrays["train_images"], arrays["train_labels"],
                     arrays["test_images"], arrays["test_labels"])


# ---------------------------------------------------------------------------------------------
# download and info


