"""HDF5 storage: the only module that touches h5py.

Every file carries a `schema_version` attribute. Files are written atomically: a temporary file
in the same folder, fsync, then `os.replace`, so a reader (or a crash) never sees half a file.
Dict and list attributes are stored as JSON strings and decoded on read; an attribute whose
value is None is not written (schema 1 wrote the string "null", still read as None). Datasets
that `hw0cli.schema` knows get `units` and `description` attributes. Weights are plain datasets
named like state_dict keys under `weights/`, so loading a model needs no pickle.

Schema versions: 1 (the first); 2 adds dataset units and descriptions, integer epochs, absent
instead of "null" attributes, the data's identity and readable weight names. Readers accept both.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import re
import shutil
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import filelock
import h5py
import numpy as np

from hw0cli.atomic import fsync_file, temp_path
from hw0cli.errors import Hw0Error
from hw0cli.schema import meaning

SCHEMA_VERSION = 2


@dataclass
class H5Record:
    """What one HDF5 file holds: root attributes and `group/name -> array` datasets."""

    attrs: dict[str, Any] = field(default_factory=dict)
    arrays: dict[str, np.ndarray] = field(default_factory=dict)

    def group(self, prefix: str) -> dict[str, np.ndarray]:
        """Datasets under `prefix/`, keyed by the rest of their name."""
        p = prefix.rstrip("/") + "/"
        return {k[len(p):]: v for k, v in self.arrays.items() if k.startswith(p)}


def _encode_attr(value: Any) -> Any:
    if isinstance(value, (dict, list, tuple)):
        return json.dumps(value, default=str)
    if isinstance(value, Path):
        return str(value)
    return value


def _decode_attr(value: Any) -> Any:
    if isinstance(value, bytes):
        value = value.decode()
    if isinstance(value, str) and (value[:1] in "{[" or value == "null"):
        try:
            return json.loads(value)
        except json.JSONDecodeError:
            return value
    if isinstance(value, np.generic):
        return value.item()
    return value


def _tmp_path(path: Path) -> Path:
    return temp_path(path)


def _check_writable(folder: Path) -> None:
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise Hw0Error(f"Cannot create output folder {folder} ({exc.strerror}). "
                       "Choose another with --out.") from None
    if not os.access(folder, os.W_OK | os.X_OK):
        raise Hw0Error(f"Output folder {folder} is not writable. Choose another with --out, "
                       "or fix its permissions.")


def _fill(f: h5py.File, attrs: Mapping[str, Any], arrays: Mapping[str, np.ndarray]) -> None:
    for k, v in attrs.items():
        if v is None:  # absent, not a placeholder string
            if k in f.attrs:
                del f.attrs[k]
            continue
        f.attrs[k] = _encode_attr(v)
    kind = _decode_attr(f.attrs.get("kind"))
    for name, arr in arrays.items():
        if name in f:
            del f[name]
        a = np.asarray(arr)
        if a.dtype.kind == "U":
            ds = f.create_dataset(name, data=a.astype(object), dtype=h5py.string_dtype())
        else:
            ds = f.create_dataset(name, data=a)
        m = meaning(name, kind if isinstance(kind, str) else None)
        if m is not None:
            ds.attrs["units"] = m.units
            ds.attrs["description"] = m.description


def _commit(tmp: Path, path: Path) -> None:
    fsync_file(tmp)
    os.replace(tmp, path)


def write_h5(path: Path, attrs: Mapping[str, Any], arrays: Mapping[str, np.ndarray]) -> None:
    """Write a whole file atomically (replacing any previous one)."""
    path = Path(path)
    _check_writable(path.parent)
    tmp = _tmp_path(path)
    try:
        with h5py.File(tmp, "w") as f:
            f.attrs["schema_version"] = SCHEMA_VERSION
            _fill(f, attrs, arrays)
        _commit(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        if exc.errno in (errno.ENOSPC, errno.EACCES, errno.EROFS):
            raise Hw0Error(f"Could not write {path} ({exc.strerror}); the previous version, if "
                           "any, is untouched. Free space or choose another --out.") from None
        raise
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def update_h5(path: Path, attrs: Mapping[str, Any] | None = None,
              arrays: Mapping[str, np.ndarray] | None = None,
              delete: tuple[str, ...] = ()) -> None:
    """Add or replace attributes/datasets of an existing file, atomically (copy, edit, rename)."""
    path = Path(path)
    tmp = _tmp_path(path)
    try:
        shutil.copy2(path, tmp)
        with h5py.File(tmp, "r+") as f:
            for name in delete:
                if name in f:
                    del f[name]
            _fill(f, attrs or {}, arrays or {})
        _commit(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise Hw0Error(f"Could not update {path} ({exc}); the file is unchanged.") from None
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


class BackgroundWriter:
    """Writes whole files with `write_h5` on a worker thread, one at a time, in order.

    `submit` hands over host copies (the caller must not change them afterwards) and returns at
    once; it first waits for the previous write, so at most one is in flight. `wait` blocks
    until the last write is on disk and re-raises its error, if any. Every write is atomic, so
    a process killed at any moment leaves the previous complete file.
    """

    def __init__(self) -> None:
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None

    def _write(self, path: Path, attrs: Mapping[str, Any],
               arrays: Mapping[str, np.ndarray]) -> None:
        try:
            write_h5(path, attrs, arrays)
        except BaseException as exc:  # handed to the caller's next wait()
            self._error = exc

    def submit(self, path: Path, attrs: Mapping[str, Any],
               arrays: Mapping[str, np.ndarray]) -> None:
        self.wait()
        self._thread = threading.Thread(target=self._write, args=(path, attrs, arrays),
                                        name="hw0-checkpoint")
        self._thread.start()

    def wait(self) -> None:
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        if self._error is not None:
            err, self._error = self._error, None
            raise err


def _check_schema(attrs: Mapping[str, Any], path: Path) -> None:
    version = attrs.get("schema_version")
    if version is None:
        raise Hw0Error(f"{path} is not an hw0 file (no schema_version attribute).")
    if int(version) > SCHEMA_VERSION:
        raise Hw0Error(f"{path} has schema version {version}, newer than this hw0 understands "
                       f"({SCHEMA_VERSION}). Upgrade hw0 (pip install -U) to read it.")


def read_h5(path: Path, prefixes: tuple[str, ...] | None = None,
            attrs_only: bool = False) -> H5Record:
    """Read attributes and (optionally only those under `prefixes`) datasets."""
    path = Path(path)
    if not path.is_file():
        raise Hw0Error(f"{path} does not exist.")
    try:
        with h5py.File(path, "r") as f:
            attrs = {k: _decode_attr(v) for k, v in f.attrs.items()}
            _check_schema(attrs, path)
            arrays: dict[str, np.ndarray] = {}
            if not attrs_only:
                def visit(name: str, obj: object) -> None:
                    if isinstance(obj, h5py.Dataset) and (
                        prefixes is None or any(name.startswith(p) for p in prefixes)
                    ):
                        if h5py.check_string_dtype(obj.dtype) is not None:
                            data = obj.asstr()[()]
                            arrays[name] = np.array(data if isinstance(data, str)
                                                    else list(data))
                        else:
                            arrays[name] = obj[()]
                f.visititems(visit)
    except OSError as exc:
        raise Hw0Error(f"{path} is not a readable HDF5 file ({exc}). It may be a leftover of a "
                       "killed process: delete it, or re-run with --force.") from None
    return H5Record(attrs, arrays)


def has_dataset(path: Path, name: str) -> bool:
    try:
        with h5py.File(path, "r") as f:
            return name in f
    except OSError:
        return False


def _lock_path(path: Path) -> Path:
    return Path(path).with_name(Path(path).name + ".lock")


# A writer holds its lock for a whole run; `is_locked` takes it for an instant to look. So a
# writer waits LOCK_WAIT_S before giving up (a look never makes it fail), and a look that waited
# PROBE_WAIT_S has met a writer (two looks at once never both see "locked").
LOCK_WAIT_S, PROBE_WAIT_S = 2.0, 0.5


@contextlib.contextmanager
def lock(path: Path) -> Iterator[None]:
    """Hold an exclusive lock beside `path` (`<path>.lock`); a second holder gets Hw0Error.

    `filelock` picks the OS primitive (flock on POSIX, msvcrt on Windows), so this works
    wherever Python does; the holder's pid is written into the lock file for the message.
    """
    path = Path(path)
    lock_path = _lock_path(path)
    _check_writable(lock_path.parent)
    fl = filelock.FileLock(str(lock_path), timeout=LOCK_WAIT_S)
    try:
        fl.acquire()
    except filelock.Timeout:
        raise Hw0Error(f"{path.name} is being written by {_holder(lock_path)}. Wait for it to "
                       "finish (or stop it), then run the command again.") from None
    try:
        for stale in path.parent.glob(f".{path.name}.tmp*"):  # left by a killed writer
            stale.unlink(missing_ok=True)
        if not isinstance(fl, filelock.SoftFileLock):  # a soft lock's file is its own record
            with contextlib.suppress(OSError):  # of its holder (pid=...), not to overwrite
                lock_path.write_text(f"pid {os.getpid()}")
        yield
    finally:
        with contextlib.suppress(OSError):  # while held, as a waiter re-checks the inode
            lock_path.unlink()
        fl.release()


def _holder(lock_path: Path) -> str:
    """'pid N' of the process holding a lock, from its lock file, for a message."""
    try:
        found = re.search(r"^pid[ =](\d+)", lock_path.read_text(), re.MULTILINE)
    except (OSError, UnicodeDecodeError):  # Windows: the holder's byte-range lock blocks reading
        found = None
    return f"pid {found.group(1)}" if found else "another process"


def is_locked(path: Path) -> bool:
    """Whether some process holds the lock of `path` right now."""
    lock_path = _lock_path(path)
    if not lock_path.exists():
        return False
    fl = filelock.FileLock(str(lock_path), timeout=PROBE_WAIT_S)
    try:
        fl.acquire()
    except filelock.Timeout:
        return True
    fl.release()
    return False
