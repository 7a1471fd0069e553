"""`--precision auto` / `--compile-mode auto`: the measured-fastest candidate, cached, recorded."""

import pytest
import torch

from hw0cli import store
from hw0cli.train import probe
from hw0cli.train.config import make_config
from hw0cli.train.run import run_train
from tests.helpers import tiny_config


def stub_measure(speeds: dict[str, float], calls: list):
    def make_timer(device, cfg, precision, compile_mode):
        calls.append((precision, compile_mode))
        return lambda: speeds[precision]
    return make_timer


def test_auto_precision_follows_the_probe(monkeypatch, tmp_path):
    monkeypatch.setenv("HW0_CACHE", str(tmp_path / "cache"))
    cpu, calls = torch.device("cpu"), []
    cfg = make_config(width=16, device="cpu", compile=False)
    monkeypatch.setattr(probe, "make_timer", stub_measure({"fp32": 100.0, "bf16": 230.0}, calls))
    ex = probe.choose_execution(cfg, cpu)
    assert ex.precision == "bf16" and ex.compile_mode is None
    assert ex.probe["images_per_s"] == {"fp32/eager": 100.0, "bf16/eager": 230.0}
    assert not ex.probe["cached"] and len(calls) == 2
    # cached per device, torch version, width class and batch size: no second measurement
    again = probe.choose_execution(make_config(width=13, device="cpu", compile=False), cpu)
    assert again.precision == "bf16" and again.probe["cached"] and len(calls) == 2
    # where bf16 is slower, fp32 is chosen (another batch size: measured anew)
    monkeypatch.setattr(probe, "make_timer", stub_measure({"fp32": 120.0, "bf16": 90.0}, calls))
    slow = probe.choose_execution(make_config(width=16, batch_size=256, device="cpu",
                                              compile=False), cpu)
    assert slow.precision == "fp32" and len(calls) == 4
    # explicit choices are not measured
    fixed = probe.choose_execution(make_config(width=16, device="cpu", precision="fp32",
                                               compile=False), cpu)
    assert fixed.precision == "fp32" and fixed.probe is None and len(calls) == 4


def counting_timer(speeds: dict[str, float], windows: dict[str, int]):
    def make_timer(device, cfg, precision, compile_mode):
        def window():
            windows[precision] = windows.get(precision, 0) + 1
            return speeds[precision]
        return window
    return make_timer


@pytest.mark.parametrize("bf16, windows_of_bf16", [
    (10.0, 1),  # 10x slower than fp32 after the first round: out of the race
    (30.0, probe.ROUNDS),  # 3.3x slower: within reach, timed every round
])
def test_a_candidate_far_behind_is_not_timed_again(monkeypatch, tmp_path, bf16, windows_of_bf16):
    monkeypatch.setenv("HW0_CACHE", str(tmp_path / "cache"))
    windows: dict[str, int] = {}
    monkeypatch.setattr(probe, "make_timer", counting_timer({"fp32": 100.0, "bf16": bf16},
                                                            windows))
    ex = probe.choose_execution(make_config(width=16, device="cpu", compile=False),
                                torch.device("cpu"))
    assert ex.precision == "fp32" and ex.probe["images_per_s"]["bf16/eager"] == bf16
    assert windows == {"fp32": probe.ROUNDS, "bf16": windows_of_bf16}


def test_one_probe_serves_compiled_and_eager_runs(monkeypatch, tmp_path):
    """A CPU times its candidates eagerly either way: a compiled run reuses an eager run's
    figures instead of measuring the same thing again."""
    monkeypatch.setenv("HW0_CACHE", str(tmp_path / "cache"))
    calls: list = []
    monkeypatch.setattr(probe, "make_timer", stub_measure({"fp32": 100.0, "bf16": 80.0}, calls))
    cpu = torch.device("cpu")
    eager = probe.choose_execution(make_config(width=16, device="cpu", compile=False), cpu)
    compiled = probe.choose_execution(make_config(width=16, device="cpu", compile=True), cpu)
    assert not eager.probe["cached"] and compiled.probe["cached"] and len(calls) == 2
    assert (eager.precision, eager.compile_mode) == ("fp32", None)
    assert (compiled.precision, compiled.compile_mode) == ("fp32", "default")


def test_cpu_compile_mode_auto_is_default_without_probe(monkeypatch):
    monkeypatch.setattr(probe, "make_timer", lambda *a: (_ for _ in ()).throw(AssertionError))
    ex = probe.choose_execution(make_config(width=4, device="cpu", precision="fp32",
                                            compile=True), torch.device("cpu"))
    assert ex.compile_mode == "default" and ex.probe is None


def test_run_file_records_a_real_probe(cifar_root, tmp_path, monkeypatch):
    """On this machine: a real (eager, width 4) probe; its figures and choice in the run file."""
    monkeypatch.setenv("HW0_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(probe, "MIN_TIMED_S", 0.1)
    res = run_train(tiny_config(cifar_root, tmp_path, epochs=1, precision="auto"))
    ex = store.read_h5(res.path, attrs_only=True).attrs["execution"]
    speeds = ex["probe"]["images_per_s"]
    assert set(speeds) == {"fp32/eager", "bf16/eager"} and min(speeds.values()) > 0
    assert ex["precision"] == max(speeds, key=speeds.get).split("/")[0] == res.precision
    assert (tmp_path / "cache" / probe.PROBE_FILE).is_file()


RACER = """
import sys, time
from pathlib import Path
import torch
from hw0cli.train import probe
from hw0cli.train.config import make_config
batch, ready, go = int(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3])
speeds = {"fp32": 100.0, "bf16": 230.0}
def make_timer(device, cfg, precision, mode):
    def window():
        time.sleep(0.2)  # a measurement takes a while: long enough for the other to read
        return speeds[precision]
    return window
probe.make_timer = make_timer
ready.touch()
while not go.exists():  # both start probing at the same moment
    time.sleep(0.01)
cfg = make_config(width=16, batch_size=batch, device="cpu", compile=False)
print(probe.choose_execution(cfg, torch.device("cpu")).precision)
"""


def test_concurrent_first_probes_keep_both_entries(tmp_path):
    """Two processes probing a fresh shared cache at once (other batch sizes, so other keys):
    both figures are kept (read-modify-write under a lock)."""
    import json
    import os
    import subprocess
    import sys
    import time
    env = {**os.environ, "HW0_CACHE": str(tmp_path / "cache")}
    go = tmp_path / "go"
    procs = [subprocess.Popen([sys.executable, "-c", RACER, str(batch), str(tmp_path / f"r{i}"),
                               str(go)], env=env, stdout=subprocess.PIPE, text=True)
             for i, batch in enumerate((64, 128))]
    end = time.monotonic() + 600  # a hang guard: imports under load
    while not all((tmp_path / f"r{i}").exists() for i in range(2)):
        assert time.monotonic() < end and all(p.poll() is None for p in procs)
        time.sleep(0.05)
    go.touch()
    outs = [p.communicate(timeout=600)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0] and [o.strip() for o in outs] == ["bf16"] * 2
    cache = json.loads((tmp_path / "cache" / probe.PROBE_FILE).read_text())
    assert sorted(k.split(" | ")[3] for k in cache) == ["batch 128", "batch 64"]
    assert all(v["bf16/eager"] == 230.0 for v in cache.values())


def test_a_full_disk_under_the_probe_cache_is_one_message(monkeypatch, tmp_path):
    """The probe's figures cannot be cached on a full disk: the message names the file and
    its disk (the probe would be lost anyway, and the run's checkpoints would fail next)."""
    from hw0cli.errors import Hw0Error
    from tests.helpers import FullDisk, temp_files_left
    cache = tmp_path / "cache"
    monkeypatch.setenv("HW0_CACHE", str(cache))
    monkeypatch.setattr(probe, "make_timer", stub_measure({"fp32": 1.0, "bf16": 2.0}, []))
    disk = FullDisk(monkeypatch, cache, free=0)
    with pytest.raises(Hw0Error, match="No space left on device") as e:
        probe.choose_execution(make_config(width=16, device="cpu", compile=False),
                               torch.device("cpu"))
    assert str(cache / probe.PROBE_FILE) in str(e.value) and disk.failures
    assert "0 B free" in str(e.value) and temp_files_left(tmp_path) == []


def test_ctrl_c_during_the_probe_keeps_a_full_round(monkeypatch, tmp_path):
    """Interrupted after every candidate was timed once: that round is cached, and the next
    run chooses from it without measuring again. Interrupted before: nothing is cached."""
    import pytest
    monkeypatch.setenv("HW0_CACHE", str(tmp_path / "cache"))
    cpu, calls = torch.device("cpu"), []
    windows = {"n": 0}

    def make_timer(device, cfg, precision, compile_mode):
        calls.append(precision)

        def window():
            windows["n"] += 1
            if windows["n"] > stop_after:
                raise KeyboardInterrupt
            return {"fp32": 100.0, "bf16": 150.0}[precision]
        return window
    monkeypatch.setattr(probe, "make_timer", make_timer)
    cfg = make_config(width=16, device="cpu", compile=False)
    stop_after = 1  # only fp32 timed: not a usable probe
    with pytest.raises(KeyboardInterrupt):
        probe.choose_execution(cfg, cpu)
    assert not (tmp_path / "cache" / probe.PROBE_FILE).exists()
    windows["n"], stop_after = 0, 3  # a full round and one more window
    with pytest.raises(KeyboardInterrupt):
        probe.choose_execution(cfg, cpu)
    ex = probe.choose_execution(cfg, cpu)
    assert ex.probe["cached"] and ex.precision == "bf16"
    assert ex.probe["images_per_s"] == {"fp32/eager": 100.0, "bf16/eager": 150.0}
