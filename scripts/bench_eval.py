#!/usr/bin/env python3
"""Benchmark the full flip evaluation (test set + its vertical flip = 20,000 images).

Backends, same device and images, one process: onnxruntime through IO binding (the paths of
`hw0 eval`, hw0cli.eval_engines) on each provider of --providers (default: on a GPU its
TensorRT and CUDA providers, fp32 and the fp16 model each; a provider whose libraries do not
load is a row that says so; without a GPU the CPU provider, fp32, and the int8 model of
`hw0 eval --model int8`), torch eager fp32 (NCHW, the plain way), and our best torch path
(channels_last, torch.compile, autocast at `--precision auto`). One-time costs (session
creation, engine build, compilation, first batch) are timed apart from the steady state.
Prints images/s of each and the ratios, with device, precision and versions, and the compute
ceiling: FLOPs per image against this device's measured fp32 matmul rate.

    python scripts/bench_eval.py --data-dir data --width 64            # random weights
    python scripts/bench_eval.py --data-dir data --run c4-p0-e20-s0-... --out artifacts
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch

from hw0cli import runs
from hw0cli.data import load_cifar10
from hw0cli.env import (
    device_name,
    matmul_peak_gflops,
    resolve_compile,
    resolve_device,
    resolve_precision,
)
from hw0cli.eval_engines import Candidate, Unavailable, build
from hw0cli.evaluate import infer, make_view
from hw0cli.export import export_onnx_file, int8_variant
from hw0cli.models import flops_per_image, make_cnn
from hw0cli.sessions import gpu_present, open_session
from hw0cli.views import predict_logits


def timed(fn, repeats: int):
    """(median seconds of `repeats` calls, the last call's result), after the caller's warm-up."""
    times, out = [], None
    for _ in range(repeats):
        t = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t)
    return float(np.median(times)), out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data-dir", type=Path, default=Path("data"))
    ap.add_argument("--width", type=int, default=64)
    ap.add_argument("--run", help="a run id/.h5 to load weights from (default: random init)")
    ap.add_argument("--out", type=Path, default=Path("artifacts"))
    ap.add_argument("--device", default="auto")
    ap.add_argument("--providers", default="auto",
                    help="onnxruntime providers, comma-separated (tensorrt, cuda, cpu); auto: "
                    "tensorrt,cuda on a GPU, cpu without one")
    ap.add_argument("--precision", default="auto")
    ap.add_argument("--batch-size", type=int, default=0, help="0: 1000 on CPU, 20000 on GPU")
    ap.add_argument("--repeats", type=int, default=0, help="timed passes; 0: 1 on CPU, 5 on GPU")
    ap.add_argument("--no-int8", action="store_true", help="skip the int8 onnxruntime row")
    ap.add_argument("--json", type=Path)
    a = ap.parse_args()
    device = resolve_device(a.device)
    precision = resolve_precision(a.precision, device)
    bs = a.batch_size or (20_000 if device.type == "cuda" else 1000)
    a.repeats = a.repeats or (5 if device.type == "cuda" else 1)
    data = load_cifar10(a.data_dir)
    x = np.concatenate([make_view(data.test_x, "original"), make_view(data.test_x, "vflip")])
    n = len(x)
    if a.run:
        model, _ = runs.load_model(runs.resolve_run(a.out, a.run))
    else:
        torch.manual_seed(0)
        model = make_cnn(a.width).eval()
    results: dict[str, dict] = {}
    skipped: dict[str, str] = {}  # rows whose provider cannot run here, and why
    logits: dict[str, np.ndarray] = {}
    providers = (a.providers.split(",") if a.providers != "auto"
                 else ["tensorrt", "cuda"] if gpu_present() else ["cpu"])

    # onnxruntime, IO binding
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "model.onnx"
        export_onnx_file(model, path)
        for c in [Candidate("onnxruntime", p, prec) for p in providers
                  for prec in (("fp32", "fp16") if p != "cpu" else ("fp32",))]:
            t = time.perf_counter()
            try:
                eng = build(c, model, path, Path(tmp))
            except Unavailable as exc:
                skipped[c.label] = str(exc)
                print(f"{c.label}: skipped ({exc})")
                continue
            eng.run(x[:bs], bs)
            one = time.perf_counter() - t
            s, logits[c.label] = timed(lambda eng=eng: eng.run(x, bs), a.repeats)
            results[c.label] = {"images_per_s": n / s, "one_time_s": one,
                                "provider": eng.provider}
            del eng  # its device memory, before the next session
        if not a.no_int8:  # `hw0 eval --model int8`: static QDQ, calibrated on 512 images
            q = Path(tmp) / "model.int8.onnx"
            t = time.perf_counter()
            int8_variant(path, q, np.ascontiguousarray(data.train_x[:512]))
            sess8, provider8 = open_session(q, "auto")
            infer(x[:bs], session=sess8, batch_size=bs)
            one = time.perf_counter() - t
            s, int8_logits = timed(lambda: infer(x, session=sess8, batch_size=bs), a.repeats)
            results[f"onnxruntime int8 ({provider8})"] = {"images_per_s": n / s,
                                                          "one_time_s": one}

    xt = torch.from_numpy(x)

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize()

    # torch eager fp32, NCHW
    eager = make_cnn(a.width).eval()
    eager.load_state_dict(model.state_dict())
    eager = eager.to(device)

    @torch.inference_mode()
    def run_eager(m: int = n) -> torch.Tensor:
        out = [eager(xt[i:i + bs].to(device).float() / 255) for i in range(0, m, bs)]
        sync()
        return torch.cat(out)

    t = time.perf_counter()
    run_eager(bs)  # warm-up: one batch
    one = time.perf_counter() - t
    s, out = timed(run_eager, a.repeats)
    eager_logits = out.float().cpu().numpy()
    results["torch eager fp32"] = {"images_per_s": n / s, "one_time_s": one}

    # our best torch path
    best = make_cnn(a.width).eval()
    best.load_state_dict(model.state_dict())
    best = best.to(device, memory_format=torch.channels_last)
    use_compile = resolve_compile(None, device)
    fwd = torch.compile(best) if use_compile else best
    xd = xt.to(device)

    def run_best(m: int = n) -> torch.Tensor:
        out = predict_logits(fwd, xd[:m], device, precision, bs)
        sync()
        return out

    t = time.perf_counter()
    run_best(bs)  # warm-up: compilation and one batch
    one = time.perf_counter() - t
    s, out = timed(run_best, a.repeats)
    best_logits = out.float().cpu().numpy()
    label = f"torch best ({precision}, channels_last, compile={'on' if use_compile else 'off'})"
    results[label] = {"images_per_s": n / s, "one_time_s": one}

    ref = eager_logits.argmax(1)
    print(f"device {device_name(device)} | torch {torch.__version__} | onnxruntime "
          f"{ort.__version__} | python {platform.python_version()} | width {a.width} | "
          f"{n:,} images, batch {bs}")
    base = results["torch eager fp32"]["images_per_s"]
    fl = flops_per_image(a.width)
    for name, r in results.items():
        print(f"{name:<58} {r['images_per_s']:10,.0f} images/s  {r['images_per_s'] / base:5.2f}x "
              f"eager  {r['images_per_s'] * fl / 1e9:6.0f} GFLOP/s  (one-time "
              f"{r['one_time_s']:.2f} s)")
    for k, why in skipped.items():
        print(f"{k:<58} skipped: {why}")
    ort_rows = {k: v for k, v in results.items() if k in logits}
    o = max(ort_rows.values(), key=lambda v: v["images_per_s"]) if ort_rows else None
    if o:
        print(f"fastest onnxruntime / torch best: "
              f"{o['images_per_s'] / results[label]['images_per_s']:.2f}x")
    agree = {k: (v.argmax(1) == ref).mean() for k, v in logits.items()}
    agree["torch best"] = (best_logits.argmax(1) == ref).mean()
    if not a.no_int8:
        agree["onnxruntime int8"] = (int8_logits.argmax(1) == ref).mean()
    print("prediction agreement with eager: " + ", ".join(f"{k} {v:.4%}"
                                                          for k, v in agree.items()))
    # the compute budget: 2 FLOPs per multiply-add of the convs and the linear layer, against
    # this device's measured fp32 matmul rate, which the best fp32 conv kernels approach
    peak = matmul_peak_gflops(device)
    print(f"compute ceiling: {fl / 1e6:.0f} MFLOP per image; fp32 matmul here runs at "
          f"{peak:.0f} GFLOP/s, i.e. ~{peak * 1e9 / fl:,.0f} images/s if every FLOP ran at that "
          f"rate (fastest onnxruntime: "
          f"{(o['images_per_s'] if o else 0) * fl / 1e9 / peak:.0%} of it; 3x eager "
          f"would need {3 * base * fl / 1e9:.0f} GFLOP/s)")
    if a.json:
        a.json.write_text(json.dumps({"device": device_name(device), "width": a.width,
                                      "precision": precision, "results": results,
                                      "skipped": skipped, "agreement_with_eager": {
                                          k: float(v) for k, v in agree.items()},
                                      "mflop_per_image": fl / 1e6,
                                      "fp32_matmul_peak_gflops": peak}, indent=1))


if __name__ == "__main__":
    main()
