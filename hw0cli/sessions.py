"""onnxruntime sessions: which providers are usable here, a session on the one asked for (or the
best of TensorRT, CUDA, CPU with `auto`), and inference through IO binding.

Provider choice is explicit: `auto` tries TensorRT, then CUDA, then the CPU, but asks for GPU
providers only when a CUDA GPU is present (the onnxruntime-gpu wheel lists them everywhere and
logs library-load errors on machines without CUDA). After creating a session we read back which
provider it really uses, since onnxruntime can fall back to the CPU silently.
"""

from __future__ import annotations

import contextlib
import ctypes
import importlib.util
import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch

from hw0cli.errors import Hw0Error, Hw0UsageError, check
from hw0cli.export import INPUT_NAME, OUTPUT_NAME

PROVIDERS = {"tensorrt": "TensorrtExecutionProvider", "cuda": "CUDAExecutionProvider",
             "cpu": "CPUExecutionProvider"}


def gpu_present() -> bool:
    return torch.cuda.is_available()


TENSORRT_LIBS = ("libnvinfer.so", "libnvinfer_plugin.so", "libnvonnxparser.so")


def preload_tensorrt() -> list[str]:
    """Load the TensorRT libraries that `pip install 'hw0[tensorrt]'` put in site-packages.

    onnxruntime's TensorRT provider links libnvinfer.so.10 and libnvonnxparser.so.10 but only
    looks on the loader path, where a pip install does not put them; loading them first, by
    full path and globally, lets the provider find them. Returns the files loaded (none when
    the extra is not installed).
    """
    spec = importlib.util.find_spec("tensorrt_libs")
    if spec is None or not spec.submodule_search_locations:
        return []
    folder = Path(next(iter(spec.submodule_search_locations)))
    loaded = []
    for stem in TENSORRT_LIBS:
        for lib in sorted(folder.glob(f"{stem}.*")):
            with contextlib.suppress(OSError):
                ctypes.CDLL(str(lib), mode=ctypes.RTLD_GLOBAL)
                loaded.append(lib.name)
                break
    return loaded


def _session(path: Path, provider: str, cache_dir: Path) -> Any:
    import onnxruntime as ort
    so = ort.SessionOptions()
    so.log_severity_level = 3  # errors only: fallbacks are detected and reported by us
    name = PROVIDERS[provider]
    opts: dict[str, Any] = {}
    if provider == "tensorrt":
        cache_dir.mkdir(parents=True, exist_ok=True)
        opts = {"trt_engine_cache_enable": True, "trt_engine_cache_path": str(cache_dir),
                "trt_timing_cache_enable": True, "trt_timing_cache_path": str(cache_dir),
                "trt_fp16_enable": False}  # fp32: predictions must match the torch model
    provs: list[Any] = [(name, opts)] if opts else [name]
    if provider != "cpu":
        provs.append("CPUExecutionProvider")
    return ort.InferenceSession(str(path), so, providers=provs)


def open_session(path: Path, provider: str = "auto") -> tuple[Any, str]:
    """An onnxruntime session and the provider that really runs it ('tensorrt'|'cuda'|'cpu')."""
    import onnxruntime as ort
    check(provider in ("auto", *PROVIDERS), f"Unknown provider '{provider}'. Choose one of: "
          f"auto, {', '.join(PROVIDERS)}.")
    available = ort.get_available_providers()
    gpu = gpu_present()
    if gpu and hasattr(ort, "preload_dlls"):
        # use the CUDA / cuDNN libraries that the torch wheels installed; best effort, since
        # the provider check below tells the truth either way
        with contextlib.suppress(Exception):
            ort.preload_dlls()
    if gpu and sys.platform.startswith("linux"):
        preload_tensorrt()
    cache = path.parent / "trt_cache"
    if provider == "auto":
        chain = [p for p in ("tensorrt", "cuda") if gpu and PROVIDERS[p] in available] + ["cpu"]
    else:
        usable = PROVIDERS[provider] in available and (provider == "cpu" or gpu)
        if not usable:
            installed = ", ".join(k for k, v in PROVIDERS.items() if v in available
                                  and (k == "cpu" or gpu))
            raise Hw0UsageError(
                f"Provider '{provider}' is not usable here (onnxruntime {ort.__version__}; "
                f"usable: {installed}; CUDA GPU present: {'yes' if gpu else 'no'}). Use "
                "--provider auto, or install onnxruntime-gpu with CUDA on a GPU machine"
                + (" (TensorRT: `pip install 'hw0[tensorrt]'`)." if provider == "tensorrt"
                   else "."))
        chain = [provider]
    errors = []
    for p in chain:
        try:
            sess = _session(path, p, cache)
        except Exception as exc:
            errors.append(f"{p}: {str(exc).splitlines()[0]}")
            continue
        if sess.get_providers()[0] == PROVIDERS[p]:
            return sess, p
        errors.append(f"{p}: onnxruntime fell back to {sess.get_providers()[0]}")
    raise Hw0Error(f"No onnxruntime provider could run {path.name} ({'; '.join(errors)}). "
                   "Try --provider cpu or --backend torch.")


def gpu_providers() -> list[str]:
    """onnxruntime's GPU providers usable here (none without a CUDA GPU)."""
    import onnxruntime as ort
    if not gpu_present():
        return []
    return [k for k in ("tensorrt", "cuda") if PROVIDERS[k] in ort.get_available_providers()]


def bound_run(session: Any, x: np.ndarray, batch_size: int) -> np.ndarray:
    """Logits of uint8 images x through `session` with IO binding (see the module docstring)."""
    gpu = session.get_providers()[0] in (PROVIDERS["cuda"], PROVIDERS["tensorrt"])
    dev = "cuda" if gpu else "cpu"
    x = np.ascontiguousarray(x)
    xt = torch.from_numpy(x if x.flags.writeable else x.copy()).to(dev)
    width = session.get_outputs()[0].shape[-1]
    out = torch.empty((len(x), width if isinstance(width, int) else 10), dtype=torch.float32,
                      device=dev)
    if gpu:
        torch.cuda.synchronize()  # the upload ran on torch's stream; onnxruntime has its own
    binding = session.io_binding()
    index = out.device.index or 0
    for i in range(0, len(x), batch_size):
        xb, ob = xt[i:i + batch_size], out[i:i + batch_size]
        binding.bind_input(INPUT_NAME, dev, index, np.uint8, tuple(xb.shape), xb.data_ptr())
        binding.bind_output(OUTPUT_NAME, dev, index, np.float32, tuple(ob.shape), ob.data_ptr())
        session.run_with_iobinding(binding)
    binding.synchronize_outputs()
    return out.cpu().numpy()
