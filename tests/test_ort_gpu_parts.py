"""scripts/ort_gpu_parts.sh: a wheel split into parts here, carried one call at a time, stashed,
reassembled and checked there, installed with pip --target (a small real wheel stands in for
onnxruntime-gpu's 255 MB)."""

import hashlib
import os
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "ort_gpu_parts.sh"


def make_wheel(folder: Path) -> Path:
    """A pure-Python wheel with ~300 kB of incompressible payload (several 100 kB parts)."""
    path = folder / "fakeort-0.1-py3-none-any.whl"
    files = {"fakeort/__init__.py": b"VALUE = 42\n",
             "fakeort/blob.bin": os.urandom(300_000),
             "fakeort-0.1.dist-info/METADATA": b"Metadata-Version: 2.1\nName: fakeort\n"
                                               b"Version: 0.1\n",
             "fakeort-0.1.dist-info/WHEEL": b"Wheel-Version: 1.0\nGenerator: test\n"
                                            b"Root-Is-Purelib: true\nTag: py3-none-any\n"}
    record = "".join(f"{k},,\n" for k in files) + "fakeort-0.1.dist-info/RECORD,,\n"
    with zipfile.ZipFile(path, "w") as z:
        for name, data in files.items():
            z.writestr(name, data)
        z.writestr("fakeort-0.1.dist-info/RECORD", record)
    return path


def run(args, tmp, **env):
    e = {**os.environ, "PYTHON": sys.executable, "PART_SIZE": "100K",
         "ORTGPU_STASH": str(tmp / "stash"), **env}
    return subprocess.run(["bash", str(SCRIPT), *args], capture_output=True, text=True,
                          env=e, timeout=300)


def sha(p: Path) -> str:
    return hashlib.sha256(p.read_bytes()).hexdigest()


def test_parts_travel_one_call_at_a_time_and_install(tmp_path):
    wheel = make_wheel(tmp_path)
    parts = tmp_path / "parts"
    r = run(["prepare", str(wheel)], tmp_path, ORTGPU_DIR=str(parts))
    assert r.returncode == 0, r.stderr
    names = sorted(p.name for p in parts.glob("*.part-*"))
    assert len(names) == -(-wheel.stat().st_size // 102_400) >= 3
    manifest = (parts / "manifest.sha256").read_text().splitlines()
    assert manifest[0] == f"{sha(wheel)}  {wheel.name}"
    assert [ln.split()[1] for ln in manifest[1:]] == names
    calls = [ln for ln in r.stdout.splitlines() if ln.startswith("call ")]
    assert len(calls) == len(names) and "scripts/device_check.sh --only ortgpu" in calls[-1]
    assert all(names[i] in c and "ort_gpu_parts.sh stash" in c for i, c in enumerate(calls[:-1]))
    # the device: each call brings one part (and the manifest); the stash keeps them
    for i, name in enumerate(names):
        call = tmp_path / f"call{i}"
        call.mkdir()
        for f in (name, "manifest.sha256"):
            (call / f).write_bytes((parts / f).read_bytes())
        r = run(["stash"], tmp_path, ORTGPU_DIR=str(call))
        assert r.returncode == 0 and f"{i + 1} of {len(names)}" in r.stdout, r.stderr
        if i == 0:  # not all there yet: assembling says which are missing
            r = run(["assemble"], tmp_path, ORTGPU_DIR=str(call))
            assert r.returncode == 1 and names[-1] in r.stderr and "missing" in r.stderr
    r = run(["install", str(tmp_path / "site")], tmp_path, ORTGPU_DIR=str(call))
    assert r.returncode == 0, r.stderr
    rebuilt = tmp_path / "stash" / wheel.name
    assert sha(rebuilt) == sha(wheel) and rebuilt.read_bytes() == wheel.read_bytes()
    assert r.stdout.strip() == str(tmp_path / "site")
    out = subprocess.run([sys.executable, "-c", "import fakeort; print(fakeort.VALUE)"],
                         capture_output=True, text=True, timeout=60,
                         env={**os.environ, "PYTHONPATH": str(tmp_path / "site")})
    assert out.stdout.strip() == "42"


def test_damaged_parts_are_refused(tmp_path):
    wheel = make_wheel(tmp_path)
    parts = tmp_path / "parts"
    assert run(["prepare", str(wheel)], tmp_path, ORTGPU_DIR=str(parts)).returncode == 0
    first = sorted(parts.glob("*.part-*"))[0]
    good = first.read_bytes()
    first.write_bytes(bytes([good[0] ^ 1]) + good[1:])  # one bit flipped on the way
    r = run(["stash"], tmp_path, ORTGPU_DIR=str(parts))
    assert r.returncode == 1 and "arrived damaged" in r.stderr and first.name in r.stderr
    first.write_bytes(good)
    assert run(["stash"], tmp_path, ORTGPU_DIR=str(parts)).returncode == 0
    stashed = tmp_path / "stash" / first.name
    stashed.write_bytes(good[:-1] + b"\0")  # damaged in the stash itself
    (parts / first.name).unlink()  # this call did not bring it again
    r = run(["assemble"], tmp_path, ORTGPU_DIR=str(parts))
    assert r.returncode == 1 and "does not match its sha256" in r.stderr
    assert not (tmp_path / "stash" / wheel.name).exists()  # no half-checked wheel left
    r = run(["frobnicate"], tmp_path, ORTGPU_DIR=str(parts))
    assert r.returncode == 2 and "prepare" in r.stdout
