"""Evaluation of a trained run on original and flipped test images (Problem 1).

`infer()` returns logits for uint8 images through onnxruntime or torch; `evaluate()` turns
logits and labels into accuracy, per-class accuracy and a confusion matrix. `run_eval()` does a
whole `hw0 eval`: all requested views in one batched pass, results stored under `eval/<view>/`
in the run's HDF5. On a CUDA GPU, `--backend auto` is chosen by measurement (`eval_measure`).
The onnxruntime sessions and their providers are `hw0cli.sessions`.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, get_args

import numpy as np
import torch

from hw0cli import eval_measure, runs, sessions, store
from hw0cli.choices import Backend
from hw0cli.data import load_cifar10
from hw0cli.env import resolve_device
from hw0cli.errors import check
from hw0cli.eval_engines import Inference
from hw0cli.export import VARIANTS, ensure_onnx, ensure_variant
from hw0cli.paths import default_data_dir, default_out_dir
from hw0cli.plots import per_class_views
from hw0cli.runs import RunFile
from hw0cli.sessions import PROVIDERS, bound_run, open_session
from hw0cli.views import hflip, predict_logits, vflip

VIEWS = {"original": None, "vflip": vflip, "hflip": hflip}
BACKENDS = get_args(Backend)
@dataclass(frozen=True)
class Metrics:
    """accuracy: scalar; per_class_accuracy: (K,); confusion: (K, K), rows = true class."""

    accuracy: float
    per_class_accuracy: np.ndarray
    confusion: np.ndarray


def evaluate(logits: np.ndarray, labels: np.ndarray, num_classes: int = 10) -> Metrics:
    """Metrics of argmax predictions. confusion[i, j] = #(true i, predicted j)."""
    pred = np.asarray(logits).argmax(1)
    y = np.asarray(labels)
    confusion = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(confusion, (y, pred), 1)
    support = confusion.sum(1)
    per_class = np.divide(np.diag(confusion), support, out=np.full(num_classes, np.nan),
                          where=support > 0)
    return Metrics(float((pred == y).mean()) if len(y) else float("nan"), per_class, confusion)


def make_view(x: np.ndarray, view: str) -> np.ndarray:
    """uint8 (N, 3, H, W) -> the view: vflip reverses H (upside down), hflip reverses W."""
    if view == "original":
        return x
    return np.ascontiguousarray(x[:, :, ::-1, :] if view == "vflip" else x[:, :, :, ::-1])


# ---------------------------------------------------------------------------------------------
# onnxruntime sessions


# ---------------------------------------------------------------------------------------------
# inference


def infer(x: np.ndarray, *, session: Any = None, model: torch.nn.Module | None = None,
          device: torch.device | None = None, batch_size: int = 1000,
          precision: str = "fp32") -> np.ndarray:
    """Logits (N, 10) float32 for uint8 images x (N, 3, 32, 32), via a session or a model."""
    check(batch_size >= 1, f"--batch-size must be at least 1 (got {batch_size}).")
    if session is not None:  # IO binding: the images on the provider's device once
        return bound_run(session, x, batch_size)
    assert model is not None and device is not None
    logits = predict_logits(model, torch.from_numpy(np.ascontiguousarray(x)), device,
                            precision, batch_size)
    return logits.float().cpu().numpy()


@dataclass(frozen=True)
class EvalConfig:
    run: str | None = None  # run id or .h5 path; None = most recently finished run
    views: tuple[str, ...] = ("original",)  # any of original, vflip, hflip
    backend: str = "auto"  # auto | onnxruntime | torch (auto: see resolve_backend)
    model: str = "fp32"  # which ONNX model: fp32 | int8 | fp16 (built on first use)
    provider: str = "auto"  # onnxruntime provider: auto | tensorrt | cuda | cpu
    device: str = "auto"  # torch backend's device
    batch_size: int | None = None  # images per call; None: 1000, tuned on a GPU by `auto`
    out: Path = field(default_factory=default_out_dir)
    data_dir: Path | None = None  # None: the run's own data folder, else $HW0_DATA_DIR/./data
    plot: bool = False  # write the per-class PNG under <out>/plots when there are two views


@dataclass
class EvalResult:
    run_id: str
    run_path: Path
    backend: str
    provider: str
    seconds: float
    images_per_s: float
    views: dict[str, Metrics]
    classes: tuple[str, ...]
    onnx_path: Path | None = None
    notes: list[str] = field(default_factory=list)
    model: str = "fp32"
    variant_info: dict[str, Any] | None = None  # int8/fp16: accuracy change vs fp32
    backend_reason: str = ""  # why this backend ran
    backend_choice: dict[str, Any] | None = None  # auto on a GPU: what was measured
    plot: Path | None = None  # the per-class PNG, if one was written

    @property
    def n_images(self) -> int:
        return sum(int(m.confusion.sum()) for m in self.views.values())

    def drop(self, view: str) -> float | None:
        """Accuracy lost on `view` against the original images (None: not comparable)."""
        base = self.views.get("original")
        if base is None or view == "original":
            return None
        return base.accuracy - self.views[view].accuracy

    def per_class_drops(self) -> tuple[str, np.ndarray, np.ndarray] | None:
        """(the first other view, per-class accuracy drop against the original, class order
        by drop, largest first); None without the original and another view."""
        others = [v for v in self.views if v != "original"]
        if "original" not in self.views or not others:
            return None
        drops = (self.views["original"].per_class_accuracy
                 - self.views[others[0]].per_class_accuracy)
        return others[0], drops, np.argsort(-drops)

    def to_json(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id, "run_path": str(self.run_path), "backend": self.backend,
            "backend_reason": self.backend_reason, "backend_choice": self.backend_choice,
            "model": self.model, "variant": self.variant_info,
            "provider": self.provider, "seconds": self.seconds, "images_per_s": self.images_per_s,
            "classes": list(self.classes),
            "views": {v: {"accuracy": m.accuracy,
                          "per_class_accuracy": m.per_class_accuracy.tolist(),
                          "confusion": m.confusion.tolist()} for v, m in self.views.items()},
        }


def resolve_backend(backend: str, model: str, provider: str) -> tuple[str, str]:
    """(backend, why) by rule. auto: onnxruntime where it runs on a GPU provider, torch on the GPU
    where onnxruntime has none (its CPU provider is never picked while a CUDA GPU is present),
    onnxruntime's CPU provider on machines without a GPU (measured faster than torch there)."""
    import onnxruntime as ort
    if backend != "auto":
        return backend, "asked for"
    if model != "fp32":
        return "onnxruntime", f"the {model} model is an ONNX file"
    if provider != "auto":
        return "onnxruntime", f"--provider {provider} was asked for"
    if not sessions.gpu_present():
        return "onnxruntime", "no CUDA GPU here: onnxruntime's CPU provider is the fastest CPU path"
    gpu = sessions.gpu_providers()
    if gpu:
        return "onnxruntime", f"onnxruntime {ort.__version__} has the {gpu[0]} provider here"
    return "torch", (f"onnxruntime {ort.__version__} has no GPU provider here (install "
                     "onnxruntime-gpu), so torch on the GPU")


def requested_views(views: list[str] | None, vflip: bool = False,
                    hflip: bool = False) -> tuple[str, ...]:
    """The views to evaluate: those named (default: original), plus the flips asked for."""
    out = list(views or ["original"])
    out += [v for v, asked in (("vflip", vflip), ("hflip", hflip)) if asked and v not in out]
    return tuple(out)


def per_class_plot(res: EvalResult, out: Path) -> Path:
    """The per-class accuracy plot of every view; fp32's keeps its original name."""
    tag = "" if res.model == "fp32" else f"_{res.model}"
    return per_class_views(res.classes, {v: m.per_class_accuracy for v, m in res.views.items()},
                           out / "plots" / f"{res.run_id}_per_class{tag}.png",
                           f"Per-class test accuracy, run {res.run_id}"
                           + (f" ({res.model} ONNX)" if tag else ""))


def result_group(model: str) -> str:
    """Where `hw0 eval --model <model>` stores its views: eval/ for fp32, eval_<model>/ else."""
    return "eval" if model == "fp32" else f"eval_{model}"


def _check(cfg: EvalConfig) -> None:
    bad = [v for v in cfg.views if v not in VIEWS]
    check(not bad and bool(cfg.views), f"Unknown view(s) {', '.join(bad) or '(none)'}; "
          f"choose from {', '.join(VIEWS)}.")
    check(cfg.backend in BACKENDS, f"Unknown backend '{cfg.backend}'. Choose one of: "
          f"{', '.join(BACKENDS)}.")
    check(cfg.provider in ("auto", *PROVIDERS), f"Unknown provider '{cfg.provider}'. Choose "
          f"one of: auto, {', '.join(PROVIDERS)}.")
    check(cfg.batch_size is None or cfg.batch_size >= 1,
          f"--batch-size must be at least 1 (got {cfg.batch_size}).")
    check(cfg.model in ("fp32", *VARIANTS), f"Unknown model '{cfg.model}'. Choose one of: "
          f"fp32, {', '.join(VARIANTS)}.")
    check(cfg.model == "fp32" or cfg.backend != "torch",
          f"--model {cfg.model} is an ONNX model: use it with --backend onnxruntime (the torch "
          "backend evaluates the run's fp32 weights).")


def _infer_run(cfg: EvalConfig, run: RunFile, x: np.ndarray, data: Any, notes: list[str],
               measure: Any = None) -> Inference:
    """Logits for x through the backend `auto` (or the user) chose; warm-up excluded."""
    if measure is not None or eval_measure.applies(cfg):  # auto on a GPU: by measurement
        return eval_measure.infer_measured(cfg, run, x, notes, measure)
    run_path, model = run.path, run.model
    backend, why = resolve_backend(cfg.backend, cfg.model, cfg.provider)
    onnx_file, variant_info, session, provider = None, None, None, ""
    if backend == "onnxruntime":
        onnx_file, _, reused = ensure_onnx(run_path, notes=notes, run=run)
        if not reused:
            notes.append(f"exported {onnx_file.name} first")
        if cfg.model != "fp32":
            onnx_file, variant_info, v_reused = ensure_variant(run_path, cfg.model, onnx_file,
                                                               data, notes=notes, run=run)
            if not v_reused:
                notes.append(f"built {onnx_file.name} first")
        session, provider = open_session(onnx_file, cfg.provider)
        if cfg.backend == "auto" and provider == "cpu" and sessions.gpu_present():
            backend, why = "torch", "onnxruntime's GPU provider fell back to the CPU"
    kw: dict[str, Any] = {"session": session}
    if backend == "torch":
        device = resolve_device(cfg.device)
        provider = f"torch {device.type} fp32"
        kw = {"model": model.to(device), "device": device}
    bs = cfg.batch_size or 1000
    infer(x[:bs], batch_size=bs, **kw)  # warm-up
    t0 = time.perf_counter()
    logits = infer(x, batch_size=bs, **kw)
    return Inference(logits, time.perf_counter() - t0, backend, why, provider, onnx_file,
                      variant_info)


def run_eval(cfg: EvalConfig, measure: Any = None) -> EvalResult:
    """Evaluate the run on every requested view in one batched pass; store under eval/<view>
    (eval_int8/<view> or eval_fp16/<view>); `measure`: as `auto` on a GPU (eval_measure)."""
    _check(cfg)
    run_path = runs.resolve_run(cfg.out, cfg.run)
    with store.lock(run_path):  # the file read once and written once, by this process alone
        run = RunFile.read(run_path)
        notes = [w for w in (runs.require_trained(run_path, run.attrs),) if w]
        run_id = str(run.attrs.get("run_id", run_path.stem))
        data_dir = cfg.data_dir or Path((run.attrs.get("config") or {}).get("data_dir")
                                        or default_data_dir())
        data = load_cifar10(data_dir)
        x = np.concatenate([make_view(data.test_x, v) for v in cfg.views])  # one batched pass
        inf = _infer_run(cfg, run, x, data, notes, measure)
        n = len(data.test_y)
        views = {v: evaluate(inf.logits[i * n:(i + 1) * n], data.test_y, len(data.classes))
                 for i, v in enumerate(cfg.views)}
        arrays: dict[str, Any] = {}
        for i, (v, m) in enumerate(views.items()):
            g = f"{result_group(cfg.model)}/{v}"
            arrays.update({f"{g}/accuracy": m.accuracy,
                           f"{g}/per_class_accuracy": m.per_class_accuracy,
                           f"{g}/confusion": m.confusion, f"{g}/provider": inf.provider,
                           f"{g}/backend": inf.backend, f"{g}/model": cfg.model,
                           f"{g}/seconds": inf.seconds,
                           f"{g}/images_per_s": len(x) / inf.seconds,
                           f"{g}/logits": inf.logits[i * n:(i + 1) * n],
                           f"{g}/backend_choice": json.dumps(inf.choice)})  # null: not measured
        store.update_h5(run_path, arrays={**run.pending, **arrays})
    res = EvalResult(run_id, run_path, inf.backend, inf.provider, inf.seconds,
                     len(x) / inf.seconds, views, data.classes, inf.onnx_file, notes,
                     cfg.model, inf.variant_info, inf.why, inf.choice)
    if cfg.plot and len(views) > 1:
        res.plot = per_class_plot(res, cfg.out)
    return res
