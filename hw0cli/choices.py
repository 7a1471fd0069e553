"""The closed sets of values that options take, as `Literal` types, and the data sizes that
bound options.

Declared here, torch- and NumPy-free, so that `hw0 --help` lists the choices without importing
torch; the modules that act on a value (env, augment, train, evaluate, linreg) import them.
"""

from __future__ import annotations

from typing import Literal, get_args

CIFAR_TRAIN_SIZE = 50_000
CIFAR_TEST_SIZE = 10_000
MNIST_TRAIN_SIZE = 60_000
# Seeds: what every generator they seed takes. torch's take 64-bit values, and an epoch's
# augmentation generator is seeded with seed * 100_003 + epoch (hw0cli.train.augment), so 2**32 - 1
# (NumPy's classic seed range) keeps every derived seed inside torch's.
MAX_SEED = 2**32 - 1

Device = Literal["auto", "cuda", "cpu"]
Precision = Literal["auto", "bf16", "fp16", "fp32"]
CompileMode = Literal["auto", "default", "reduce-overhead", "max-autotune"]
Optimizer = Literal["sgd", "adam", "muon"]
Schedule = Literal["constant", "step", "cosine", "onecycle", "triangle"]
Objective = Literal["standard", "worst-view"]
Recipe = Literal["notebook", "fast", "page"]
PadMode = Literal["zeros", "reflect"]
Init = Literal["default", "kaiming", "xavier", "orthogonal"]
Activation = Literal["relu", "gelu", "celu"]

DEVICES: tuple[str, ...] = get_args(Device)
PRECISIONS: tuple[str, ...] = get_args(Precision)
COMPILE_MODES: tuple[str, ...] = get_args(CompileMode)
OPTIMIZERS: tuple[str, ...] = get_args(Optimizer)
SCHEDULES: tuple[str, ...] = get_args(Schedule)
OBJECTIVES: tuple[str, ...] = get_args(Objective)
RECIPES: tuple[str, ...] = get_args(Recipe)
PAD_MODES: tuple[str, ...] = get_args(PadMode)
INITS: tuple[str, ...] = get_args(Init)

View = Literal["original", "vflip", "hflip"]
Backend = Literal["auto", "onnxruntime", "torch"]
Provider = Literal["auto", "tensorrt", "cuda", "cpu"]
OnnxModel = Literal["fp32", "int8", "fp16"]
LinregMethod = Literal["rank", "pinv", "lstsq", "solve", "gd", "sgd", "overparam", "rf",
                       "kernel", "all"]
SgdSchedule = Literal["constant", "invsqrt"]
RfKind = Literal["rff", "relu"]
Dtype = Literal["float32", "float64"]
Preset = Literal["quick", "full"]
SweepPreset = Literal["bn-study", "warmup-knobs", "random-labels"]
