"""Shared test helpers: synthetic data in the real on-disk formats (read by the real loaders),
tiny training configs, a display that presses Ctrl-C. Fixtures live in conftest.py."""

from __future__ import annotations

import gzip
import io
import pickle
import struct
from pathlib import Path

import numpy as np

from hw0cli.data import CIFAR_CLASSES


def synthetic_cifar(n_per_batch: int, n_test: int, seed: int = 0) -> dict[str, tuple]:
    """A learnable 10-class task: class k brightens channel k % 3 in quadrant k // 3."""
    rng = np.random.default_rng(seed)

    def make(n: int) -> tuple[np.ndarray, list[int]]:
        y = rng.integers(0, 10, n)
        x = rng.integers(0, 90, (n, 3, 32, 32))
        for i, k in enumerate(y):
            r, c = divmod(int(k) // 3, 2)
            x[i, int(k) % 3, 16 * r:16 * r + 16, 16 * c:16 * c + 16] += 140
        return x.astype(np.uint8).reshape(n, 3072), [int(v) for v in y]

    batches = {f"data_batch_{i}": make(n_per_batch) for i in range(1, 6)}
    batches["test_batch"] = make(n_test)
    return batches


class _Py2StylePickler(pickle._Pickler):
    """Protocol 2 with bytes as Python 2 `str` opcodes, as the official CIFAR files have."""

    dispatch = pickle._Pickler.dispatch.copy()

    def _save_bytes_py2(self, obj: bytes) -> None:
        n = len(obj)
        op = (pickle.SHORT_BINSTRING + bytes([n]) if n < 256
              else pickle.BINSTRING + struct.pack("<i", n))
        self.write(op + obj)
        self.memoize(obj)

    dispatch[bytes] = _save_bytes_py2


def py2_pickle(obj: object) -> bytes:
    buf = io.BytesIO()
    _Py2StylePickler(buf, protocol=2).dump(obj)
    return buf.getvalue()


def write_cifar(root: Path, n_per_batch: int = 100, n_test: int = 200, seed: int = 0) -> Path:
    """Write `root/cifar-10-batches-py` as the official python-pickle release lays it out."""
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True, exist_ok=True)
    for name, (x, y) in synthetic_cifar(n_per_batch, n_test, seed).items():
        batch = {b"batch_label": name.encode(), b"labels": y, b"data": x,
                 b"filenames": [f"{i}.png".encode() for i in range(len(y))]}
        (folder / name).write_bytes(py2_pickle(batch))
    meta = {b"label_names": [c.encode() for c in CIFAR_CLASSES], b"num_cases_per_batch": 10000,
            b"num_vis": 3072}
    (folder / "batches.meta").write_bytes(py2_pickle(meta))
    return root


def idx_bytes(arr: np.ndarray) -> bytes:
    """Encode a uint8 array in the IDX format (magic 0x08 = unsigned byte)."""
    header = bytes([0, 0, 0x08, arr.ndim]) + struct.pack(f">{arr.ndim}I", *arr.shape)
    return header + arr.astype(np.uint8).tobytes()


def write_mnist(root: Path, n_train: int = 600, n_test: int = 200, gz: bool = True,
                seed: int = 0) -> Path:
    """Write MNIST-like IDX files under `root/MNIST/raw` (digit k: a bar at row 2k)."""
    rng = np.random.default_rng(seed)
    raw = root / "MNIST" / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    for split, n in (("train", n_train), ("t10k", n_test)):
        y = rng.integers(0, 10, n).astype(np.uint8)
        x = rng.integers(0, 60, (n, 28, 28)).astype(np.uint8)
        for i, k in enumerate(y):
            x[i, 2 * k + 4: 2 * k + 6, 4:24] = 255
        for kind, arr in (("images-idx3", x), ("labels-idx1", y)):
            data = idx_bytes(arr)
            name = f"{split}-{kind}-ubyte"
            if gz:
                (raw / (name + ".gz")).write_bytes(gzip.compress(data))
            else:
                (raw / name).write_bytes(data)
    return root


SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def tiny_config(cifar_root: Path, out: Path, **overrides):
    """A seconds-long CPU training config on the synthetic CIFAR set (width 4, fp32, eager)."""
    from hw0cli.train.config import TrainConfig
    base = dict(width=4, epochs=3, batch_size=50, train_samples=500, data_dir=cifar_root,
                out=out, device="cpu", precision="fp32", lr=0.05, compile=False)
    return TrainConfig(**{**base, **overrides})


class InterruptAt:
    """A training display that presses Ctrl-C once epoch `epoch` is done (and checkpointed)."""

    def __init__(self, epoch: int) -> None:
        self.epoch = epoch

    def on_start(self, info: dict) -> None:
        pass

    def on_step(self, *args: object) -> None:
        pass

    def on_epoch(self, row: dict) -> None:
        if row["epoch"] >= self.epoch:
            raise KeyboardInterrupt


def config_from_train_args(args: list[str]):
    """The TrainConfig `hw0 train ARGS` would run (parsed by the real command line)."""
    import typer

    from hw0cli.cli import app
    from hw0cli.cli.declared import given_options
    from hw0cli.train.config import TrainConfig, make_config
    cmd = typer.main.get_command(app).commands["train"]
    ctx = cmd.make_context("hw0 train", list(args))
    given = given_options(TrainConfig, ctx.params, ctx.get_parameter_source)
    return make_config(given.pop("recipe", "notebook"), **given)


def tiny_train_args(cifar_root: Path, out: Path, samples: int = 200) -> list[str]:
    """`hw0 train` options of a seconds-long CPU cell (fp32, eager; the width is the grid's or
    sweep's) for grid and sweep commands."""
    return ["--train-samples", str(samples), "--batch-size", "50", "--epochs",
            "1", "--precision", "fp32", "--no-compile", "--device", "cpu", "--data-dir",
            str(cifar_root), "--out", str(out)]


SLURM_DAEMONS = ("munged", "slurmctld", "slurmd", "sbatch", "squeue", "sinfo")


def slurm_available() -> bool:
    """The Debian packages slurmctld, slurmd, munge (and slurm-client) are installed, and we
    may start them (root: Slurm runs its daemons and the test's jobs as root here)."""
    import os
    import shutil
    return all(shutil.which(d) or shutil.which(d, path="/usr/sbin")
               for d in SLURM_DAEMONS) and os.geteuid() == 0


SLURM_CONF = """\
ClusterName=hw0test
SlurmctldHost=localhost(127.0.0.1)
SlurmctldPort={ctld_port}
SlurmdPort={d_port}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket={root}/munge.socket
StateSaveLocation={root}/state
SlurmdSpoolDir={root}/spool
SlurmctldPidFile={root}/slurmctld.pid
SlurmdPidFile={root}/slurmd.pid
SlurmctldLogFile={root}/slurmctld.log
SlurmdLogFile={root}/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
MpiDefault=none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
ReturnToService=2
SchedulerType=sched/backfill
SchedulerParameters=sched_interval=1
MinJobAge=5
NodeName=hw0node NodeHostname={host} NodeAddr=127.0.0.1 CPUs={cpus} State=UNKNOWN
PartitionName=debug Nodes=hw0node Default=YES MaxTime=INFINITE State=UP
"""


class LocalSlurm:
    """A single-node Slurm (munged, slurmctld, slurmd) in a folder of its own, on free ports;
    `env` points the Slurm commands at it (SLURM_CONF). Stopped (its own processes only) on
    exit."""

    def __init__(self, root: Path, cpus: int = 2) -> None:
        self.root, self.cpus = Path(root), cpus
        self.procs: list = []

    def __enter__(self) -> LocalSlurm:
        import os
        import shutil
        import socket
        import subprocess
        r = self.root
        (r / "state").mkdir(parents=True, exist_ok=True)
        (r / "spool").mkdir(exist_ok=True)
        shutil.copy("/etc/munge/munge.key", r / "munge.key")
        ports = []
        for _ in range(2):
            with socket.socket() as s:
                s.bind(("127.0.0.1", 0))
                ports.append(s.getsockname()[1])
        (r / "slurm.conf").write_text(SLURM_CONF.format(
            root=r, ctld_port=ports[0], d_port=ports[1], host=socket.gethostname(),
            cpus=self.cpus))
        self.env = {**os.environ, "SLURM_CONF": str(r / "slurm.conf")}
        munged = shutil.which("munged") or "/usr/sbin/munged"
        self._start([munged, "-F", "--force", f"--socket={r}/munge.socket",
                     f"--key-file={r}/munge.key", f"--pid-file={r}/munged.pid",
                     f"--log-file={r}/munged.log", f"--seed-file={r}/munged.seed"])
        self._wait(lambda: (r / "munge.socket").exists(), 120, "munged")
        ctld = shutil.which("slurmctld") or "/usr/sbin/slurmctld"
        slurmd = shutil.which("slurmd") or "/usr/sbin/slurmd"
        self._start([ctld, "-D", "-c", "-i"])
        self._start([slurmd, "-D", "-N", "hw0node"])
        self._wait(lambda: subprocess.run(["sinfo", "-h", "-o", "%T"], env=self.env,
                                          capture_output=True, text=True).stdout.strip()
                   == "idle", 300, "the node")  # hang guards: a loaded CPU is slow
        return self

    def _start(self, cmd: list[str]) -> None:
        import subprocess
        with open(self.root / (Path(cmd[0]).name + ".out"), "w") as log:  # the child's copy
            self.procs.append(subprocess.Popen(cmd, env=self.env, stdout=log,
                                               stderr=subprocess.STDOUT))

    def _wait(self, ready, seconds: float, what: str) -> None:
        import time
        end = time.monotonic() + seconds
        while not ready():
            if time.monotonic() > end:
                logs = "\n".join(p.read_text()[-800:] for p in self.root.glob("*.log"))
                raise RuntimeError(f"{what} not ready after {seconds} s:\n{logs}")
            time.sleep(0.5)

    def wait_job(self, job: str, seconds: float) -> None:
        """Until job `job` (all its array tasks) left the queue."""
        import subprocess
        self._wait(lambda: not subprocess.run(
            ["squeue", "-h", "-j", job], env=self.env, capture_output=True,
            text=True).stdout.strip(), seconds, f"job {job}")

    def __exit__(self, *exc: object) -> None:
        for p in reversed(self.procs):
            p.terminate()
        for p in reversed(self.procs):
            try:
                p.wait(timeout=10)
            except Exception:
                p.kill()


# ---------------------------------------------------------------------------------------------
# damaged files and full disks

DAMAGE_MODES = ("truncate", "zero-head", "flip-head", "zero-middle", "flip-middle",
                "zero-tail", "flip-tail")


def damage(path: Path, mode: str, n: int = 256) -> Path:
    """Damage a file in place as a failing disk or a careless copy would: `truncate` (half of
    it), or `zero-`/`flip-` `n` bytes at its `head`, `middle` or `tail`."""
    data = bytearray(Path(path).read_bytes())
    if mode == "truncate":
        Path(path).write_bytes(bytes(data[:len(data) // 2]))
        return Path(path)
    how, where = mode.split("-")
    start = {"head": 0, "middle": len(data) // 2, "tail": max(0, len(data) - n)}[where]
    for i in range(start, min(len(data), start + n)):
        data[i] = 0 if how == "zero" else data[i] ^ 0xFF
    Path(path).write_bytes(bytes(data))
    return Path(path)


def flip_dataset_signs(path: Path, name: str) -> None:
    """Flip the sign bit of every float of dataset `name` in the file's bytes, leaving the
    HDF5 structure intact (as a bit-rotting disk could)."""
    import h5py
    with h5py.File(path, "r") as f:
        ds = f[name]
        assert ds.dtype.kind == "f" and ds.dtype.byteorder in "<=" and ds.chunks is None
        offset, size, n = ds.id.get_offset(), ds.id.get_storage_size(), ds.dtype.itemsize
    data = bytearray(Path(path).read_bytes())
    for i in range(offset + n - 1, offset + size, n):  # little-endian: the sign is last
        data[i] ^= 0x80
    Path(path).write_bytes(bytes(data))


class FullDisk:
    """A disk that fills up under `folder`: writes to files there, through `os.write` or
    `open()`, fail with ENOSPC once `free` bytes have been written (the write that crosses the
    limit writes what fits, as a real full disk does), and `shutil.disk_usage` says so. Reads
    and other folders are untouched. Patches with `monkeypatch`; `free = None` gives the
    space back."""

    def __init__(self, monkeypatch, folder: Path, free: int | None = 0) -> None:
        import builtins
        import io
        import os
        import shutil
        self.folder, self.free = Path(folder).resolve(), free
        self.failures = 0
        real_write, real_open = os.write, builtins.open
        self.real_open = real_open  # for writers that bypass Python (C++ code) in a test

        def fd_path(fd: int) -> Path | None:
            try:
                return Path(os.readlink(f"/proc/self/fd/{fd}"))
            except OSError:
                return None

        def write(fd: int, data) -> int:
            p = fd_path(fd)
            if p is None or not self.covers(p):
                return real_write(fd, data)
            n = self.spend(len(data))
            return real_write(fd, bytes(data)[:n])

        def open_(file, mode="r", *args, **kwargs):
            f = real_open(file, mode, *args, **kwargs)
            if (isinstance(file, (str, os.PathLike)) and any(c in mode for c in "wax+")
                    and self.covers(Path(os.path.abspath(file)))):
                return _BudgetedFile(f, self)
            return f

        real_usage = shutil.disk_usage

        def disk_usage(path):
            u = real_usage(path)
            if not self.covers(Path(os.path.abspath(path))):
                return u
            return type(u)(u.total, u.total - max(0, self.free), max(0, self.free))

        monkeypatch.setattr(os, "write", write)
        monkeypatch.setattr(builtins, "open", open_)
        monkeypatch.setattr(io, "open", open_)
        monkeypatch.setattr(shutil, "disk_usage", disk_usage)

    def covers(self, p: Path) -> bool:
        return self.free is not None and (p == self.folder or self.folder in p.parents)

    def spend(self, n: int) -> int:
        """How many of `n` bytes fit; raises ENOSPC when none does."""
        import errno
        import os
        if self.free is None:
            return n
        if n and self.free <= 0:
            self.failures += 1
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        n = min(n, self.free)
        self.free -= n
        return n


class _BudgetedFile:
    """A file object whose writes spend the FullDisk's free bytes."""

    def __init__(self, f, disk: FullDisk) -> None:
        self._f, self._disk = f, disk

    def write(self, data) -> int:
        n = self._disk.spend(len(data))
        self._f.write(data[:n])
        if n < len(data):
            self._disk.spend(len(data) - n)  # nothing left: ENOSPC
        return n

    def writelines(self, lines) -> None:
        for line in lines:
            self.write(line)

    def __getattr__(self, name: str):
        return getattr(self._f, name)

    def __iter__(self):
        return iter(self._f)

    def __enter__(self):
        return self

    def __exit__(self, *exc: object) -> None:
        self._f.close()


def temp_files_left(folder: Path) -> list[Path]:
    """Temporary files a write may leave behind under `folder` (hidden `.name.tmp<pid>`
    files and directories, onnxruntime's `-inferred.onnx` models); [] when clean."""
    return [p for p in Path(folder).rglob("*")
            if ".tmp" in p.name or p.name.endswith("-inferred.onnx")]
