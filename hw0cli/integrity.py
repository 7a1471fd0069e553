"""Checksums of what the store writes, so a damaged array is never used silently.

Every dataset of a schema-3 file carries the SHA-256 of its name and values (attribute
`sha256`), the root attributes list every dataset (`datasets`), and `attrs_sha256` covers all
other root attributes; `store` writes them and checks them on every read, so a damaged value,
a damaged name or a lost dataset is caught. Digests are of the values as they read back (dtype,
shape and bytes; strings as JSON), so they do not depend on how HDF5 lays the file out.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

import numpy as np

DATASET_KEY = "sha256"  # attribute of each dataset
ATTRS_KEY = "attrs_sha256"  # root attribute covering the other root attributes
MANIFEST_KEY = "datasets"  # root attribute: the names of all datasets (JSON list)


class ChecksumMismatch(Exception):
    """What was read is not what was written (the message says which part)."""


def array_digest(name: str, value: Any) -> str:
    """SHA-256 of a dataset's name and values: dtype, shape and bytes; strings (a str, or an
    array of them) as JSON, since their fixed-width dtype is not kept by HDF5."""
    h = hashlib.sha256(name.strip("/").encode() + b"\0")
    if isinstance(value, str) or (isinstance(value, np.ndarray) and value.dtype.kind in "UO"):
        h.update(b"str:" + json.dumps(value if isinstance(value, str)
                                      else value.tolist()).encode())
        return h.hexdigest()
    a = np.ascontiguousarray(value)
    h.update(f"{a.dtype.str}{a.shape}:".encode())
    h.update(memoryview(a).cast("B") if a.size else b"")
    return h.hexdigest()


def _plain(value: Any) -> Any:
    if isinstance(value, bytes):
        return value.decode(errors="replace")
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    return value


def attrs_digest(raw: Mapping[str, Any]) -> str:
    """SHA-256 of root attributes as stored (before JSON decoding), all but `ATTRS_KEY`."""
    plain = {k: _plain(v) for k, v in raw.items() if k != ATTRS_KEY}
    return hashlib.sha256(json.dumps(plain, sort_keys=True, default=str).encode()).hexdigest()


def check_array(name: str, value: Any, stored: Any, required: bool) -> None:
    """Raise ChecksumMismatch unless `value` matches the `stored` digest (absent: allowed in
    files written before checksums, i.e. unless `required`)."""
    if stored is None:
        if required:
            raise ChecksumMismatch(f"{name} has no checksum")
        return
    if _plain(stored) != array_digest(name, value):
        raise ChecksumMismatch(f"the data of {name} does not match its checksum")


def check_attrs(raw: Mapping[str, Any], required: bool) -> None:
    stored = raw.get(ATTRS_KEY)
    if stored is None:
        if required:
            raise ChecksumMismatch("its attributes have no checksum")
        return
    if _plain(stored) != attrs_digest(raw):
        raise ChecksumMismatch("its attributes do not match their checksum")


def check_manifest(raw: Mapping[str, Any], found: set[str], wanted: Any) -> None:
    """Raise ChecksumMismatch unless the datasets `found` (those `wanted(name)` selects) are
    the ones the file lists; files without a list (before schema 3) are not checked."""
    listed = raw.get(MANIFEST_KEY)
    if listed is None:
        return
    expected = {n for n in json.loads(_plain(listed)) if wanted(n)}
    if found != expected:
        lost, odd = sorted(expected - found), sorted(found - expected)
        raise ChecksumMismatch("; ".join(
            ([f"lacks {', '.join(lost[:3])}" + (" ..." if len(lost) > 3 else "")] if lost
             else []) + ([f"holds unlisted {', '.join(map(repr, odd[:3]))}"] if odd else [])))
