import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from hw0cli import runs, store
from hw0cli.errors import Hw0Error
from hw0cli.export import (
    FP32_TOLERANCE,
    ExportConfig,
    PixelModel,
    onnx_path,
    read_metadata,
    run_export,
)
from hw0cli.train.run import run_train
from tests.helpers import tiny_config


@pytest.fixture(scope="module")
def trained(cifar_root, tmp_path_factory):
    out = tmp_path_factory.mktemp("exp")
    res = run_train(tiny_config(cifar_root, out, epochs=2))
    return res, out


def test_export_round_trip_matches_torch(trained, cifar_root):
    res, out = trained
    r = run_export(ExportConfig(run=res.run_id, out=out, data_dir=cifar_root))
    assert r.onnx_path == onnx_path(res.path) and r.onnx_path.exists()
    assert r.max_abs_diff < FP32_TOLERANCE
    m = onnx.load(str(r.onnx_path))
    onnx.checker.check_model(m)
    assert m.opset_import[0].version >= 17
    (inp,) = m.graph.input
    assert inp.name == "images" and inp.type.tensor_type.elem_type == onnx.TensorProto.UINT8
    assert inp.type.tensor_type.shape.dim[0].dim_param  # dynamic batch axis
    # another batch size than the export example, on the real test images
    from hw0cli.data import load_cifar10
    x = np.array(load_cifar10(cifar_root).test_x[:37])  # a writable copy of the cache
    got = ort.InferenceSession(str(r.onnx_path)).run(None, {"images": x})[0]
    model, _ = runs.load_model(res.path)
    with torch.no_grad():
        ref = PixelModel(model)(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(got, ref, atol=1e-4, rtol=0)
    rec = store.read_h5(res.path, prefixes=("export/",))
    assert float(rec.arrays["export/max_abs_diff"]) == pytest.approx(r.max_abs_diff)
    assert read_metadata(r.onnx_path)["hw0_run_id"] == res.run_id
    again = run_export(ExportConfig(run=res.run_id, out=out, data_dir=cifar_root))
    assert again.reused


def test_corrupt_onnx_is_detected_and_replaced(trained, cifar_root):
    res, out = trained
    p = onnx_path(res.path)
    run_export(ExportConfig(run=res.run_id, out=out, data_dir=cifar_root))
    p.write_bytes(b"not an onnx model")
    with pytest.raises(Hw0Error, match="not a valid ONNX"):
        read_metadata(p)
    r = run_export(ExportConfig(run=res.run_id, out=out, data_dir=cifar_root))
    assert not r.reused and any("replaced" in n for n in r.notes)
    assert r.max_abs_diff < FP32_TOLERANCE


def test_variants_record_accuracy_change(trained, cifar_root):
    res, out = trained
    r = run_export(ExportConfig(run=res.run_id, out=out, data_dir=cifar_root, fp16=True,
                                int8=True))
    for v in ("fp16", "int8"):
        info = r.variants[v]
        assert info["path"] != str(r.onnx_path)  # never replaces the fp32 model
        assert abs(info["accuracy_change"]) < 0.1
    rec = store.read_h5(res.path, prefixes=("export/",))
    assert "export/int8/accuracy" in rec.arrays and r.onnx_path.exists()


def test_no_finished_run_and_no_weights(tmp_path):
    with pytest.raises(Hw0Error, match="No finished run"):
        run_export(ExportConfig(out=tmp_path))
    p = runs.run_path(tmp_path, "empty")
    store.write_h5(p, {"run_id": "empty", "status": "finished", "config": {"width": 4}}, {})
    with pytest.raises(Hw0Error, match="no weights"):
        run_export(ExportConfig(run="empty", out=tmp_path))


def test_failed_variant_build_leaves_nothing_behind(trained, cifar_root, monkeypatch):
    """A quantizer failure is a clear error; the fp32 model stays, no partial file is left."""
    import hw0cli.export as ex
    res, out = trained
    fp32 = run_export(ExportConfig(run=res.run_id, out=out, data_dir=cifar_root)).onnx_path
    before = fp32.read_bytes()
    onnx_path(res.path, "int8").unlink(missing_ok=True)

    def broken(src, dst, calib):
        dst.write_bytes(b"half a model")
        raise RuntimeError("quantizer exploded")

    monkeypatch.setattr(ex, "int8_variant", broken)
    with pytest.raises(Hw0Error, match=r"int8 variant could not be built.*quantizer exploded"):
        run_export(ExportConfig(run=res.run_id, out=out, data_dir=cifar_root, int8=True))
    assert fp32.read_bytes() == before
    assert sorted(p.name for p in fp32.parent.iterdir() if "int8" in p.name) == []


def test_onnx_file_describes_itself(trained, cifar_root):
    """Class names, a doc string, the run id and model_version, as onnxruntime reports them."""
    import json

    from hw0cli.data import CIFAR_CLASSES
    res, out = trained
    r = run_export(ExportConfig(run=res.run_id, out=out, data_dir=cifar_root))
    meta = ort.InferenceSession(str(r.onnx_path)).get_modelmeta()
    assert json.loads(meta.custom_metadata_map["hw0_classes"]) == list(CIFAR_CLASSES)
    assert meta.custom_metadata_map["hw0_run_id"] == res.run_id
    assert res.run_id in meta.description and "airplane" in meta.description
    assert meta.version == res.epochs_done == 2


# ---------------------------------------------------------------------------------------------
# a tampered ONNX file: checked against the weights themselves, not only its metadata


def _zero_largest_initializer(m: onnx.ModelProto) -> None:
    from onnx import numpy_helper
    init = max(m.graph.initializer, key=lambda t: numpy_helper.to_array(t).size)
    init.CopyFrom(numpy_helper.from_array(np.zeros_like(numpy_helper.to_array(init)),
                                          init.name))


def _negate_output(m: onnx.ModelProto) -> None:
    """Append a node: the logits negated, under the output's name."""
    out = m.graph.output[0].name
    for node in m.graph.node:
        node.output[:] = [f"{out}_pre" if o == out else o for o in node.output]
    m.graph.node.append(onnx.helper.make_node("Neg", [f"{out}_pre"], [out]))


@pytest.fixture(scope="module")
def wider(cifar_root, tmp_path_factory):
    """Another width's run, exported: the donor of a foreign graph."""
    out = tmp_path_factory.mktemp("wide")
    res = run_train(tiny_config(cifar_root, out, width=8, epochs=1))
    return run_export(ExportConfig(run=res.run_id, out=out, data_dir=cifar_root)).onnx_path


def _tamper(path, how, donor):
    m = onnx.load(str(path))
    if how == "zeroed initializer":
        _zero_largest_initializer(m)
    elif how == "appended node":
        _negate_output(m)
    else:  # another width's graph, with this file's metadata copied in
        other = onnx.load(str(donor))
        del other.metadata_props[:]
        other.metadata_props.extend(m.metadata_props)
        other.doc_string, other.model_version = m.doc_string, m.model_version
        m = other
    onnx.checker.check_model(m)  # still a valid model: only a check of the content sees it
    onnx.save(m, str(path))


@pytest.mark.parametrize("how", ["zeroed initializer", "appended node", "another width"])
def test_tampered_onnx_is_detected_and_re_exported(trained, cifar_root, wider, how):
    from hw0cli.evaluate import EvalConfig, run_eval
    res, out = trained
    cfg = EvalConfig(run=res.run_id, views=("original", "vflip"), backend="onnxruntime",
                     provider="cpu", out=out, data_dir=cifar_root, plot=False)
    real = run_eval(cfg)
    p = onnx_path(res.path)
    _tamper(p, how, wider)
    assert read_metadata(p)["hw0_run_id"] == res.run_id  # the metadata is intact
    got = run_eval(cfg)
    assert any(n.startswith(f"replaced {p.name}") for n in got.notes), got.notes
    for v in cfg.views:
        assert got.views[v].accuracy == real.views[v].accuracy
        np.testing.assert_array_equal(got.views[v].confusion, real.views[v].confusion)
    _tamper(p, how, wider)
    r = run_export(ExportConfig(run=res.run_id, out=out, data_dir=cifar_root))
    assert not r.reused and any("replaced" in n for n in r.notes)
    assert run_export(ExportConfig(run=res.run_id, out=out, data_dir=cifar_root)).reused


def test_tampered_int8_variant_is_rebuilt(trained, cifar_root):
    from hw0cli.evaluate import EvalConfig, run_eval
    res, out = trained
    cfg = EvalConfig(run=res.run_id, backend="onnxruntime", provider="cpu", model="int8",
                     out=out, data_dir=cifar_root, plot=False)
    real = run_eval(cfg)
    p = onnx_path(res.path, "int8")
    _tamper(p, "zeroed initializer", None)
    got = run_eval(cfg)
    assert any(p.name in n for n in got.notes), got.notes
    assert got.views["original"].accuracy == real.views["original"].accuracy


# ---------------------------------------------------------------------------------------------
# export --int8 on a full disk


def _export_int8_cli(res, out, cifar_root):
    from typer.testing import CliRunner

    from hw0cli.cli import app
    return CliRunner().invoke(app, ["export", res.run_id, "--int8", "--out", str(out),
                                    "--data-dir", str(cifar_root)])


@pytest.mark.parametrize("how", ["raised", "silent"])
def test_export_int8_on_a_full_disk(trained, cifar_root, monkeypatch, how):
    """The disk holding the runs is full while the int8 model is built: one message naming
    the disk (not the quantizer's "Failed to find proper ai.onnx domain"), exit 1, nothing
    half-written left, the fp32 model and the run file untouched. `silent`: onnx's C++ shape
    inference writes its `-inferred.onnx` without reporting the failed write."""
    import onnx.shape_inference

    from tests.helpers import FullDisk, temp_files_left
    res, out = trained
    fp32 = run_export(ExportConfig(run=res.run_id, out=out, data_dir=cifar_root)).onnx_path
    onnx_path(res.path, "int8").unlink(missing_ok=True)
    before = {p: p.read_bytes() for p in (fp32, res.path)}
    disk = FullDisk(monkeypatch, res.path.parent, free=0)
    if how == "silent":
        def truncating(src, dst, *args, **kwargs):
            with open(src, "rb") as f:
                data = f.read()
            with disk.real_open(dst, "wb") as f:  # C++ writes past the Python layer
                f.write(data[:len(data) // 3])
        monkeypatch.setattr(onnx.shape_inference, "infer_shapes_path", truncating)
    r = _export_int8_cli(res, out, cifar_root)
    assert r.exit_code == 1 and isinstance(r.exception, SystemExit), r.output
    assert r.output.count("Error:") == 1 and "No space left on device" in r.output
    assert f"the disk holding {res.path.parent}" in r.output and "0 B free" in r.output
    assert "ai.onnx" not in r.output and "DecodeError" not in r.output
    assert {p: p.read_bytes() for p in before} == before
    assert temp_files_left(out) == [] and not onnx_path(res.path, "int8").exists()
    monkeypatch.undo()  # space back: the same command builds it
    r = _export_int8_cli(res, out, cifar_root)
    assert r.exit_code == 0 and onnx_path(res.path, "int8").exists(), r.output
