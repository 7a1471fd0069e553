"""The inference engines of `hw0 eval`: IO binding, torch paths, candidates that cannot run."""

import numpy as np
import pytest
import torch

from hw0cli import eval_engines as ee
from hw0cli import evaluate as ev
from hw0cli import sessions
from hw0cli.export import INPUT_NAME, export_onnx_file
from hw0cli.models import make_cnn


@pytest.fixture(scope="module")
def onnx_model(tmp_path_factory):
    torch.manual_seed(0)
    model = make_cnn(4).eval()
    path = tmp_path_factory.mktemp("engines") / "m.onnx"
    export_onnx_file(model, path)
    return model, path


def images(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, 3, 32, 32), dtype=np.uint8)


def test_io_binding_gives_the_logits_of_session_run(onnx_model):
    """The bound path (images on the provider's device once, logits written in place) equals
    plain session.run batch by batch, the partial last batch and read-only input included."""
    _, path = onnx_model
    sess, _ = sessions.open_session(path, "cpu")
    x = images(250)
    x.setflags(write=False)
    want = np.concatenate([sess.run(None, {INPUT_NAME: x[i:i + 64]})[0]
                           for i in range(0, 250, 64)])
    got = ee.bound_run(sess, x, 64)
    assert got.dtype == np.float32 and got.shape == (250, 10)
    np.testing.assert_array_equal(got, want)
    assert ee.bound_run(sess, x[:0], 64).shape == (0, 10)
    np.testing.assert_array_equal(ev.infer(x, session=sess, batch_size=100), want)


def test_torch_engines_match_the_model(onnx_model, tmp_path):
    model, path = onnx_model
    x = images(40, seed=1)
    with torch.no_grad():
        ref = model(torch.from_numpy(x).float() / 255).numpy()
    eng = ee.build(ee.Candidate("torch", "cpu", "fp32"), model, path, tmp_path)
    np.testing.assert_allclose(eng.run(x, 16), ref, atol=1e-5)
    assert eng.provider == "torch cpu fp32 eager"
    onnx = ee.build(ee.Candidate("onnxruntime", "cpu", "fp32"), model, path, tmp_path)
    np.testing.assert_allclose(onnx.run(x, 16), ref, atol=1e-4)
    assert onnx.provider == "cpu" and onnx.onnx_file == path


def test_fp16_candidate_converts_and_runs(onnx_model, tmp_path):
    model, path = onnx_model
    x = images(200, seed=2)
    eng = ee.build(ee.Candidate("onnxruntime", "cpu", "fp16"), model, path, tmp_path)
    assert eng.onnx_file == tmp_path / "m.fp16.onnx" and eng.onnx_file.exists()
    fp32 = ee.build(ee.Candidate("onnxruntime", "cpu", "fp32"), model, path, tmp_path)
    a, b = eng.run(x, 64), fp32.run(x, 64)
    assert not np.array_equal(a, b)  # really half precision
    np.testing.assert_allclose(a, b, atol=0.05)


def test_a_gpu_provider_that_cannot_run_says_why(onnx_model, tmp_path, monkeypatch):
    """Without a GPU (or with onnxruntime-gpu whose CUDA libraries do not load, faked GPU),
    the CUDA candidate is Unavailable with the reason, never a silent CPU session."""
    import onnxruntime as ort
    model, path = onnx_model
    cand = ee.Candidate("onnxruntime", "cuda", "fp32")
    with pytest.raises(ee.Unavailable, match="cuda"):
        ee.build(cand, model, path, tmp_path)
    if "CUDAExecutionProvider" in ort.get_available_providers() and not sessions.gpu_present():
        monkeypatch.setattr(sessions, "gpu_present", lambda: True)
        with pytest.raises(ee.Unavailable, match="did not load") as info:
            ee.build(cand, model, path, tmp_path)
        assert "fell back to CPUExecutionProvider" in str(info.value)
    if not torch.cuda.is_available():
        with pytest.raises(ee.Unavailable, match="no CUDA GPU"):
            ee.build(ee.Candidate("torch", "cuda", "bf16", compiled=True), model, path, tmp_path)


def test_load_error_reads_onnxruntimes_log_line():
    line = ("2026 [E:onnxruntime:Default, provider_bridge_ort.cc:2458 operator()] ... Failed to "
            "load library /x/capi/libonnxruntime_providers_cuda.so with error: libcublasLt.so.13:"
            " cannot open shared object file: No such file or directory")
    assert ee.load_error(["noise", line]) == (
        "libonnxruntime_providers_cuda.so did not load: libcublasLt.so.13: cannot open shared "
        "object file: No such file or directory")
    assert ee.load_error(["nothing here"]) == ""


def test_gpu_candidates_and_their_batch_sizes():
    cands = ee.gpu_candidates(["tensorrt", "cuda"], bf16=True)
    assert [c.label for c in cands] == [
        "onnxruntime TensorRT fp32", "onnxruntime TensorRT fp16", "onnxruntime CUDA fp32",
        "onnxruntime CUDA fp16", "torch bf16 compiled", "torch fp32 eager"]
    by = {c.label: c for c in cands}
    assert by["onnxruntime CUDA fp32"].batch_sizes(None) == ee.GPU_BATCH_SIZES  # tuned
    assert by["torch bf16 compiled"].batch_sizes(None) == (ee.ONE_GPU_BATCH,)  # one shape
    assert by["onnxruntime TensorRT fp16"].batch_sizes(None) == (ee.ONE_GPU_BATCH,)
    assert by["onnxruntime CUDA fp16"].batch_sizes(256) == (256,)  # --batch-size given
    assert ee.gpu_candidates([], bf16=False)[0].label == "torch fp32 compiled"
