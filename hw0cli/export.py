"""ONNX export of a trained run, validated against torch.

The exported graph takes raw pixels: input `images`, uint8 (N, 3, 32, 32) RGB, and divides by
255 itself, so callers do no preprocessing and move 4x fewer bytes than float input; output
`logits`, float32 (N, 10). The batch axis is dynamic. The file's metadata names the run and a
SHA-256 fingerprint of its weights, so an ONNX file that does not belong to a run is caught.
It also holds a SHA-256 of the file's own content (graph and initializers, metadata aside),
recorded in the run file too: a file changed after export (an initializer zeroed, a node
appended, another model under this run's metadata) is caught on use and exported again.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from hw0cli import runs, store
from hw0cli.atomic import atomic_path
from hw0cli.data import CIFAR_CLASSES, load_cifar10
from hw0cli.errors import Hw0Error, disk_error, disk_full, free_bytes
from hw0cli.paths import default_data_dir, default_out_dir

OPSET = 18  # >= 17 as required; 18 is what torch's dynamo exporter emits natively
CHECK_IMAGES = 512  # test images on which onnxruntime and torch must agree
FP32_TOLERANCE = 1e-4  # max |logit difference| allowed between onnxruntime and torch (fp32)
INPUT_NAME, OUTPUT_NAME = "images", "logits"
IO_METADATA = {"hw0_input": "uint8 (N,3,32,32) RGB pixels 0-255",
               "hw0_output": "float32 logits (N,10)"}  # what callers feed and get back


class PixelModel(nn.Module):
    """uint8 pixels (N, 3, 32, 32) -> logits: the /255 scaling the trainer applies, in-graph."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.model(images.float() * (1.0 / 255.0))


def onnx_path(run_path: Path, variant: str = "") -> Path:
    """`<runs>/<run_id>.onnx`, or `<run_id>.<variant>.onnx` for fp16/int8 variants."""
    suffix = f".{variant}.onnx" if variant else ".onnx"
    return run_path.with_name(run_path.stem + suffix)


GRAPH_KEY = "hw0_graph_sha256"  # metadata key: the fingerprint of the file's content


def graph_fingerprint(m: Any) -> str:
    """SHA-256 of what an ONNX model computes: the model without its metadata, doc string
    and version (the graph, its initializers, opsets and functions)."""
    import onnx
    c = onnx.ModelProto()
    c.CopyFrom(m)
    del c.metadata_props[:]
    c.doc_string, c.model_version = "", 0
    return hashlib.sha256(c.SerializeToString(deterministic=True)).hexdigest()


def weights_fingerprint(model: nn.Module) -> str:
    h = hashlib.sha256()
    for k, v in sorted(model.state_dict().items()):
        h.update(k.encode())
        h.update(v.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


@dataclass(frozen=True)
class ExportConfig:
    run: str | None = None  # run id or .h5 path; None = the most recently finished run
    out: Path = field(default_factory=default_out_dir)
    data_dir: Path = field(default_factory=default_data_dir)
    fp16: bool = False  # also write an fp16 variant (weights and math in half precision)
    int8: bool = False  # also write a statically quantized int8 variant (onnxruntime QDQ)
    force: bool = False  # re-export even if a matching ONNX file exists


@dataclass
class ExportResult:
    run_id: str
    run_path: Path
    onnx_path: Path
    max_abs_diff: float
    seconds: float
    reused: bool
    variants: dict[str, dict[str, Any]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def export_onnx_file(model: nn.Module, path: Path) -> None:
    """Write eval-mode `model` (on the CPU) as ONNX to `path`, atomically."""
    example = torch.zeros(2, 3, 32, 32, dtype=torch.uint8)
    with atomic_path(path, keep_suffix=True) as tmp:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            prog = torch.onnx.export(
                PixelModel(model).eval(), (example,), input_names=[INPUT_NAME],
                output_names=[OUTPUT_NAME], opset_version=OPSET, dynamo=True,
                dynamic_shapes={INPUT_NAME: {0: torch.export.Dim("batch")}}, verbose=False)
        prog.save(str(tmp))


def describe_model(attrs: dict, run_id: str, fingerprint: str,
                   variant: str = "fp32") -> tuple[dict[str, str], str, int]:
    """(metadata, doc string, model_version) of a run's ONNX file.

    The metadata carries the class names in output order; model_version counts the epochs of
    training behind the weights (onnxruntime shows it as `version`).
    """
    config = attrs.get("config") or {}
    classes = list(attrs.get("classes") or CIFAR_CLASSES)
    epochs = int(attrs.get("epochs_done", 0))
    meta = {"hw0_run_id": run_id, "hw0_weights_sha256": fingerprint,
            "hw0_classes": json.dumps(classes), **IO_METADATA}
    if variant != "fp32":
        meta["hw0_variant"] = variant
    doc = (f"Myrtle5 CNN of width {config.get('width')} trained by hw0 on CIFAR-10 (run "
           f"{run_id}, {epochs} epochs, label noise {config.get('noise')}). Input: uint8 "
           f"pixels (N, 3, 32, 32), RGB, 0-255. Output: logits (N, {len(classes)}) for the "
           f"classes {', '.join(classes)}; argmax is the prediction. Variant: {variant}.")
    return meta, doc, epochs


def _set_metadata(path: Path, meta: dict[str, str], doc: str = "", version: int = 0) -> str:
    """Write the metadata into the ONNX file at `path`, with the fingerprint of its content
    (`GRAPH_KEY`); returns that fingerprint."""
    import onnx
    m = onnx.load(str(path))
    graph = graph_fingerprint(m)
    del m.metadata_props[:]
    for k, v in {**meta, GRAPH_KEY: graph}.items():
        m.metadata_props.add(key=k, value=v)
    m.doc_string, m.model_version = doc, version
    onnx.checker.check_model(m, full_check=True)
    with atomic_path(path, keep_suffix=True) as tmp:
        onnx.save(m, str(tmp))
    return graph


def _load_checked(path: Path) -> Any:
    import onnx
    try:
        m = onnx.load(str(path), load_external_data=False)
        onnx.checker.check_model(m)
    except Exception as exc:
        raise Hw0Error(f"{path} is not a valid ONNX model ({type(exc).__name__}: "
                       f"{str(exc).splitlines()[0] if str(exc) else ''}). Delete it and run "
                       "`hw0 export` again (or pass --force).") from None
    return m


def read_metadata(path: Path) -> dict[str, str]:
    """The ONNX file's metadata; a clear error if the file is not valid ONNX."""
    return {p.key: p.value for p in _load_checked(path).metadata_props}


def check_matches_run(path: Path, run_id: str, fingerprint: str,
                      recorded: str | None = None) -> None:
    """Raise unless the ONNX file at `path` was exported from these exact weights and is
    still what was exported: its content's fingerprint must equal the one in its metadata
    and `recorded` (the run file's record of the export; None: not recorded)."""
    m = _load_checked(path)
    meta = {p.key: p.value for p in m.metadata_props}
    if meta.get("hw0_weights_sha256") != fingerprint:
        raise Hw0Error(
            f"{path} does not match run '{run_id}' (it was exported from "
            f"{meta.get('hw0_run_id', 'another model')!r} with different weights or shapes). "
            f"Re-export it with `hw0 export {run_id} --force`.")
    actual = graph_fingerprint(m)
    if GRAPH_KEY not in meta or recorded is None:
        raise Hw0Error(f"{path} was exported before hw0 recorded a fingerprint of the file's "
                       "graph and weights, so it cannot be checked. Re-export it.")
    if not actual == meta[GRAPH_KEY] == recorded:
        raise Hw0Error(f"{path} changed after it was exported from run '{run_id}' (its "
                       "graph or weights no longer match the fingerprint recorded at export). "
                       f"Re-export it with `hw0 export {run_id} --force`.")


def _cpu_session(path: Path) -> Any:
    import onnxruntime as ort
    so = ort.SessionOptions()
    so.log_severity_level = 3
    return ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])


def _accuracy(session: Any, x: np.ndarray, y: np.ndarray, bs: int = 1000) -> float:
    pred = np.concatenate([session.run(None, {INPUT_NAME: x[i:i + bs]})[0].argmax(1)
                           for i in range(0, len(x), bs)])
    return float((pred == y).mean())


def fp16_variant(src: Path, dst: Path) -> None:
    """fp16 weights and math, fp32 input/output kept (GPU providers run it natively)."""
    import onnx
    from onnxruntime.transformers.float16 import convert_float_to_float16
    m = convert_float_to_float16(onnx.load(str(src)), keep_io_types=True)
    onnx.save(m, str(dst))


def int8_variant(src: Path, dst: Path, calib: np.ndarray) -> None:
    """Static int8 QDQ model (per-channel weights, int8 activations) calibrated on `calib`
    uint8 images; onnxruntime's CPU kernels run it with VNNI dot products where present."""
    from onnxruntime.quantization import (
        CalibrationDataReader,
        QuantFormat,
        QuantType,
        quantize_static,
    )

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.batches = iter([{INPUT_NAME: calib[i:i + 64]} for i in range(0, len(calib), 64)])

        def get_next(self) -> dict[str, np.ndarray] | None:
            return next(self.batches, None)

    # the quantizer writes `<src>-inferred.onnx` beside its input: work from a private folder
    # that goes away whatever happens, so no half-written model is ever left beside the run
    with tempfile.TemporaryDirectory(prefix=f".{dst.name}.tmp", dir=dst.parent) as scratch:
        local = Path(scratch) / src.name
        try:
            os.link(src, local)  # no copy where the filesystem allows
        except OSError:
            shutil.copyfile(src, local)
        root = logging.getLogger()
        level = root.level
        root.setLevel(logging.ERROR)  # its "consider pre-processing" advice is for other models
        try:
            quantize_static(str(local), str(dst), Reader(), quant_format=QuantFormat.QDQ,
                            per_channel=True, activation_type=QuantType.QInt8,
                            weight_type=QuantType.QInt8)
        finally:
            root.setLevel(level)


def _record(run: runs.RunFile, own: bool, arrays: dict[str, Any]) -> None:
    """Record an export: in the run file now when this call read it, else with the caller's
    update."""
    if own:
        store.update_h5(run.path, arrays=arrays)
    else:
        run.pending.update(arrays)


def _why(exc: Hw0Error) -> str:
    return str(exc).split(". ")[0]


def ensure_onnx(run_path: Path, force: bool = False, notes: list[str] | None = None,
                run: runs.RunFile | None = None) -> tuple[Path, float, bool]:
    """Export (or reuse a matching) fp32 ONNX file for the run; returns (path, diff, reused).

    An existing file that is corrupt, belongs to other weights or changed after export is
    replaced (it is derived data), and a line saying so is appended to `notes`. `run`: the
    run file as already read; then the record goes to `run.pending`, not to the file.
    """
    own, run = run is None, run or runs.RunFile.read(run_path)
    model, attrs = run.model, run.attrs
    run_id = str(attrs.get("run_id", run_path.stem))
    fp = weights_fingerprint(model)
    path = onnx_path(run_path)
    if path.exists() and not force:
        done = run.recorded("export")
        try:
            check_matches_run(path, run_id, fp, done.get("onnx_sha256"))
            return path, float(done.get("max_abs_diff", float("nan"))), True
        except Hw0Error as exc:
            if notes is not None:
                notes.append(f"replaced {path.name}: {_why(exc)}")
    export_onnx_file(model, path)
    graph = _set_metadata(path, *describe_model(attrs, run_id, fp))
    # validate: onnxruntime vs torch on the same test images (or random pixels without data)
    config = attrs.get("config") or {}
    try:
        x = load_cifar10(Path(config.get("data_dir", default_data_dir()))).test_x[:CHECK_IMAGES]
    except Hw0Error:
        x = np.random.default_rng(0).integers(0, 256, (CHECK_IMAGES, 3, 32, 32), np.uint8)
    x = np.array(x)  # a writable copy of the read-only cache
    with torch.no_grad():
        ref = PixelModel(model).eval()(torch.from_numpy(x)).numpy()
    got = _cpu_session(path).run(None, {INPUT_NAME: x})[0]
    diff = float(np.abs(got - ref).max())
    if not diff < FP32_TOLERANCE:
        path.unlink(missing_ok=True)
        raise Hw0Error(f"ONNX export of '{run_id}' failed validation: onnxruntime and torch "
                       f"logits differ by up to {diff:.3g} (> {FP32_TOLERANCE}) on "
                       f"{len(x)} test images; the file was removed. Report this with your "
                       "torch and onnxruntime versions.")
    import onnxruntime as ort
    _record(run, own, {"export/max_abs_diff": diff, "export/onnx_file": path.name,
                       "export/opset": OPSET, "export/onnxruntime": ort.__version__,
                       "export/check_images": len(x), "export/onnx_sha256": graph})
    return path, diff, False


VARIANTS = ("fp16", "int8")  # ONNX variants beside the fp32 model; never replace it


def ensure_variant(run_path: Path, variant: str, fp32_path: Path, data: Any,
                   force: bool = False, notes: list[str] | None = None,
                   run: runs.RunFile | None = None) -> tuple[Path, dict[str, Any], bool]:
    """Build (or reuse a matching) `variant` ONNX file from the run's checked fp32 file.

    Returns (path, info, reused); info has the variant's test accuracy, the fp32 model's,
    and the change, also recorded under `export/<variant>/` in the run's HDF5. The int8
    variant is calibrated on the first 512 training images. A variant file carries the
    fp32 file's weight fingerprint and its own content's, so one left from other weights or
    changed after it was built is rebuilt (with a line in `notes`). `run`: as for `ensure_onnx`.
    """
    own, run = run is None, run or runs.RunFile.read(run_path)
    dst = onnx_path(run_path, variant)
    fp = read_metadata(fp32_path).get("hw0_weights_sha256", "")
    attrs = run.attrs
    run_id = str(attrs.get("run_id", run_path.stem))
    if dst.exists() and not force:
        got = run.recorded(f"export/{variant}")
        try:
            check_matches_run(dst, run_id, fp, got.get("onnx_sha256"))
            if "accuracy" in got and "fp32_accuracy" in got:
                return dst, _variant_info(dst, float(got["accuracy"]),
                                          float(got["fp32_accuracy"])), True
        except Hw0Error as exc:  # derived data: rebuild it below
            if notes is not None:
                notes.append(f"rebuilt {dst.name}: {_why(exc)}")
    x, y = np.ascontiguousarray(data.test_x), data.test_y
    base = _accuracy(_cpu_session(fp32_path), x, y)
    try:
        with atomic_path(dst, keep_suffix=True) as tmp:  # renamed into place once built and checked
            if variant == "fp16":
                fp16_variant(fp32_path, tmp)
            else:
                int8_variant(fp32_path, tmp, np.ascontiguousarray(data.train_x[:512]))
            graph = _set_metadata(tmp, *describe_model(attrs, run_id, fp, variant))
            acc = _accuracy(_cpu_session(tmp), x, y)
    except Hw0Error:
        raise  # a failing disk, already one message
    except Exception as exc:  # a converter or kernel gap: say so, keep the fp32
        raise _variant_failure(variant, dst, fp32_path, exc) from None
    _record(run, own, {f"export/{variant}/accuracy": acc,
                       f"export/{variant}/fp32_accuracy": base,
                       f"export/{variant}/onnx_file": dst.name,
                       f"export/{variant}/onnx_sha256": graph})
    return dst, _variant_info(dst, acc, base), False


def _variant_failure(variant: str, dst: Path, fp32_path: Path, exc: Exception) -> Hw0Error:
    """Why a variant could not be built: a failing disk (raised, or seen afterwards: onnx's
    C++ shape inference writes a file without reporting a full disk), else the converter."""
    mapped = disk_error(exc, dst)
    free = free_bytes(dst.parent)
    if mapped is None and free is not None and free < 4 * fp32_path.stat().st_size:
        mapped = disk_full(dst)
    return mapped or Hw0Error(
        f"The {variant} variant could not be built or run here ({type(exc).__name__}: "
        f"{(str(exc).splitlines() or [''])[0]}). The fp32 model {fp32_path} is unaffected.")


def _variant_info(path: Path, acc: float, fp32_acc: float) -> dict[str, Any]:
    return {"path": str(path), "accuracy": acc, "fp32_accuracy": fp32_acc,
            "accuracy_change": acc - fp32_acc}


def run_export(cfg: ExportConfig) -> ExportResult:
    """Export the run to ONNX, check it, record the check in the run's HDF5."""
    run_path = runs.resolve_run(cfg.out, cfg.run)
    t0 = time.perf_counter()
    with store.lock(run_path):
        notes: list[str] = []
        run = runs.RunFile.read(run_path)
        path, diff, reused = ensure_onnx(run_path, cfg.force, notes, run=run)
        result = ExportResult(str(run.attrs["run_id"]), run_path, path, diff, 0.0, reused,
                              notes=notes)
        wanted = [v for v, on in (("fp16", cfg.fp16), ("int8", cfg.int8)) if on]
        if wanted:
            data = load_cifar10(cfg.data_dir)
            for variant in wanted:
                _, info, _ = ensure_variant(run_path, variant, path, data, force=cfg.force,
                                            notes=notes, run=run)
                result.variants[variant] = info
        if run.pending:
            store.update_h5(run_path, arrays=run.pending)
    result.seconds = time.perf_counter() - t0
    return result
