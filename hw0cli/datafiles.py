"""The data files themselves: downloading them (torchvision's mirrors and checksums), their
identity (the MD5 of each file a result used, and whether they are the official ones) and
`hw0 data info`'s table of what is present."""

from __future__ import annotations

import functools
import gzip
import hashlib
from dataclasses import dataclass
from pathlib import Path

from torchvision.datasets import CIFAR10, MNIST
from torchvision.datasets import utils as tv_utils

from hw0cli.data import (
    CIFAR_DIRNAME,
    CIFAR_META_FILE,
    CIFAR_TEST_FILE,
    CIFAR_TRAIN_FILES,
    MNIST_FILES,
    MNIST_RAW,
    MNIST_RAW_MD5,
    cifar_dir,
    file_stamp,
    mnist_file,
)
from hw0cli.errors import Hw0Error


def _fetch_mnist(data_dir: Path) -> None:
    """Each MNIST file not already present (raw or .gz), from the first mirror that serves it."""

    raw = data_dir / MNIST_RAW
    for filename, md5 in MNIST.resources:
        if mnist_file(data_dir, filename.removesuffix(".gz")) is not None:
            continue  # the loader reads the .gz or the extracted file alike
        causes = []
        for mirror in MNIST.mirrors:
            try:
                tv_utils.download_and_extract_archive(mirror + filename, str(raw),
                                                      filename=filename, md5=md5)
                break
            except (OSError, RuntimeError) as exc:  # RuntimeError: torchvision's MD5 check
                causes.append(f"{mirror}: {_cause(exc)}")
                (raw / filename).unlink(missing_ok=True)  # a partial or corrupt download
        else:
            raise OSError(f"no mirror served {filename} ({'; '.join(causes)})")


def _cause(exc: BaseException) -> str:
    """The innermost reason of a download error (urllib wraps socket errors in URLError)."""
    reason = getattr(exc, "reason", None)
    text = str(reason if reason is not None else exc).strip() or type(exc).__name__
    return text.splitlines()[0]


def _remove_new_empty_folders(folders: list[Path], existed: set[Path]) -> None:
    for folder in sorted(folders, key=lambda p: len(p.parts), reverse=True):
        if folder not in existed and folder.is_dir() and not any(folder.iterdir()):
            folder.rmdir()


def download(data_dir: Path, which: tuple[str, ...] = ("cifar10", "mnist")) -> list[str]:
    """Fetch the data sets with torchvision's download utilities; return what was done.

    On failure the error names each cause, and folders this call created and left empty are
    removed, so a failed download leaves the data folder as it was.
    """

    data_dir = Path(data_dir)
    folders = [data_dir, data_dir / "MNIST", data_dir / MNIST_RAW, cifar_dir(data_dir)]
    existed = {f for f in folders if f.is_dir()}
    done = []
    try:
        data_dir.mkdir(parents=True, exist_ok=True)
        if "cifar10" in which:
            if all((cifar_dir(data_dir) / n).is_file() for n in CIFAR_TRAIN_FILES):
                done.append(f"CIFAR-10 already present in {cifar_dir(data_dir)}")
            else:
                archive = data_dir / CIFAR10.filename
                try:
                    tv_utils.download_and_extract_archive(CIFAR10.url, str(data_dir),
                                                 filename=CIFAR10.filename, md5=CIFAR10.tgz_md5)
                except (OSError, RuntimeError) as exc:
                    archive.unlink(missing_ok=True)
                    raise OSError(f"{CIFAR10.url}: {_cause(exc)}") from None
                done.append(f"CIFAR-10 downloaded to {cifar_dir(data_dir)}")
        if "mnist" in which:
            _fetch_mnist(data_dir)
            done.append(f"MNIST present in {data_dir / MNIST_RAW}")
    except OSError as exc:
        _remove_new_empty_folders(folders, existed)
        raise Hw0Error(
            f"Download failed: {_cause(exc)}. Check the network connection, or copy the files "
            f"by hand into {data_dir} (layouts: {CIFAR_DIRNAME}/ and {MNIST_RAW}/)."
        ) from None
    return done


def _file_md5(path: Path) -> str:
    h = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 22), b""):
            h.update(chunk)
    return h.hexdigest()


@functools.lru_cache(maxsize=4)
def _cifar_identity(folder: str, _stamp: tuple) -> dict[str, object]:
    official = dict(CIFAR10.train_list + CIFAR10.test_list)
    files = {n: _file_md5(Path(folder) / n) for n in (*CIFAR_TRAIN_FILES, CIFAR_TEST_FILE)}
    return {"dataset": "cifar10", "folder": folder, "md5": files,
            "official": all(files[n] == official[n] for n in files)}


def cifar_identity(data_dir: Path) -> dict[str, object]:
    """Which CIFAR-10 files a run read: their MD5s and whether all match the official release
    (a re-encoded copy gives different accuracies). Empty when the files are not there."""
    folder = cifar_dir(Path(data_dir))
    names = (*CIFAR_TRAIN_FILES, CIFAR_TEST_FILE)
    if not all((folder / n).is_file() for n in names):
        return {}
    return _cifar_identity(str(folder.resolve()), file_stamp(folder, names))


def mnist_identity(data_dir: Path) -> dict[str, object]:
    """The MNIST files a result used: MD5 of each uncompressed IDX file, and whether all match
    the official release."""
    files = {}
    for stem in MNIST_FILES.values():
        p = mnist_file(Path(data_dir), stem)
        if p is None:
            return {}
        raw = gzip.decompress(p.read_bytes()) if p.suffix == ".gz" else p.read_bytes()
        files[stem] = _md5(raw)
    return {"dataset": "mnist", "folder": str((Path(data_dir) / MNIST_RAW).resolve()),
            "md5": files, "official": all(files[k] == MNIST_RAW_MD5[k] for k in files)}


@dataclass(frozen=True)
class FileInfo:
    dataset: str
    path: str
    present: bool
    size: int
    md5_ok: bool | None  # None: not checked (missing file)


def _md5(data: bytes) -> str:
    return hashlib.md5(data, usedforsecurity=False).hexdigest()


def info(data_dir: Path) -> list[FileInfo]:
    """Each expected file: present, size, and whether it matches the official checksum."""

    data_dir = Path(data_dir)
    rows = []
    cifar_md5 = dict(CIFAR10.train_list + CIFAR10.test_list + [list(CIFAR10.meta.values())[:2]])
    for name in (*CIFAR_TRAIN_FILES, CIFAR_TEST_FILE, CIFAR_META_FILE):
        p = cifar_dir(data_dir) / name
        ok = _md5(p.read_bytes()) == cifar_md5[name] if p.is_file() else None
        rows.append(FileInfo("cifar10", str(p), p.is_file(), p.stat().st_size if ok is not None
                             else 0, ok))
    for stem in MNIST_FILES.values():
        p = mnist_file(data_dir, stem)
        if p is None:
            rows.append(FileInfo("mnist", str(data_dir / MNIST_RAW / stem), False, 0, None))
            continue
        try:
            raw = gzip.decompress(p.read_bytes()) if p.suffix == ".gz" else p.read_bytes()
            ok = _md5(raw) == MNIST_RAW_MD5[stem]
        except (OSError, EOFError):
            ok = False
        rows.append(FileInfo("mnist", str(p), True, p.stat().st_size, ok))
    return rows
