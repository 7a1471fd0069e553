import dataclasses
import json
import math

import numpy as np
import pytest
import torch

from hw0cli import runs, store
from hw0cli.errors import Hw0Error, Hw0UsageError
from hw0cli.train.augment import augment_batch, parse_augment
from hw0cli.train.config import TrainConfig, make_config, recipe_settings, run_id_for, validate
from hw0cli.train.parts import lr_at, noisy_labels
from hw0cli.train.run import run_train
from tests.helpers import InterruptAt, tiny_config

tiny = tiny_config


# ---- pure pieces -----------------------------------------------------------------------------

def test_label_noise_statistics():
    y = np.random.default_rng(0).integers(0, 10, 50_000)
    used, mask = noisy_labels(y, 0.5, seed=3)
    assert abs(mask.mean() - 0.5) < 0.01  # redrawn with probability p
    changed = (used != y).mean()
    assert abs(changed - 0.5 * 0.9) < 0.01  # a redraw keeps the label 1 time in 10
    assert np.array_equal(used[~mask], y[~mask])
    assert np.bincount(used[mask], minlength=10).min() > 0.09 * mask.sum()  # uniform draws
    again, mask2 = noisy_labels(y, 0.5, seed=3)
    assert np.array_equal(used, again) and np.array_equal(mask, mask2)  # fixed by (seed, p)
    assert not np.array_equal(used, noisy_labels(y, 0.5, seed=4)[0])
    full, m1 = noisy_labels(y, 1.0, seed=0)
    assert m1.all() and abs((full != y).mean() - 0.9) < 0.01
    assert np.array_equal(noisy_labels(y, 0.0, seed=0)[0], y)


def test_schedules():
    assert lr_at(500, 1000, 0.1, "constant") == 0.1
    assert lr_at(499, 1000, 0.1, "step") == 0.1
    assert lr_at(500, 1000, 0.1, "step") == pytest.approx(0.01)
    assert lr_at(750, 1000, 0.1, "step") == pytest.approx(0.001)
    assert lr_at(0, 1000, 0.1, "cosine") == pytest.approx(0.1)
    assert lr_at(500, 1000, 0.1, "cosine") == pytest.approx(0.05)
    assert lr_at(0, 1000, 0.1, "onecycle") == pytest.approx(0.01)
    assert lr_at(250, 1000, 0.1, "onecycle") == pytest.approx(0.1)
    assert lr_at(1000, 1000, 0.1, "onecycle") == pytest.approx(0.0)


def test_flip_and_crop_augmentation_per_pixel():
    x = torch.arange(2 * 3 * 32 * 32, dtype=torch.float32).reshape(2, 3, 32, 32)
    yes_no = torch.tensor([True, False])
    h = augment_batch(x, yes_no, None, None)
    assert torch.equal(h[0, :, :, 0], x[0, :, :, 31]) and torch.equal(h[1], x[1])
    v = augment_batch(x, None, yes_no, None)
    assert torch.equal(v[0, :, 0, :], x[0, :, 31, :]) and torch.equal(v[1], x[1])
    # offset (4, 4) is the identity; (0, 0) moves the image 4 down and right (zero border)
    c = augment_batch(x, None, None, torch.tensor([[4, 4], [0, 0]]))
    assert torch.equal(c[0], x[0])
    assert torch.equal(c[1, :, 4:, 4:], x[1, :, :28, :28]) and (c[1, :, :4, :] == 0).all()


def test_parse_augment_and_validation_messages():
    assert parse_augment("hflip+crop") == ("hflip", "crop")
    assert parse_augment("none") == ()
    with pytest.raises(Hw0UsageError, match="Unknown augmentation"):
        parse_augment("rotate")
    for bad, msg in [(dict(width=0), "--width"), (dict(noise=1.5), "--noise"),
                     (dict(epochs=0), "--epochs"), (dict(batch_size=0), "--batch-size"),
                     (dict(batch_size=60_000), "--batch-size"), (dict(lr=0.0), "--lr"),
                     (dict(optimizer="rmsprop"), "optimizer"), (dict(schedule="exp"), "schedule"),
                     (dict(train_samples=0), "--train-samples"),
                     (dict(train_samples=50_001), "--train-samples")]:
        with pytest.raises(Hw0UsageError, match=msg):
            validate(TrainConfig(**bad))


def test_run_id_is_stable_and_config_derived():
    a, b = TrainConfig(width=4), TrainConfig(width=4)
    assert run_id_for(a) == run_id_for(b)
    assert run_id_for(a) != run_id_for(TrainConfig(width=4, seed=1))
    assert run_id_for(a) == run_id_for(TrainConfig(width=4, device="cpu", out="elsewhere"))


def test_fast_recipe_scales_lr_and_logits_below_the_tuned_width():
    """Narrower nets get lr and logit scale x sqrt(64 / c), at most x2; at the narrow end
    (x2, c <= 16) the batch halves and the lr follows it by sqrt(1/2); width 64 (where the
    recipe was measured on the GPU) and wider keep the tuned values; page is the same at
    every width."""
    at = {w: make_config("fast", width=w) for w in (1, 4, 16, 17, 32, 64, 256)}
    half = 0.5 ** 0.5
    assert [(at[w].lr, at[w].logit_scale, at[w].batch_size) for w in (1, 4, 16, 64, 256)] == [
        (round(0.8 * half, 4), 0.25, 256)] * 3 + [(0.4, 0.125, 512)] * 2
    assert at[32].lr == pytest.approx(0.4 * 2 ** 0.5, abs=1e-4) and at[32].batch_size == 512
    assert at[17].batch_size == 512 and at[17].lr == pytest.approx(0.4 * (64 / 17) ** 0.5,
                                                                   abs=1e-4)
    assert make_config("fast", width=16, batch_size=512).batch_size == 512
    # the narrow end's filters take Muon's step, its lr falling from the start, with GELU and
    # BatchNorm's shifts alone trained, at 8x the lr; wider: SGD, ReLU, BatchNorm as torch's
    assert [(at[w].optimizer, at[w].muon_lr, at[w].warmup, at[w].activation,
             at[w].freeze_bn_scale, at[w].bn_bias_lr) for w in (4, 16, 17, 64)] == [
        ("muon", 0.1, 0.02, "gelu", True, 8.0)] * 2 + [
        ("sgd", TrainConfig.muon_lr, 5 / 24, "relu", False, 1.0)] * 2
    assert make_config("fast", width=16, optimizer="sgd").optimizer == "sgd"
    assert make_config("fast", width=16, activation="relu").activation == "relu"
    assert all(c.epochs == at[64].epochs and c.momentum == 0.9 for c in at.values())
    assert make_config("fast", width=16, lr=0.3).lr == 0.3  # explicit options still win
    assert make_config("fast", width=16, logit_scale=1.0).logit_scale == 1.0
    assert make_config("page", width=16).lr == make_config("page").lr == 0.4
    with pytest.raises(Hw0UsageError, match="--width"):  # refused by the checks, not math
        validate(make_config("fast", width=-3))


def test_fast_recipe_is_shorthand_with_overrides():
    cfg = make_config("fast", lr=0.05)
    fast = recipe_settings("fast")
    assert cfg.momentum == fast["momentum"] and cfg.schedule == fast["schedule"]
    assert cfg.lr == 0.05 and cfg.recipe == "fast"
    assert make_config("notebook") == TrainConfig()


# ---- training --------------------------------------------------------------------------------

def test_training_learns_and_stores_everything(cifar_root, tmp_path):
    res = run_train(tiny(cifar_root, tmp_path, epochs=4))
    assert res.status == "finished"
    assert res.test_err < 0.5  # chance is 0.9 on this 10-class task
    rec = store.read_h5(res.path)
    a = rec.attrs
    assert a["schema_version"] == store.SCHEMA_VERSION and a["status"] == "finished"
    assert a["config"]["width"] == 4 and a["env"]["torch"] == torch.__version__
    assert a["precision"] == "fp32" and a["epochs_done"] == 4
    h = rec.group("history")
    assert h["epoch"].tolist() == [1, 2, 3, 4]
    assert h["test_err"][-1] < h["test_err"][0] or h["test_err"][0] < 0.5
    assert set(rec.group("labels")) >= {"train_used", "noise_mask"}
    assert set(a["test_acc_views"]) == {"original", "vflip"}
    # weights load with no pickle and reproduce the stored test error
    model, _ = runs.load_model(res.path)
    from hw0cli.data import load_cifar10
    d = load_cifar10(cifar_root)
    with torch.no_grad():
        pred = model(torch.from_numpy(np.array(d.test_x)).float() / 255).argmax(1).numpy()
    assert abs((pred != d.test_y).mean() - res.test_err) < 1e-9


def test_label_noise_is_saved_and_test_labels_untouched(cifar_root, tmp_path):
    res = run_train(tiny(cifar_root, tmp_path, noise=1.0, epochs=1))
    rec = store.read_h5(res.path)
    used, mask = rec.arrays["labels/train_used"], rec.arrays["labels/noise_mask"]
    true = rec.arrays["labels/train_true"]
    assert mask.all() and rec.attrs["realized_noise"] == pytest.approx((used != true).mean())
    assert 0.8 < res.realized_noise < 0.97


@pytest.mark.parametrize("optimizer", ["sgd", "muon"])
def test_resume_equals_uninterrupted(cifar_root, tmp_path, optimizer):
    cfg = tiny(cifar_root, tmp_path / "a", momentum=0.9, augment="hflip+crop",
               schedule="cosine", optimizer=optimizer)
    full = run_train(cfg)

    cfg_b = tiny(cifar_root, tmp_path / "b", momentum=0.9, augment="hflip+crop",
                 schedule="cosine", optimizer=optimizer)
    with pytest.raises(Hw0Error, match="Interrupted") as e:
        run_train(cfg_b, reporter=InterruptAt(2))
    assert e.value.exit_code == 130
    mid = store.read_h5(runs.run_path(tmp_path / "b", run_id_for(cfg_b)), attrs_only=True)
    assert mid.attrs["status"] == "interrupted" and mid.attrs["epochs_done"] == 2
    resumed = run_train(TrainConfig(**{**cfg_b.__dict__, "resume": True}))
    assert resumed.status == "finished" and resumed.epochs_done == 3
    wa = store.read_h5(full.path).group("weights")
    wb = store.read_h5(resumed.path).group("weights")
    for k in wa:
        np.testing.assert_array_equal(wa[k], wb[k], err_msg=k)
    assert resumed.test_err == full.test_err


def test_finished_run_is_not_retrained(cifar_root, tmp_path):
    cfg = tiny(cifar_root, tmp_path, epochs=1)
    first = run_train(cfg)
    mtime = first.path.stat().st_mtime_ns
    again = run_train(cfg)
    assert again.status == "skipped" and first.path.stat().st_mtime_ns == mtime
    forced = run_train(TrainConfig(**{**cfg.__dict__, "force": True}))
    assert forced.status == "finished" and first.path.stat().st_mtime_ns != mtime


def test_resume_errors(cifar_root, tmp_path):
    with pytest.raises(Hw0UsageError, match="no run"):
        run_train(tiny(cifar_root, tmp_path, resume=True))
    run_train(tiny(cifar_root, tmp_path, epochs=1, run_id="mine"))
    with pytest.raises(Hw0UsageError, match="different configuration"):
        run_train(tiny(cifar_root, tmp_path, epochs=2, run_id="mine"))


def test_divergence_keeps_last_good_checkpoint(cifar_root, tmp_path):
    cfg = tiny(cifar_root, tmp_path, lr=1e12, batchnorm=False, epochs=3)
    with pytest.raises(Hw0Error, match="diverged") as e:
        run_train(cfg)
    assert e.value.exit_code == 1
    rec = store.read_h5(runs.run_path(tmp_path, run_id_for(cfg)))
    assert rec.attrs["status"] == "diverged"
    assert all(np.isfinite(w).all() for w in rec.group("weights").values())
    assert len(rec.group("history")["epoch"]) == rec.attrs["epochs_done"]


def test_until_train_error_stops_early(cifar_root, tmp_path):
    res = run_train(tiny(cifar_root, tmp_path, epochs=30, until_train_error=0.2,
                         optimizer="adam", lr=3e-3))
    assert res.reached_train_error_epoch is not None and res.epochs_done < 30
    h = store.read_h5(res.path).group("history")
    assert h["train_eval_err"][-1] <= 0.2
    # measured (not NaN) from the first epoch whose running error came within 10 points
    gate = np.nonzero(h["train_err"] <= 0.2 + 0.10)[0][0]
    assert not np.isnan(h["train_eval_err"][gate:]).any()
    assert res.epochs_done == h["epoch"][-1] == gate + 1 + np.argmax(
        h["train_eval_err"][gate:] <= 0.2)


def test_bf16_autocast_path_runs_on_cpu(cifar_root, tmp_path):
    res = run_train(tiny(cifar_root, tmp_path, precision="bf16", epochs=1))
    assert res.precision == "bf16" and math.isfinite(res.test_loss)



def test_init_recorded_and_used(cifar_root, tmp_path):
    from hw0cli.data import load_cifar10
    from hw0cli.train.trainer import Trainer
    cfg = tiny_config(cifar_root, tmp_path, epochs=1, init="orthogonal", init_scale=0.5)
    tr = Trainer(cfg, load_cifar10(cifar_root), torch.device("cpu"), "fp32", None)
    first = tr.model[0].weight.detach().reshape(4, -1)  # before any step
    gain = torch.nn.init.calculate_gain("relu") * 0.5
    assert torch.allclose(first @ first.T, gain**2 * torch.eye(4), atol=1e-5)
    res = run_train(cfg)
    stored = store.read_h5(res.path, attrs_only=True).attrs["config"]
    assert (stored["init"], stored["init_scale"]) == ("orthogonal", 0.5)


# ---- resume keeps its execution; divergence; inputs beyond what the machine holds -------------

def test_resume_keeps_the_recorded_precision(cifar_root, tmp_path, monkeypatch):
    """--precision auto, killed after epoch 2, resumed after the probe's verdict flipped: the
    run continues in the precision its file records and ends bit for bit where the
    uninterrupted run does."""
    from hw0cli.train import probe
    cache = tmp_path / "cache"
    monkeypatch.setenv("HW0_CACHE", str(cache))
    speeds = {"fp32": 200.0, "bf16": 100.0}  # the probe's figures, images/s
    monkeypatch.setattr(probe, "make_timer", lambda dev, cfg, prec, mode: lambda: speeds[prec])
    cfg_a = tiny(cifar_root, tmp_path / "a", precision="auto", momentum=0.9)
    full = run_train(cfg_a)
    assert full.precision == "fp32"
    cfg_b = dataclasses.replace(cfg_a, out=tmp_path / "b")
    with pytest.raises(Hw0Error, match="Interrupted"):
        run_train(cfg_b, reporter=InterruptAt(2))
    # the cache's verdict flips (as a probe under load did): bf16 now wins
    figures = json.loads((cache / probe.PROBE_FILE).read_text())
    for f in figures.values():
        f["fp32/eager"], f["bf16/eager"] = f["bf16/eager"], f["fp32/eager"]
    (cache / probe.PROBE_FILE).write_text(json.dumps(figures))
    assert probe.choose_execution(cfg_b, torch.device("cpu")).precision == "bf16"
    resumed = run_train(cfg_b)
    assert resumed.status == "finished" and resumed.resumed_from == 2
    rec = store.read_h5(resumed.path)
    assert resumed.precision == rec.attrs["precision"] == "fp32"
    assert rec.attrs["execution"]["precision"] == "fp32"
    wa = store.read_h5(full.path).group("weights")
    for k, v in rec.group("weights").items():
        np.testing.assert_array_equal(wa[k], v, err_msg=k)
    assert resumed.test_err == full.test_err


def test_resume_refuses_another_execution(cifar_root, tmp_path):
    cfg = tiny(cifar_root, tmp_path, precision="fp32", compile=False)
    with pytest.raises(Hw0Error, match="Interrupted"):
        run_train(cfg, reporter=InterruptAt(1))
    for change, flag in (({"precision": "bf16"}, "with --precision bf16 would not"),
                         ({"compile": True}, "with --compile would not")):
        with pytest.raises(Hw0UsageError, match=flag) as e:
            run_train(dataclasses.replace(cfg, **change))
        assert e.value.exit_code == 2 and "--force" in str(e.value)
    # asking for what the file records, or for auto, continues the run
    res = run_train(dataclasses.replace(cfg, precision="auto", compile=None))
    assert res.status == "finished" and res.precision == "fp32" and res.compile_mode is None


@pytest.mark.parametrize("overrides", [
    {"lr": 1e6},  # BatchNorm keeps the loss finite; its running variances overflow
    {"init_scale": 1e30},  # NaN loss in epoch 1: the checkpoint of epoch 0 is kept
    {"init_scale": 1e30, "optimizer": "adam", "lr": 1e-3},  # finite loss, infinite statistics
])
def test_divergence_stops_and_keeps_an_all_finite_checkpoint(cifar_root, tmp_path, overrides):
    cfg = tiny(cifar_root, tmp_path, **overrides)
    with pytest.raises(Hw0Error, match="diverged in epoch") as e:
        run_train(cfg)
    assert e.value.exit_code == 1
    rec = store.read_h5(runs.run_path(tmp_path, run_id_for(cfg)))
    assert rec.attrs["status"] == "diverged"
    kept = rec.attrs["epochs_done"]
    assert f"diverged in epoch {kept + 1} " in str(e.value)
    assert f"the checkpoint of epoch {kept} " in str(e.value)
    for name, arr in rec.arrays.items():
        if name.startswith(("weights/", "optim/")):
            assert np.isfinite(arr).all(), name
    assert len(rec.group("history")["epoch"]) == kept


def test_initial_weights_that_overflow_are_refused(cifar_root, tmp_path):
    with pytest.raises(Hw0UsageError, match="--init-scale") as e:
        run_train(tiny(cifar_root, tmp_path, init_scale=1e40))
    assert "not finite" in str(e.value)


def test_resuming_a_file_with_weights_of_another_width(cifar_root, tmp_path):
    c4, c8 = tiny(cifar_root, tmp_path, width=4), tiny(cifar_root, tmp_path, width=8)
    for c in (c4, c8):
        with pytest.raises(Hw0Error, match="Interrupted"):
            run_train(c, reporter=InterruptAt(1))
    p4, p8 = (runs.run_path(tmp_path, run_id_for(c)) for c in (c4, c8))
    other = {k: v for k, v in store.read_h5(p8).arrays.items()
             if k.startswith(("weights/", "optim/"))}
    store.update_h5(p4, arrays=other, delete=("weights", "optim"))
    with pytest.raises(Hw0UsageError, match="do not fit the width-4 Myrtle5") as e:
        run_train(c4)
    assert "--force" in str(e.value)


def test_seeds_are_bounded_by_the_generators_range(cifar_root, tmp_path):
    from hw0cli.choices import MAX_SEED
    from hw0cli.train.augment import epoch_draws
    with pytest.raises(Hw0UsageError, match=f"--seed must be in \\[0, {MAX_SEED}\\]"):
        validate(tiny(cifar_root, tmp_path, seed=MAX_SEED + 1))
    with pytest.raises(Hw0UsageError, match="--seed"):
        validate(tiny(cifar_root, tmp_path, seed=99999999999999999999))
    validate(tiny(cifar_root, tmp_path, seed=MAX_SEED))
    # every generator takes the largest seed, in the last epoch of a long run too
    d = epoch_draws(100, MAX_SEED, 10_000, ("hflip", "crop"), torch.device("cpu"), 8)
    assert len(d.perm) == 100
    assert len(noisy_labels(np.zeros(50, np.int64), 0.5, MAX_SEED)[0]) == 50


@pytest.mark.parametrize("run_id", ["-x", "--force", "-"])
def test_run_ids_may_not_look_like_options(cifar_root, tmp_path, run_id):
    with pytest.raises(Hw0UsageError, match="may not start with '-'"):
        validate(tiny(cifar_root, tmp_path, run_id=run_id))
