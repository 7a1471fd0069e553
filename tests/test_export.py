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
from hw0cli.train import run_train
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
