"""HDF5 storage: the only module that touches h5py.

Every file carries a `schema_version` attribute. Files are written atomically: a temporary file
in the same folder, fsync, then `os.replace`, so a reader (or a crash) never sees half a file.
Dict and list attributes are stored as JSON strings and decoded on read; an attribute whose
value is None is not written (schema 1 wrote the string "null", still read as None). Datasets
that `hw0cli.schema` knows get `units` and `description` attributes. Weights are plain datasets
named like state_dict keys under `weights/`, so loading a model needs no pickle.

Schema versions: 1 (the first); 2 adds dataset units and descriptions, integer epochs, absent
instead of "null" attributes, the data's identity and readable weight names; 3 adds checksums
(`hw0cli.integrity`: a `sha256` attribute per dataset, the list of datasets and `attrs_sha256`
for the root attributes), required from then on and checked wherever present, and stores
strings fixed-length. Readers accept 1-3.

A file is built in memory and written to disk with plain writes, then renamed into place, so a
full disk fails one `os.write` (one message naming the disk: `errors.disk_error`), never an HDF5
flush. Whatever h5py raises on reading, and a checksum mismatch, is a `DamagedFileError`.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import filelock
import h5py
import numpy as np
from h5py import h5s

from hw0cli import atomic, integrity
from hw0cli.atomic import temp_path
from hw0cli.errors import DamagedFileError, Hw0Error, disk_error
from hw0cli.schema import meaning

SCHEMA_VERSION = 3
CHECKSUMS_SINCE = 3  # files of this schema version on must carry their checksums
INLINE_MAX = 32 << 10  # bytes: the longest string attribute kept in the object header


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
        raise disk_error(exc, folder) or Hw0Error(
            f"Cannot create output folder {folder} ({exc.strerror}). Choose another with "
            "--out.") from None
    if not os.access(folder, os.W_OK | os.X_OK):
        raise Hw0Error(f"Output folder {folder} is not writable. Choose another with --out, "
                       "or fix its permissions.")


def _utf8(text: str) -> np.ndarray:
    b = text.encode()
    return np.array(b, dtype=h5py.string_dtype("utf-8", max(1, len(b))))


def _set_attr(f: h5py.File, key: str, value: Any) -> None:
    """Strings are stored fixed-length (UTF-8) in the object header: HDF5 can loop forever
    on a damaged global heap, where variable-length strings live. Only one too large for a
    header (64 KiB) goes there."""
    value = _encode_attr(value)
    if isinstance(value, str) and len(value.encode()) <= INLINE_MAX:
        f.attrs.create(key, data=_utf8(value))
    else:
        f.attrs[key] = value


def _string_dataset(f: h5py.File, name: str, a: np.ndarray) -> h5py.Dataset:
    """A fixed-length UTF-8 string dataset (not variable-length: see _set_attr)."""
    e = np.char.encode(a, "utf-8")
    n = max(1, e.dtype.itemsize)
    ds = f.create_dataset(name, shape=a.shape, dtype=h5py.string_dtype("utf-8", n))
    if a.size:  # written as raw bytes: h5py has no ASCII -> UTF-8 conversion path
        ds.id.write(h5s.ALL, h5s.ALL, np.ascontiguousarray(e.astype(f"S{n}")),
                    mtype=ds.id.get_type())
    return ds


def _fill(f: h5py.File, attrs: Mapping[str, Any], arrays: Mapping[str, np.ndarray]) -> None:
    for k, v in attrs.items():
        if v is None:  # absent, not a placeholder string
            if k in f.attrs:
                del f.attrs[k]
            continue
        _set_attr(f, k, v)
    kind = _decode_attr(f.attrs.get("kind"))
    for name, arr in arrays.items():
        if name in f:
            del f[name]
        a = np.asarray(arr)
        ds = (_string_dataset(f, name, a) if a.dtype.kind == "U"
              else f.create_dataset(name, data=a))
        ds.attrs.create(integrity.DATASET_KEY, data=_utf8(integrity.array_digest(name, a)))
        m = meaning(name, kind if isinstance(kind, str) else None)
        if m is not None:
            ds.attrs.create("units", data=_utf8(m.units))
            ds.attrs.create("description", data=_utf8(m.description))
    names: list[str] = []
    f.visititems(lambda n, o: names.append(n) if isinstance(o, h5py.Dataset) else None)
    _set_attr(f, integrity.MANIFEST_KEY, sorted(names))
    _set_attr(f, integrity.ATTRS_KEY, integrity.attrs_digest(dict(f.attrs.items())))


def _image(build: Callable[[h5py.File], None], source: bytes | None = None) -> memoryview:
    """The bytes of an HDF5 file built in memory by `build` (from `source`, if given). Every
    h5py object is closed before any byte goes to disk, so a failing disk meets only plain
    writes (`atomic.write_bytes`), never an HDF5 object being flushed or freed."""
    buf = io.BytesIO(source or b"")
    with h5py.File(buf, "r+" if source else "w") as f:
        build(f)
    return buf.getbuffer()


def _write(path: Path, image: memoryview) -> None:
    try:
        atomic.write_bytes(path, image)
    except OSError as exc:  # not a failing disk (that is mapped already): permissions
        raise Hw0Error(f"Could not write {path} ({exc.strerror or exc}); the previous "
                       "version, if any, is untouched. Choose another --out, or fix the "
                       "folder's permissions.") from None


def write_h5(path: Path, attrs: Mapping[str, Any], arrays: Mapping[str, np.ndarray]) -> None:
    """Write a whole file atomically (replacing any previous one)."""
    path = Path(path)
    _check_writable(path.parent)

    def build(f: h5py.File) -> None:
        f.attrs["schema_version"] = SCHEMA_VERSION
        _fill(f, attrs, arrays)
    _write(path, _image(build))


def update_h5(path: Path, attrs: Mapping[str, Any] | None = None,
              arrays: Mapping[str, np.ndarray] | None = None,
              delete: tuple[str, ...] = ()) -> None:
    """Add or replace attributes/datasets of an existing file, atomically (edited in memory,
    then written whole). Attributes that no longer match their checksum are not vouched for
    anew: the file is reported damaged and left as it is."""
    path = Path(path)
    try:
        source = path.read_bytes()
    except OSError as exc:
        raise Hw0Error(f"Could not read {path} ({exc.strerror}); the file is unchanged.") \
            from None

    def build(f: h5py.File) -> None:
        raw = dict(f.attrs.items())
        integrity.check_attrs(raw, required=_version(raw) >= CHECKSUMS_SINCE)
        for name in delete:
            if name in f:
                del f[name]
        _fill(f, attrs or {}, arrays or {})
    with _damage_as_error(path):
        image = _image(build, source)
    _write(path, image)


class BackgroundWriter:
    """Writes whole files with `write_h5` on a worker thread, one at a time, in order.

    `submit` hands over host copies (the caller must not change them afterwards) and returns at
    once; it first waits for the previous write, so at most one is in flight. `wait` blocks
    until the last write is on disk and re-raises its error, if any. Every write is atomic, so
    a process killed at any moment leaves the previous complete file. The worker builds and
    closes its HDF5 objects itself (in memory) and hands a failure over as a fresh error with
    its message only, so nothing of the failed write is freed on another thread.
    """

    def __init__(self) -> None:
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None

    def _write(self, path: Path, attrs: Mapping[str, Any],
               arrays: Mapping[str, np.ndarray]) -> None:
        try:
            write_h5(path, attrs, arrays)
        except Hw0Error as exc:  # handed to the caller's next wait(), without this frame
            self._error = Hw0Error(str(exc), exc.exit_code)
        except BaseException as exc:  # a bug: its traceback is worth keeping
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


def _version(raw: Mapping[str, Any]) -> int:
    try:
        return int(_decode_attr(raw.get("schema_version", 0)))
    except (TypeError, ValueError):
        return 0


def _check_schema(attrs: Mapping[str, Any], path: Path) -> None:
    version = attrs.get("schema_version")
    if version is None:
        raise Hw0Error(f"{path} is not an hw0 file (no schema_version attribute).")
    if int(version) > SCHEMA_VERSION:
        raise Hw0Error(f"{path} has schema version {version}, newer than this hw0 understands "
                       f"({SCHEMA_VERSION}). Upgrade hw0 (pip install -U) to read it.")


@contextlib.contextmanager
def _damage_as_error(path: Path) -> Iterator[None]:
    """Whatever h5py raises on a file that does not read back (OSError, RuntimeError,
    KeyError, ValueError, ...), and a checksum mismatch, as DamagedFileError."""
    try:
        yield
    except Hw0Error:
        raise
    except integrity.ChecksumMismatch as exc:
        raise DamagedFileError(path, str(exc)) from None
    except Exception as exc:
        detail = (str(exc).splitlines() or [""])[0] or type(exc).__name__
        raise DamagedFileError(path, f"{detail} ({type(exc).__name__})") from None


def _read_dataset(name: str, obj: h5py.Dataset, required: bool) -> np.ndarray:
    if h5py.check_string_dtype(obj.dtype) is not None:
        data = obj.asstr()[()]
        integrity.check_array(name, data, obj.attrs.get(integrity.DATASET_KEY), required)
        return np.array(data if isinstance(data, str) else list(data))
    data = obj[()]
    integrity.check_array(name, data, obj.attrs.get(integrity.DATASET_KEY), required)
    return data


def read_h5(path: Path, prefixes: tuple[str, ...] | None = None,
            attrs_only: bool = False) -> H5Record:
    """Read attributes and (optionally only those under `prefixes`) datasets, each checked
    against its checksum; a file that does not read back is a DamagedFileError."""
    path = Path(path)
    if not path.is_file():
        raise Hw0Error(f"{path} does not exist.")
    with _damage_as_error(path), h5py.File(path, "r") as f:
        raw = dict(f.attrs.items())
        required = _version(raw) >= CHECKSUMS_SINCE
        if integrity.ATTRS_KEY in raw or required:
            integrity.check_attrs(raw, required)
        attrs = {k: _decode_attr(v) for k, v in raw.items()
                 if k not in (integrity.ATTRS_KEY, integrity.MANIFEST_KEY)}
        _check_schema(attrs, path)
        arrays: dict[str, np.ndarray] = {}
        if not attrs_only:
            def wanted(name: str) -> bool:
                return prefixes is None or any(name.startswith(p) for p in prefixes)

            def visit(name: str, obj: object) -> None:
                if isinstance(obj, h5py.Dataset) and wanted(name):
                    arrays[name] = _read_dataset(name, obj, required)
            f.visititems(visit)
            integrity.check_manifest(raw, set(arrays), wanted)
    return H5Record(attrs, arrays)


def has_dataset(path: Path, name: str) -> bool:
    """Whether the file holds dataset `name`; False for a missing or unreadable file."""
    try:
        with h5py.File(path, "r") as f:
            return name in f
    except Exception:  # any h5py error: a damaged file holds nothing usable
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
