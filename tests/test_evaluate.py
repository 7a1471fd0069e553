import json
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from typer.testing import CliRunner

from hw0cli import evaluate as ev
from hw0cli import sessions, store
from hw0cli.cli import app
from hw0cli.errors import Hw0UsageError
from hw0cli.train.config import TrainConfig
from hw0cli.train.parts import worst_view_loss
from hw0cli.train.run import run_train
from tests.helpers import tiny_config

runner = CliRunner()


@pytest.fixture(scope="module")
def trained(cifar_root, tmp_path_factory):
    out = tmp_path_factory.mktemp("ev")
    res = run_train(tiny_config(cifar_root, out, epochs=3))
    return res, out


def test_metrics_by_hand():
    labels = np.array([0, 0, 1, 1, 1, 2])
    pred = np.array([0, 1, 1, 1, 0, 2])
    logits = np.eye(3)[pred]
    m = ev.evaluate(logits, labels, num_classes=3)
    assert m.accuracy == pytest.approx(4 / 6)
    np.testing.assert_allclose(m.per_class_accuracy, [1 / 2, 2 / 3, 1.0])
    np.testing.assert_array_equal(m.confusion, [[1, 1, 0], [1, 2, 0], [0, 0, 1]])
    assert np.isnan(ev.evaluate(np.eye(3)[[0]], np.array([0]), 3).per_class_accuracy[1])


def test_views_flip_the_right_axis():
    x = np.random.default_rng(0).integers(0, 256, (2, 3, 32, 32), dtype=np.uint8)
    v = ev.make_view(x, "vflip")
    h = ev.make_view(x, "hflip")
    for i in range(32):
        np.testing.assert_array_equal(v[:, :, i, :], x[:, :, 31 - i, :])  # upside down
        np.testing.assert_array_equal(h[:, :, :, i], x[:, :, :, 31 - i])  # mirrored
    assert ev.make_view(x, "original") is x


def test_worst_view_loss_takes_the_larger():
    torch.manual_seed(0)
    y = torch.tensor([0, 1, 2, 3])
    good = F.one_hot(y, 10).float() * 5  # confident and right
    bad = torch.randn(4, 10, requires_grad=True)  # the flipped view: worse
    good.requires_grad_(True)
    loss = worst_view_loss(good, bad, y)
    assert loss.item() == pytest.approx(max(F.cross_entropy(good, y).item(),
                                            F.cross_entropy(bad, y).item()))
    assert loss.item() == pytest.approx(F.cross_entropy(bad, y).item())
    loss.backward()
    assert bad.grad.abs().sum() > 0 and good.grad.abs().sum() == 0  # only the worse view moves


def test_worst_view_training_runs(cifar_root, tmp_path):
    res = run_train(TrainConfig(width=4, epochs=1, batch_size=50, train_samples=200,
                                data_dir=cifar_root, out=tmp_path, device="cpu",
                                precision="fp32", compile=False, objective="worst-view"))
    assert set(res.test_acc_views) == {"original", "vflip"}


def test_provider_choice_without_gpu(trained, monkeypatch):
    res, _out = trained
    from hw0cli.export import ensure_onnx
    path, _, _ = ensure_onnx(res.path)
    monkeypatch.setattr(sessions, "gpu_present", lambda: False)
    asked = []
    import onnxruntime as ort
    real = ort.InferenceSession

    def spy(p, so=None, providers=None):
        asked.append(list(providers))
        return real(p, so, providers=providers)

    monkeypatch.setattr(ort, "InferenceSession", spy)
    _sess, used = sessions.open_session(path, "auto")
    assert used == "cpu" and asked == [["CPUExecutionProvider"]]  # no GPU provider requested
    for p in ("cuda", "tensorrt"):
        with pytest.raises(Hw0UsageError, match=r"not usable here.*usable: cpu"):
            sessions.open_session(path, p)
    with pytest.raises(Hw0UsageError, match="Unknown provider"):
        sessions.open_session(path, "rocm")


def test_eval_flip_cli_and_backends_agree(trained, cifar_root):
    res, out = trained
    r = runner.invoke(app, ["eval", "--flip", "--out", str(out), "--data-dir", str(cifar_root)])
    assert r.exit_code == 0, r.output
    assert "most recently finished run" in r.output and res.run_id in r.output
    assert "Per-class accuracy" in r.output and "vflip" in r.output
    rec = store.read_h5(res.path, prefixes=("eval/",))
    onnx_logits = rec.arrays["eval/original/logits"]
    assert rec.arrays["eval/vflip/confusion"].sum() == 200
    assert str(rec.arrays["eval/original/provider"]) == "cpu"
    assert (out / "plots" / f"{res.run_id}_per_class.png").stat().st_size > 1000
    r = runner.invoke(app, ["eval", res.run_id, "--flip", "--backend", "torch", "--json",
                            "--out", str(out), "--data-dir", str(cifar_root)])
    assert r.exit_code == 0, r.output
    d = json.loads(r.stdout)
    torch_logits = store.read_h5(res.path, prefixes=("eval/",)).arrays["eval/original/logits"]
    assert (onnx_logits.argmax(1) == torch_logits.argmax(1)).mean() >= 0.999
    np.testing.assert_allclose(onnx_logits, torch_logits, atol=1e-4)
    assert d["views"]["original"]["accuracy"] == pytest.approx(1 - res.test_err)
    assert d["views"]["vflip"]["accuracy"] == pytest.approx(res.test_acc_views["vflip"])


@pytest.mark.parametrize(("args", "msg"), [
    (["--view", "sideways"], "Unknown view"),
    (["--provider", "rocm"], "Unknown provider"),
    (["--backend", "tensorflow"], "Unknown backend"),
    (["--batch-size", "0"], "--batch-size"),
    (["--model", "int4"], "Unknown model"),
    (["--model", "int8", "--backend", "torch"], "--backend onnxruntime"),
])
def test_eval_bad_input(trained, cifar_root, args, msg):
    res, out = trained
    r = runner.invoke(app, ["eval", res.run_id, *args, "--out", str(out)])
    assert r.exit_code == 2 and msg in r.output and "Traceback" not in r.output


def test_eval_missing_run_lists_closest(trained):
    res, out = trained
    r = runner.invoke(app, ["eval", res.run_id[:-2] + "zz", "--out", str(out)])
    assert r.exit_code == 2 and "Closest existing runs" in r.output and res.run_id in r.output


def test_newer_schema_is_refused(tmp_path):
    p = tmp_path / "runs" / "future.h5"
    store.write_h5(p, {"run_id": "future"}, {})
    store.update_h5(p, attrs={"schema_version": store.SCHEMA_VERSION + 1})
    r = runner.invoke(app, ["eval", "future", "--out", str(tmp_path)])
    assert r.exit_code == 1 and "newer" in r.output


def test_eval_export_records_its_validation(trained):
    from hw0cli.export import ensure_onnx
    res, _ = trained
    store.update_h5(res.path, delete=("export",))
    _, diff, reused = ensure_onnx(res.path, force=True)  # what `hw0 eval` calls
    rec = store.read_h5(res.path, prefixes=("export/",))
    assert not reused and diff < 1e-4
    assert float(rec.arrays["export/max_abs_diff"]) == pytest.approx(diff)


def test_eval_int8_model_is_stored_apart_and_reused(trained, cifar_root):
    """--model int8: the quantized ONNX file is built once, its results go to eval_int8/, and
    the fp32 results under eval/ are left exactly as they were."""
    from hw0cli.export import onnx_path, read_metadata
    res, out = trained
    cfg = dict(run=res.run_id, views=("original", "vflip"), out=out, data_dir=cifar_root)
    fp32 = ev.run_eval(ev.EvalConfig(**cfg))
    before = store.read_h5(res.path, prefixes=("eval/",)).arrays
    r = runner.invoke(app, ["eval", res.run_id, "--flip", "--model", "int8", "--out", str(out),
                            "--data-dir", str(cifar_root)])
    assert r.exit_code == 0, r.output
    assert "model int8" in r.output and "vs fp32" in r.output and "eval_int8/<view>/" in r.output
    p8 = onnx_path(res.path, "int8")
    meta = read_metadata(p8)
    assert meta["hw0_variant"] == "int8"
    assert meta["hw0_weights_sha256"] == read_metadata(onnx_path(res.path))["hw0_weights_sha256"]
    rec = store.read_h5(res.path, prefixes=("eval/", "eval_int8/", "export/int8/"))
    for k, v in before.items():  # fp32 results untouched
        np.testing.assert_array_equal(np.asarray(rec.arrays[k]), np.asarray(v))
    acc8 = float(rec.arrays["eval_int8/original/accuracy"])
    # the accuracy eval measured is the one the variant was recorded with at build time
    assert acc8 == pytest.approx(float(rec.arrays["export/int8/accuracy"]))
    assert float(rec.arrays["export/int8/fp32_accuracy"]) == pytest.approx(
        fp32.views["original"].accuracy)
    assert str(rec.arrays["eval_int8/vflip/model"]) == "int8"
    # int8 logits are an approximation of the fp32 ones, not a copy of them
    l32, l8 = rec.arrays["eval/original/logits"], rec.arrays["eval_int8/original/logits"]
    assert not np.array_equal(l32, l8)
    assert (l32.argmax(1) == l8.argmax(1)).mean() >= 0.8
    # a second eval reuses the quantized file; a stale one (other weights) is rebuilt
    mtime = p8.stat().st_mtime_ns
    again = ev.run_eval(ev.EvalConfig(**cfg, model="int8"))
    assert p8.stat().st_mtime_ns == mtime and not any("built" in n for n in again.notes)
    import onnx
    m = onnx.load(str(p8))
    for prop in m.metadata_props:
        if prop.key == "hw0_weights_sha256":
            prop.value = "0" * 64
    onnx.save(m, str(p8))
    third = ev.run_eval(ev.EvalConfig(**cfg, model="int8"))
    assert any("built" in n for n in third.notes)
    assert third.views["original"].accuracy == pytest.approx(acc8)


def test_backend_auto_never_picks_the_onnxruntime_cpu_provider_beside_a_gpu(monkeypatch):
    import onnxruntime as ort
    monkeypatch.setattr(sessions, "gpu_present", lambda: False)
    assert ev.resolve_backend("auto", "fp32", "auto")[0] == "onnxruntime"  # CPU machine
    monkeypatch.setattr(sessions, "gpu_present", lambda: True)
    monkeypatch.setattr(ort, "get_available_providers", lambda: ["CPUExecutionProvider"])
    backend, why = ev.resolve_backend("auto", "fp32", "auto")
    assert backend == "torch" and "no GPU provider" in why
    monkeypatch.setattr(ort, "get_available_providers",
                        lambda: ["CUDAExecutionProvider", "CPUExecutionProvider"])
    assert ev.resolve_backend("auto", "fp32", "auto") == (
        "onnxruntime", f"onnxruntime {ort.__version__} has the cuda provider here")
    assert ev.resolve_backend("onnxruntime", "fp32", "auto") == ("onnxruntime", "asked for")
    assert ev.resolve_backend("auto", "int8", "auto")[0] == "onnxruntime"  # an ONNX file


def test_tensorrt_preload_loads_the_pip_libraries(tmp_path, monkeypatch):
    """The libraries of the tensorrt extra are loaded by full path (none without the extra)."""
    import ctypes

    loaded = []
    monkeypatch.setattr(ctypes, "CDLL", lambda path, mode=0: loaded.append((path, mode)))
    monkeypatch.syspath_prepend(str(tmp_path))
    assert sessions.preload_tensorrt() == []  # extra not installed
    pkg = tmp_path / "tensorrt_libs"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    for name in ("libnvinfer.so.10", "libnvonnxparser.so.10", "libnvinfer_plugin.so.10"):
        (pkg / name).write_bytes(b"")
    import importlib
    importlib.invalidate_caches()
    assert sessions.preload_tensorrt() == ["libnvinfer.so.10", "libnvinfer_plugin.so.10",
                                           "libnvonnxparser.so.10"]
    assert all(mode == ctypes.RTLD_GLOBAL and path.startswith(str(pkg)) for path, mode in loaded)


class _StopInEpoch:
    """A training display that presses Ctrl-C in the middle of epoch `epoch`."""

    def __init__(self, epoch: int) -> None:
        self.epoch = epoch

    def on_start(self, info: dict) -> None:
        pass

    def on_step(self, epoch: int, step: int, *args: object) -> None:
        if epoch == self.epoch and step >= 2:
            raise KeyboardInterrupt

    def on_epoch(self, row: dict) -> None:
        pass


def test_eval_refuses_a_run_that_never_finished_an_epoch(cifar_root, tmp_path):
    """Its weights are the random start: refused, naming the run's state and the fix."""
    from hw0cli.errors import Hw0Error
    cfg = tiny_config(cifar_root, tmp_path, epochs=2)
    with pytest.raises(Hw0Error, match="before its first epoch finished"):
        run_train(cfg, reporter=_StopInEpoch(1))
    path = next((tmp_path / "runs").glob("*.h5"))
    assert store.read_h5(path, attrs_only=True).attrs["status"] == "interrupted"
    with pytest.raises(Hw0UsageError) as exc:
        ev.run_eval(ev.EvalConfig(run=str(path), out=tmp_path, data_dir=cifar_root))
    msg = str(exc.value)
    assert "interrupted" in msg and "has not finished an epoch" in msg and "hw0 train" in msg
    assert not store.has_dataset(path, "eval/original/accuracy")  # nothing stored
    r = runner.invoke(app, ["eval", str(path), "--out", str(tmp_path)])
    assert r.exit_code == 2 and "has not finished an epoch" in r.output


@pytest.mark.slow
def test_eval_of_an_interrupted_run_with_epochs_done_warns(cifar_root, tmp_path):
    from hw0cli.errors import Hw0Error
    from tests.helpers import InterruptAt
    with pytest.raises(Hw0Error, match=r"keeps its last completed epoch \(1\)"):
        run_train(tiny_config(cifar_root, tmp_path, epochs=3), reporter=InterruptAt(1))
    path = next((tmp_path / "runs").glob("*.h5"))
    res = ev.run_eval(ev.EvalConfig(run=str(path), out=tmp_path, data_dir=cifar_root))
    assert any("interrupted after epoch 1 of 3" in n for n in res.notes)
    r = runner.invoke(app, ["eval", str(path), "--out", str(tmp_path), "--data-dir",
                            str(cifar_root)])
    assert r.exit_code == 0 and "Warning:" in r.output and "after epoch 1 of 3" in r.output


def test_eval_of_a_missing_file_says_file_not_found(tmp_path):
    r = runner.invoke(app, ["eval", str(tmp_path / "missing.h5"), "--out", str(tmp_path)])
    assert r.exit_code == 2 and "File not found" in r.output and "missing.h5" in r.output
    assert "No run" not in r.output


def test_eval_reads_and_writes_the_run_file_once(trained, cifar_root, monkeypatch):
    """`hw0 eval` reads the run file once and writes it once, the export it makes first
    included (its record goes out with the results), and the file holds both afterwards."""
    res, out = trained
    from hw0cli.export import onnx_path
    onnx_path(res.path).unlink(missing_ok=True)  # this eval exports first
    calls: dict[str, int] = {"read": 0, "write": 0}

    def counting(kind, fn):
        def wrapped(path, *a, **kw):
            if Path(path).resolve() == res.path.resolve():
                calls[kind] += 1
            return fn(path, *a, **kw)
        return wrapped

    monkeypatch.setattr(store, "read_h5", counting("read", store.read_h5))
    monkeypatch.setattr(store, "update_h5", counting("write", store.update_h5))
    monkeypatch.setattr(store, "write_h5", counting("write", store.write_h5))
    r = runner.invoke(app, ["eval", res.run_id, "--flip", "--backend", "onnxruntime",
                            "--out", str(out), "--data-dir", str(cifar_root)])
    assert r.exit_code == 0, r.output
    assert calls == {"read": 1, "write": 1}
    monkeypatch.undo()
    rec = store.read_h5(res.path, prefixes=("export/", "eval/"))
    assert rec.group("export")["onnx_file"] == onnx_path(res.path).name
    assert set(rec.group("eval")) >= {"original/accuracy", "vflip/accuracy"}
