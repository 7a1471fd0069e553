"""`--precision auto` / `--compile-mode auto`: the measured-fastest candidate, cached, recorded."""

import torch

from hw0cli import probe, store
from hw0cli.train import make_config, run_train
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
