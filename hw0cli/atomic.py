"""Write a file so that a reader (or a crash) never sees half of it.

The content goes to a temporary file beside the target, is flushed to disk (fsync), and is
then renamed onto the target (`os.replace`, atomic on POSIX and Windows); a failure removes
the temporary file and leaves any previous version untouched.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


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
    finally:
        tmp.unlink(missing_ok=True)


def write_text(path: Path, text: str) -> Path:
    with atomic_path(path) as tmp:
        tmp.write_text(text)
    return Path(path)
