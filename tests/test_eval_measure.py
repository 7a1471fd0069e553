"""`--backend auto` by measurement: the faster candidate wins, the verdict is cached and reused
by a second process, stored in the run file, and a candidate that cannot run is left out with
its reason. The timing is faked by an injected timer (no GPU here)."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from hw0cli import eval_engines as ee
from hw0cli import eval_measure as em
from hw0cli import evaluate as ev
from hw0cli import sessions, store
from hw0cli.cli import app
from hw0cli.train.run import run_train
from tests.helpers import tiny_config

ROOT = Path(__file__).resolve().parents[1]
ORT_CPU = ee.Candidate("onnxruntime", "cpu", "fp32")
ORT_CUDA = ee.Candidate("onnxruntime", "cuda", "fp32")
TORCH = ee.Candidate("torch", "cpu", "fp32")


@pytest.fixture(scope="module")
def trained(cifar_root, tmp_path_factory):
    out = tmp_path_factory.mktemp("measure")
    return run_train(tiny_config(cifar_root, out, epochs=2)), out


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("HW0_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache" / em.CACHE_FILE


class FakeTimer:
    """Images/s per candidate label, as if measured; counts its calls."""

    def __init__(self, figures: dict[str, float]) -> None:
        self.figures, self.calls = figures, []

    def __call__(self, c, engine, x, batch_size):
        self.calls.append((c.label, batch_size))
        assert engine.candidate == c and len(x) > 0  # a real, built engine is timed
        return self.figures[c.label]


def cfg_for(res, out, cifar_root, **kw):
    return ev.EvalConfig(run=res.run_id, views=("original", "vflip"), out=out,
                         data_dir=cifar_root, **kw)


def test_auto_picks_the_faster_caches_it_and_stores_the_verdict(trained, cifar_root, cache):
    res, out = trained
    timer = FakeTimer({ORT_CPU.label: 1_000.0, TORCH.label: 3_000.0})
    got = ev.run_eval(cfg_for(res, out, cifar_root), em.Measurement((ORT_CPU, TORCH), timer))
    assert got.backend == "torch" and got.provider == "torch cpu fp32 eager"
    assert got.backend_reason == ("measured: torch fp32 eager 3,000 img/s vs onnxruntime CPU "
                                  "fp32 1,000 img/s")
    assert sorted(timer.calls) == [(ORT_CPU.label, 1000), (TORCH.label, 1000)]
    stored = store.read_h5(res.path, prefixes=("eval/",)).arrays
    choice = json.loads(str(stored["eval/vflip/backend_choice"]))
    assert choice["chosen"] == TORCH.label and choice["cached"] is False
    assert choice["images_per_s"] == {ORT_CPU.label: 1000.0, TORCH.label: 3000.0}
    assert str(stored["eval/original/backend"]) == "torch"
    assert got.views["original"].accuracy == pytest.approx(1 - res.test_err)
    entry = json.loads(cache.read_text())[choice["key"]]
    assert entry["images_per_s"] == choice["images_per_s"] and "width 4" in choice["key"]
    # the other way round on another key (a batch size given): onnxruntime wins
    timer = FakeTimer({ORT_CPU.label: 5_000.0, TORCH.label: 3_000.0})
    got = ev.run_eval(cfg_for(res, out, cifar_root, batch_size=64),
                      em.Measurement((ORT_CPU, TORCH), timer))
    assert got.backend == "onnxruntime" and got.provider == "cpu"
    assert {bs for _, bs in timer.calls} == {64} and len(json.loads(cache.read_text())) == 2


SECOND_PROCESS = """
import json, sys
from pathlib import Path
from hw0cli import eval_engines as ee, eval_measure as em, evaluate as ev
def timer(*a):
    raise AssertionError("measured again")
cands = (ee.Candidate("onnxruntime", "cpu", "fp32"), ee.Candidate("torch", "cpu", "fp32"))
res = ev.run_eval(ev.EvalConfig(run=sys.argv[1], out=Path(sys.argv[2]),
                                data_dir=Path(sys.argv[3])), em.Measurement(cands, timer))
print(json.dumps({"backend": res.backend, "why": res.backend_reason,
                  "cached": res.backend_choice["cached"]}))
"""


def test_a_second_process_reuses_the_cached_verdict(trained, cifar_root, cache):
    res, out = trained
    timer = FakeTimer({ORT_CPU.label: 100.0, TORCH.label: 900.0})
    ev.run_eval(cfg_for(res, out, cifar_root), em.Measurement((ORT_CPU, TORCH), timer))
    assert len(timer.calls) == 2
    import os
    r = subprocess.run([sys.executable, "-c", SECOND_PROCESS, res.run_id, str(out),
                        str(cifar_root)], capture_output=True, text=True, timeout=300,
                       env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert r.returncode == 0, r.stderr[-2000:]
    d = json.loads(r.stdout.strip().splitlines()[-1])
    assert d == {"backend": "torch", "cached": True, "why": (
        "measured earlier on this machine (cached): torch fp32 eager 900 img/s vs onnxruntime "
        "CPU fp32 100 img/s")}


def test_a_provider_that_fails_to_load_falls_back_with_the_reason(trained, cifar_root, cache,
                                                                  monkeypatch):
    """The CUDA candidate would be fastest, but cannot run here: the next one runs, the notes
    say why, the result and the stored verdict say which ran."""
    res, out = trained
    timer = FakeTimer({ORT_CUDA.label: 1e6, ORT_CPU.label: 2_000.0, TORCH.label: 1_000.0})
    got = ev.run_eval(cfg_for(res, out, cifar_root),
                      em.Measurement((ORT_CUDA, ORT_CPU, TORCH), timer))
    assert (got.backend, got.provider) == ("onnxruntime", "cpu")
    assert ORT_CUDA.label not in [c for c, _ in timer.calls]  # never built, never timed
    note = next(n for n in got.notes if n.startswith("onnxruntime CUDA fp32: not run ("))
    assert "cuda" in note
    assert got.backend_choice["unavailable"][ORT_CUDA.label] in note
    assert got.backend_choice["chosen"] == ORT_CPU.label
    # through the command line (the GPU faked by our own hooks, real timing): printed
    monkeypatch.setattr(em, "applies", lambda cfg: True)
    monkeypatch.setattr(em, "default_candidates", lambda: [ORT_CUDA, ORT_CPU, TORCH])
    r = CliRunner().invoke(app, ["eval", res.run_id, "--flip", "--out", str(out),
                                 "--data-dir", str(cifar_root), "--no-plot"])
    assert r.exit_code == 0, r.output
    assert "onnxruntime CUDA fp32: not run (" in r.output and "measured" in r.output


def test_without_a_gpu_the_cpu_rule_holds_and_nothing_is_measured(trained, cifar_root, cache):
    res, out = trained
    if sessions.gpu_present():
        pytest.skip("a CUDA GPU is present: auto measures")
    assert not em.applies(cfg_for(res, out, cifar_root))
    got = ev.run_eval(cfg_for(res, out, cifar_root))
    assert (got.backend, got.provider) == ("onnxruntime", "cpu")
    assert "no CUDA GPU" in got.backend_reason and got.backend_choice is None
    assert not cache.exists()
    stored = store.read_h5(res.path, prefixes=("eval/",)).arrays  # no stale verdict left
    assert str(stored["eval/original/backend_choice"]) == "null"


def fake_engine(label_precision: str, logits: np.ndarray) -> ee.Engine:
    c = ee.Candidate("onnxruntime", "cpu", label_precision)
    return ee.Engine(c, lambda x, bs: logits[:len(x)], f"fake {label_precision}")


@pytest.mark.parametrize(("flipped", "kept"), [(0, "fp16"), (1, "fp16"), (2, "fp32")])
def test_a_reduced_precision_winner_must_agree_with_fp32(flipped, kept):
    """The fp16 winner's results stand if its top-1 agrees with fp32 on >= 99.5% of the
    images (here 400: at most 2 may differ), else fp32's logits are the result."""
    rng = np.random.default_rng(0)
    ref = rng.normal(size=(400, 10)).astype(np.float32)
    low = ref.copy()
    for i in range(flipped * 2):  # 0, 2 or 4 images predicted otherwise
        low[i, (ref[i].argmax() + 1) % 10] = 99
    fp16, fp32 = fake_engine("fp16", low), fake_engine("fp32", ref)
    v = em.Verdict("k", {fp16.candidate.label: 2.0, fp32.candidate.label: 1.0},
                   {fp16.candidate.label: 100, fp32.candidate.label: 100}, {}, False,
                   chosen=fp16.candidate.label)
    cands = {e.candidate.label: e.candidate for e in (fp16, fp32)}
    logits, _, engine = em._check_agreement(v, fp16, low, 0.1, np.zeros((400, 1)), cands,
                                            lambda c: fp32)
    assert engine.candidate.precision == kept
    assert v.agreement == pytest.approx(1 - flipped * 2 / 400)
    np.testing.assert_array_equal(logits, low if kept == "fp16" else ref)
    assert (v.chosen == fp32.candidate.label) == (kept == "fp32")
