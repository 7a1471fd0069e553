import gzip
import os
import pickle
from pathlib import Path

import numpy as np
import pytest

from hw0cli import data, datafiles
from hw0cli.errors import Hw0Error
from tests.helpers import idx_bytes, synthetic_cifar, write_cifar, write_mnist


def test_cifar_loader_reads_official_layout(cifar_root):
    d = data.load_cifar10(cifar_root)
    expected = synthetic_cifar(100, 200)
    assert d.train_x.shape == (500, 3, 32, 32) and d.train_x.dtype == np.uint8
    assert d.test_x.shape == (200, 3, 32, 32)
    # rows are 1024 R, 1024 G, 1024 B: pixel (c, h, w) of image i is data[i, c*1024 + h*32 + w]
    x1, y1 = expected["data_batch_1"]
    assert np.array_equal(d.train_x[:100].reshape(100, -1), x1)
    assert d.train_x[3, 2, 5, 7] == x1[3, 2 * 1024 + 5 * 32 + 7]
    assert d.train_y[:100].tolist() == y1
    assert d.classes[0] == "airplane" and len(d.classes) == 10


def test_loader_is_cached(cifar_root):
    assert data.load_cifar10(cifar_root) is data.load_cifar10(cifar_root)


class _Evil:
    def __reduce__(self):
        return (os.system, ("echo pwned > /dev/null",))


def test_restricted_unpickler_refuses_code(tmp_path):
    root = write_cifar(tmp_path)
    path = root / "cifar-10-batches-py" / "data_batch_2"
    path.write_bytes(pickle.dumps({b"data": _Evil(), b"labels": [0]}, protocol=2))
    with pytest.raises(Hw0Error, match="not allowed"):
        data.load_cifar10(root)


def test_truncated_cifar_batch_is_a_clear_error(tmp_path):
    root = write_cifar(tmp_path)
    path = root / "cifar-10-batches-py" / "data_batch_3"
    path.write_bytes(path.read_bytes()[:5000])
    with pytest.raises(Hw0Error, match=r"data_batch_3.*(truncated|corrupt)"):
        data.load_cifar10(root)


def test_missing_cifar_names_folder_and_command(tmp_path):
    with pytest.raises(Hw0Error) as e:
        data.load_cifar10(tmp_path)
    assert "cifar-10-batches-py" in str(e.value) and "hw0 data download" in str(e.value)


@pytest.mark.parametrize("gz", [True, False])
def test_mnist_idx_gz_or_raw(tmp_path, gz):
    root = write_mnist(tmp_path, n_train=50, n_test=20, gz=gz)
    m = data.load_mnist(root)
    assert m.train_x.shape == (50, 28, 28) and m.test_y.shape == (20,)
    # the synthetic digit k has a bright bar at rows 2k+4, 2k+5
    k = int(m.train_y[0])
    assert (m.train_x[0, 2 * k + 4, 4:24] == 255).all()


def test_truncated_idx_is_detected(tmp_path):
    p = tmp_path / "x-idx3-ubyte"
    p.write_bytes(idx_bytes(np.zeros((10, 28, 28), np.uint8))[:-7])
    with pytest.raises(Hw0Error, match="truncated"):
        data.read_idx(p)


def test_corrupt_gzip_is_detected(tmp_path):
    p = tmp_path / "x-idx3-ubyte.gz"
    p.write_bytes(gzip.compress(idx_bytes(np.zeros((3, 4), np.uint8)))[:-5])
    with pytest.raises(Hw0Error, match="unreadable"):
        data.read_idx(p)


def test_info_flags_checksum_mismatch_and_missing(tmp_path):
    root = write_cifar(tmp_path)
    rows = {r.path.split("/")[-1]: r for r in datafiles.info(root)}
    assert rows["data_batch_1"].present and rows["data_batch_1"].md5_ok is False
    assert not rows["train-images-idx3-ubyte"].present
    assert rows["train-images-idx3-ubyte"].md5_ok is None


def test_download_uses_torchvision_layouts(tmp_path, monkeypatch):
    import torchvision.datasets.utils as tvu

    from tests.helpers import idx_bytes
    calls = []

    def fake(url, download_root, filename=None, md5=None):
        calls.append((url, download_root, filename, md5))
        root = tmp_path / "d"
        if "cifar" in url:
            write_cifar(root)
        else:  # an MNIST file: write it uncompressed where torchvision extracts it
            name = filename.removesuffix(".gz")
            shape = (5, 28, 28) if "images" in name else (5,)
            (root / "MNIST" / "raw").mkdir(parents=True, exist_ok=True)
            (root / "MNIST" / "raw" / name).write_bytes(idx_bytes(np.zeros(shape, np.uint8)))

    monkeypatch.setattr(tvu, "download_and_extract_archive", fake)
    done = datafiles.download(tmp_path / "d")
    assert len(done) == 2 and calls[0][3]  # md5 passed on: torchvision checks it
    assert data.load_cifar10(tmp_path / "d").train_x.shape[0] == 500
    assert data.load_mnist(tmp_path / "d").train_x.shape == (5, 28, 28)
    again = datafiles.download(tmp_path / "d")  # present: nothing fetched twice
    assert "already present" in again[0] and len(calls) == 5


def test_download_failure_is_clear(tmp_path, monkeypatch):
    import torchvision.datasets.utils as tvu

    def offline(*a, **k):
        raise OSError("Network is unreachable")

    monkeypatch.setattr(tvu, "download_and_extract_archive", offline)
    with pytest.raises(Hw0Error, match=r"Download failed.*copy the files by hand"):
        datafiles.download(tmp_path, ("cifar10",))


def test_offline_download_names_the_cause_and_leaves_no_empty_folder(tmp_path, monkeypatch):
    import urllib.error

    import torchvision.datasets.utils as tvu

    def offline(url, download_root, filename=None, md5=None):
        Path(download_root).mkdir(parents=True, exist_ok=True)  # as torchvision does first
        (Path(download_root) / filename).write_bytes(b"partial")
        raise urllib.error.URLError(OSError(101, "Network is unreachable"))

    monkeypatch.setattr(tvu, "download_and_extract_archive", offline)
    for which in (("mnist",), ("cifar10",)):
        with pytest.raises(Hw0Error, match="Network is unreachable") as e:
            datafiles.download(tmp_path / "d", which)
        assert "no mirror served" in str(e.value) or "cifar" in str(e.value)
        assert not (tmp_path / "d").exists()  # nothing created is left behind


def test_download_skips_mnist_present_as_gz(tmp_path, monkeypatch):
    import torchvision.datasets.utils as tvu

    calls = []
    monkeypatch.setattr(tvu, "download_and_extract_archive", lambda *a, **k: calls.append(a))
    root = write_mnist(tmp_path, gz=True)
    assert datafiles.download(root, ("mnist",)) == [f"MNIST present in {root / 'MNIST' / 'raw'}"]
    assert calls == []


def test_data_dir_pointing_into_the_data_set_names_its_parent(tmp_path):
    """--data-dir data/cifar-10-batches-py (the data set's own folder) is answered with the
    folder to use instead, not with a download into it."""
    root = write_cifar(tmp_path / "data")
    for inside in (root / "cifar-10-batches-py", root / "MNIST" / "raw"):
        with pytest.raises(Hw0Error) as exc:
            data.load_cifar10(inside)
        msg = str(exc.value)
        assert f"--data-dir {root}" in msg and "hw0 data download" not in msg, msg
    with pytest.raises(Hw0Error, match="hw0 data download"):
        data.load_cifar10(tmp_path / "elsewhere")
