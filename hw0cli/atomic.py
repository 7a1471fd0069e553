"""Write a file so that a reader (or a crash) never sees half of it.

The content goes to a temporary file beside the target, is flushed to disk (fsync), and is
then renamed onto the target (`os.replace`, atomic on POSIX and Windows); a failure removes
the temporary file and leaves any previous version untouched. A failing disk (full, over
quota, I/O error) becomes one message naming the disk and the path (`errors.disk_error`).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from hw0cli.errors import disk_error

CHUNK = 8 << 20  # bytes per write call


def temp_path(path: Path, keep_suffix: bool = False) -> Path:
    """The temporary name beside `path`: hidden, per process. Its name does not end in
    `path`'s suffix, so listings of `*.h5` never see a file being written (or one a killed
    writer left); `keep_suffix` for writers that pick the format from it (matplotlib, ONNX)."""
    return path.with_name(f".{path.name}.tmp{os.getpid()}{path.suffix if keep_suffix else ''}")


def fsync_file(path: Path) -> None:
    with open(path, "rb") as fh:
        os.fsync(fh.fileno())


@contextmanager
def atomic_path(path: Path, keep_suffix: bool = False) -> Iterator[Path]:
    """Yield a temporary path to write `path`'s new content to; it replaces `path` when the
    block ends without an exception."""
    path = Path(path)
    tmp = temp_path(path, keep_suffix)
    try:
        yield tmp
        fsync_file(tmp)
        os.replace(tmp, path)
    except OSError as exc:
        mapped = disk_error(exc, path)
        if mapped is None:
            raise
        raise mapped from None
    finally:
        tmp.unlink(missing_ok=True)


def write_bytes(path: Path, data: bytes | memoryview) -> Path:
    """Write `data` as the new content of `path`, atomically, through plain `os.write` calls
    (so no library object is left holding a failed write). A failing disk is one message;
    other OSErrors (permissions) are raised as they are, for the caller to word."""
    path = Path(path)
    tmp = temp_path(path)
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o666)
        try:
            view = memoryview(data).cast("B")
            while len(view):
                view = view[os.write(fd, view[:CHUNK]):]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        mapped = disk_error(exc, path)
        if mapped is None:
            raise
        raise mapped from None
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def write_text(path: Path, text: str) -> Path:
    return write_bytes(path, text.encode())


@contextmanager
def new_folder(folder: Path) -> Iterator[Path]:
    """Create `folder` (and missing parents); if the block fails, remove the folders it
    created that are still empty, so a failed command leaves no empty folder behind."""
    folder = Path(folder)
    created = []
    p = folder
    while not p.exists() and p != p.parent:
        created.append(p)
        p = p.parent
    folder.mkdir(parents=True, exist_ok=True)
    try:
        yield folder
    except BaseException:
        for d in created:  # deepest first
            with contextlib.suppress(OSError):
                d.rmdir()
        raise
