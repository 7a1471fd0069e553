"""Errors that carry a fix-it message; the CLI prints them and exits with `exit_code`.

`disk_error` is the one mapping from a failing disk (full, over quota, I/O error), wherever
in a call it surfaced, to a message naming the disk and the path; `DamagedFileError` is a
stored file that does not read back as written; `Hw0Warning` is something a command tells
the user without stopping (a damaged file skipped in a listing).
"""

from __future__ import annotations

import errno
import os
import shutil
from collections.abc import Iterable
from pathlib import Path


class Hw0Error(Exception):
    """A runtime failure the user can act on (exit code 1)."""

    exit_code = 1

    def __init__(self, message: str, exit_code: int | None = None) -> None:
        super().__init__(message)
        if exit_code is not None:
            self.exit_code = exit_code


class Hw0UsageError(Hw0Error):
    """A bad option or argument (exit code 2, like any usage error)."""

    exit_code = 2


def check(condition: bool, message: str) -> None:
    """Raise `Hw0UsageError(message)` unless `condition` holds."""
    if not condition:
        raise Hw0UsageError(message)


class DamagedFileError(Hw0Error):
    """A stored file that does not read back as it was written (HDF5 structure or checksum)."""

    def __init__(self, path: object, detail: str) -> None:
        super().__init__(f"{path} is damaged: {detail} (delete it or re-run the command that "
                         "wrote it with --force).")
        self.path = path


class Hw0Warning(UserWarning):
    """Something the user should know that does not stop the command; the CLI prints it."""


# what each failing-disk errno means, as the end of "the disk holding X ..."
DISK_FAILURES = {errno.ENOSPC: "is full", errno.EDQUOT: "is over your disk quota",
                 errno.EIO: "reported an I/O error", errno.EFBIG: "refused a file this large"}


def disk_oserror(exc: BaseException | None) -> OSError | None:
    """The failing-disk OSError that `exc` is or was caused by (libraries wrap it: inductor's
    InductorError, onnx's and PIL's own errors), if any."""
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, OSError) and exc.errno in DISK_FAILURES:
            return exc
        inner = getattr(exc, "inner_exception", None)
        exc = inner if isinstance(inner, BaseException) else exc.__cause__ or exc.__context__
    return None


def _size(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TB"


def _mount(folder: Path) -> Path:
    p = folder.resolve()
    while not os.path.ismount(p) and p != p.parent:
        p = p.parent
    return p


def _existing(path: Path) -> Path:
    p = Path(os.path.abspath(path))
    while not p.exists() and p != p.parent:
        p = p.parent
    return p


def free_bytes(folder: Path) -> int | None:
    """Free bytes on the disk holding `folder` (its nearest existing parent); None if unknown."""
    try:
        return shutil.disk_usage(_existing(Path(folder))).free
    except OSError:
        return None


def _disk(folder: Path) -> str:
    free = free_bytes(folder)
    return f"the disk mounted at {_mount(_existing(folder))}" + (
        f", {_size(free)} free" if free is not None else "")


def disk_full(path: Path, err_no: int = errno.ENOSPC) -> Hw0Error:
    """The message for a write of `path` that a failing disk stopped."""
    path = Path(path)
    folder = _existing(path.parent)
    return Hw0Error(
        f"Could not write {path}: the disk holding {folder} {DISK_FAILURES[err_no]} "
        f"({os.strerror(err_no)}; {_disk(folder)}). Nothing was half-written: the previous "
        f"{path.name}, if any, is untouched. Free some space there (or write elsewhere: "
        "--out, $HW0_CACHE), then run the command again"
        + ("; an interrupted run resumes from its last checkpoint." if path.suffix == ".h5"
           else "."))


def disk_error(exc: BaseException, path: Path | None = None,
               folders: Iterable[tuple[str, Path]] = ()) -> Hw0Error | None:
    """A failing disk inside `exc` as one message naming the disk and the path (`path`, the
    error's file name, else each of `folders` (label, folder) the command writes to, with its
    free space); None when `exc` is no disk failure."""
    err = disk_oserror(exc)
    if err is None:
        return None
    target = path or (Path(os.fsdecode(err.filename)) if err.filename else None)
    if target is not None:
        return disk_full(target, err.errno)
    # the file name was lost on the way (inside torch.compile, say): the fullest disk first
    places = sorted(((free_bytes(Path(f)), label, Path(f)) for label, f in folders),
                    key=lambda x: float("inf") if x[0] is None else x[0])
    where = "; ".join(f"{label} {folder} ({_disk(folder)})" for _, label, folder in places)
    return Hw0Error(
        f"A disk this command writes to {DISK_FAILURES[err.errno]} ({os.strerror(err.errno)})"
        + (f". It writes to, fullest first: {where}" if where else "") + ". Nothing finished "
        "was lost. Free some space (or write elsewhere: --out, $HW0_CACHE), then run the "
        "command again; an interrupted run resumes from its last checkpoint.")
