"""The device-side trainer: the whole step as one compiled graph, static shapes, checkpoints
that survive SIGKILL, and the pieces of Page's recipe (cutout, reflect crops, normalization)."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch._dynamo.utils import counters

from hw0cli import runs, store
from hw0cli.data import load_cifar10
from hw0cli.errors import Hw0Error
from hw0cli.models import CIFAR_MEAN, CIFAR_STD, make_cnn
from hw0cli.train.augment import augment_batch, cutout_mask, epoch_draws, pad_source
from hw0cli.train.config import make_config, run_id_for
from hw0cli.train.parts import FirstCalls, lr_at
from hw0cli.train.run import run_train
from hw0cli.train.trainer import Trainer, whole_step_capturable
from hw0cli.views import to_input
from tests.helpers import tiny_config

ROOT = Path(__file__).resolve().parents[2]


def compiled_trainer(cifar_root, tmp_path, recipe="notebook", **overrides) -> Trainer:
    cfg = make_config(recipe, **{**dict(width=4, epochs=3, batch_size=64, train_samples=500,
                                        data_dir=cifar_root, out=tmp_path, device="cpu",
                                        precision="fp32"), **overrides})
    return Trainer(cfg, load_cifar10(cifar_root), torch.device("cpu"), "fp32", "default")


@pytest.mark.slow
@pytest.mark.parametrize("recipe,extra", [("notebook", {}), ("fast", {}),
                                          ("fast", {"whiten": True, "alternate_flip": True,
                                                    "crop_pad": 2}),
                                          ("notebook", {"objective": "worst-view"}),
                                          ("fast", {"dirac": True, "activation": "gelu",
                                                    "freeze_bn_scale": True,
                                                    "bn_bias_lr": 64.0, "lookahead": True}),
                                          ("page", {"optimizer": "adam", "lr": 1e-3}),
                                          ("fast", {"optimizer": "muon", "muon_lr": 0.1})])
def test_whole_step_is_one_graph(cifar_root, tmp_path, recipe, extra):
    """fullgraph=True: a graph break anywhere in the step (gather, augmentation, forward, loss,
    backward, optimizer, metrics) raises instead of splitting the step."""
    assert whole_step_capturable()
    tr = compiled_trainer(cifar_root, tmp_path, recipe, **extra)
    assert tr.fullgraph
    torch._dynamo.reset()
    counters.clear()
    before = [p.detach().clone() for p in tr.params]
    tr.train_epoch(1, max_steps=2)
    assert counters["stats"]["unique_graphs"] == 1  # one graph for the whole step
    assert all(not torch.equal(a, p) for a, p in zip(before, tr.params, strict=True))
    assert all(p.grad is None for p in tr.params)
    assert int(tr.k) == 2 and int(tr.pos) == 2 * tr.cfg.batch_size


class GraphCounts:
    """Records torch.compile's unique-graph count after every epoch of a run."""

    def __init__(self) -> None:
        self.after: list[int] = []

    def on_start(self, info: dict) -> None:
        pass

    def on_step(self, *args: object) -> None:
        pass

    def on_epoch(self, row: dict) -> None:
        self.after.append(counters["stats"]["unique_graphs"])


@pytest.mark.slow
def test_no_new_graph_after_the_first_epoch(cifar_root, tmp_path):
    """500 images in batches of 64: seven full steps and a remainder of 52 (run eagerly);
    a test evaluation with flip TTA every epoch (eager), the full-train and upside-down
    evaluations at the end: one graph, compiled in epoch 1, nothing new later."""
    cfg = tiny_config(cifar_root, tmp_path, batch_size=64, compile=True, compile_mode="default",
                      tta=True, until_train_error=0.0)
    torch._dynamo.reset()
    counters.clear()
    seen = GraphCounts()
    res = run_train(cfg, reporter=seen)
    assert res.epochs_done == 3 and len(seen.after) == 3
    assert seen.after[0] == 1  # the full step; remainder and evaluation run eagerly
    assert seen.after[-1] == seen.after[0]
    ex = store.read_h5(res.path, attrs_only=True).attrs["execution"]
    assert ex["compile_mode"] == "default" and ex["whole_step_graph"] is True
    assert res.one_time_s > 0


@pytest.mark.slow
def test_compiled_resume_equals_uninterrupted(cifar_root, tmp_path):
    from tests.helpers import InterruptAt

    kw = dict(batch_size=64, compile=True, compile_mode="default", momentum=0.9,
              augment="hflip+crop", cutout=4, pad_mode="reflect", ema=0.9, whiten=True,
              alternate_flip=True, crop_pad=2, lookahead=True, bn_bias_lr=8.0,
              freeze_bn_scale=True, dirac=True)
    full = run_train(tiny_config(cifar_root, tmp_path / "a", **kw))
    cfg_b = tiny_config(cifar_root, tmp_path / "b", **kw)
    with pytest.raises(Hw0Error, match="Interrupted"):
        run_train(cfg_b, reporter=InterruptAt(1))
    resumed = run_train(cfg_b)
    assert resumed.epochs_done == 3 and resumed.resumed_from == 1
    wa = store.read_h5(full.path).group("weights")
    wb = store.read_h5(resumed.path).group("weights")
    for k in wa:
        np.testing.assert_array_equal(wa[k], wb[k], err_msg=k)


KILLED_CHILD = """
import os, sys, time
from pathlib import Path
from hw0cli import store
flag = Path(sys.argv[3])
real_fill, real_write, stall = store._fill, os.write, []
def slow_fill(f, attrs, arrays):  # the file of the epoch-1 checkpoint, built in memory ...
    real_fill(f, attrs, arrays)
    stall.extend([1] if attrs.get("epochs_done") == 1 else [])
def slow_write(fd, data):  # ... stalls half-way onto the disk
    if not stall:
        return real_write(fd, data)
    n = real_write(fd, bytes(data[:len(data) // 2]))
    flag.write_text("writing")
    time.sleep(120)
    return n
store._fill, os.write = slow_fill, slow_write
from hw0cli.train import run_train
from tests.helpers import tiny_config
run_train(tiny_config(Path(sys.argv[1]), Path(sys.argv[2]), epochs=3))
"""


@pytest.mark.slow
def test_sigkill_during_a_checkpoint_write_leaves_a_resumable_file(cifar_root, tmp_path):
    flag = tmp_path / "writing"
    child = subprocess.Popen([sys.executable, "-c", KILLED_CHILD, str(cifar_root),
                              str(tmp_path / "killed"), str(flag)], cwd=ROOT,
                             env={**os.environ, "PYTHONPATH": str(ROOT)})
    deadline = time.time() + 600  # generous: a loaded CI machine imports torch slowly
    while not flag.exists() and child.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    assert flag.exists(), "the child never reached its epoch-1 checkpoint"
    os.kill(child.pid, signal.SIGKILL)
    child.wait()
    cfg = tiny_config(cifar_root, tmp_path / "killed", epochs=3)
    path = runs.run_path(cfg.out, run_id_for(cfg))
    assert list(path.parent.glob(f".{path.name}.tmp*")), "the kill did not land mid-write"
    rec = store.read_h5(path)  # the previous complete checkpoint: epoch 0
    assert rec.attrs["status"] == "running" and rec.attrs["epochs_done"] == 0
    resumed = run_train(cfg)
    assert resumed.status == "finished" and resumed.epochs_done == 3
    assert not list(path.parent.glob(f".{path.name}.tmp*"))  # the stale half-file is gone
    full = run_train(tiny_config(cifar_root, tmp_path / "full", epochs=3))
    wa, wb = (store.read_h5(r.path).group("weights") for r in (full, resumed))
    for k in wa:
        np.testing.assert_array_equal(wa[k], wb[k], err_msg=k)


def test_background_writer_reports_a_failed_write(tmp_path):
    w = store.BackgroundWriter()
    (tmp_path / "a_file").write_text("not a folder")
    w.submit(tmp_path / "a_file" / "x.h5", {"a": 1}, {"d": np.zeros(3)})
    with pytest.raises(Hw0Error, match="Cannot create output folder"):
        w.wait()
    w.wait()  # reported once
    w.submit(tmp_path / "ok.h5", {"a": 1}, {"d": np.arange(3)})
    w.wait()
    assert store.read_h5(tmp_path / "ok.h5").arrays["d"].tolist() == [0, 1, 2]


# ---- Page's ingredients ----------------------------------------------------------------------

def test_cutout_masks_one_square_per_image_from_the_seed():
    d = epoch_draws(64, seed=3, epoch=2, ops=(), device=torch.device("cpu"), cutout=8)
    again = epoch_draws(64, seed=3, epoch=2, ops=(), device=torch.device("cpu"), cutout=8)
    assert torch.equal(d.cut, again.cut)  # fixed by (seed, epoch)
    assert not torch.equal(d.cut, epoch_draws(64, 4, 2, (), torch.device("cpu"), 8).cut)
    m = cutout_mask(d.cut, 8)[:, 0]
    assert m.shape == (64, 32, 32) and (m.sum((1, 2)) == 64).all()  # exactly k x k each
    for i in range(64):
        rows, cols = np.nonzero(m[i].numpy())
        assert rows.max() - rows.min() == 7 and cols.max() - cols.min() == 7  # one square
        assert (rows.min(), cols.min()) == tuple(d.cut[i].tolist())
    assert d.cut.min() >= 0 and d.cut.max() <= 24  # inside the image, as Page draws it
    # with no cutout the earlier draws are unchanged (runs keep their randomness)
    plain = epoch_draws(64, 3, 2, ("hflip", "crop"), torch.device("cpu"))
    with_cut = epoch_draws(64, 3, 2, ("hflip", "crop"), torch.device("cpu"), cutout=8)
    assert torch.equal(plain.perm, with_cut.perm) and torch.equal(plain.shift, with_cut.shift)


def test_reflect_crop_matches_numpy_pad():
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (5, 3, 32, 32), dtype=np.uint8)
    shift = rng.integers(0, 9, (5, 2))
    got = augment_batch(torch.from_numpy(x), None, None, torch.from_numpy(shift), "reflect")
    padded = np.pad(x, ((0, 0), (0, 0), (4, 4), (4, 4)), mode="reflect")
    for i, (r, c) in enumerate(shift):
        np.testing.assert_array_equal(got[i].numpy(), padded[i, :, r:r + 32, c:c + 32])
    zeros = augment_batch(torch.from_numpy(x), None, None, torch.from_numpy(shift), "zeros")
    padded0 = np.pad(x, ((0, 0), (0, 0), (4, 4), (4, 4)))
    for i, (r, c) in enumerate(shift):
        np.testing.assert_array_equal(zeros[i].numpy(), padded0[i, :, r:r + 32, c:c + 32])
    assert pad_source(4, 2, "reflect").tolist() == [2, 1, 0, 1, 2, 3, 2, 1]


def test_normalization_matches_numpy_reference():
    rng = np.random.default_rng(1)
    x = rng.integers(0, 256, (4, 3, 32, 32), dtype=np.uint8)
    model = make_cnn(4, normalize=True)
    got = model.normalize(to_input(torch.from_numpy(x))).numpy()
    want = (x / 255.0 - np.array(CIFAR_MEAN)[:, None, None]) / np.array(CIFAR_STD)[:, None, None]
    np.testing.assert_allclose(got, want, atol=1e-5)
    assert "normalize.mean" not in model.state_dict()  # constants, not saved weights


def test_triangle_schedule_is_pages_piecewise_linear():
    lrs = [lr_at(s, 240, 0.4, "triangle", warmup=5 / 24) for s in range(241)]
    assert lrs[0] == 0.0 and lrs[50] == pytest.approx(0.4) and lrs[240] == 0.0
    assert lrs[25] == pytest.approx(0.2) and lrs[145] == pytest.approx(0.2)


@pytest.mark.slow
def test_page_model_exports_and_matches_torch(cifar_root, tmp_path):
    from hw0cli.export import ensure_onnx

    cfg = tiny_config(cifar_root, tmp_path, epochs=1, whiten=True, alternate_flip=True, **{
        k: v for k, v in make_config("page").__dict__.items()
        if k in ("bias", "logit_scale", "normalize", "cutout", "pad_mode", "augment")})
    res = run_train(cfg)
    model, _ = runs.load_model(res.path)
    assert model.logit_scale.factor == 0.125 and getattr(model, "0").bias is None
    w = getattr(model, "0").weight  # the frozen whitening filters are stored and loaded
    assert torch.equal(w[2:4], -w[:2])  # width 4: two +- pairs
    _, diff, reused = ensure_onnx(res.path)
    assert not reused and diff < 1e-4


def test_notebook_run_ids_and_old_files_unchanged(cifar_root, tmp_path):
    """The run id of a course-recipe run is the hash of the original 19 fields; a run file
    without the newer config keys (as older hw0 wrote them) loads and is reported finished."""
    import hashlib
    import json
    cfg = tiny_config(cifar_root, tmp_path, epochs=1)
    legacy = ("width", "noise", "epochs", "batch_size", "lr", "momentum", "nesterov",
              "weight_decay", "optimizer", "schedule", "augment", "label_smoothing",
              "objective", "tta", "train_samples", "batchnorm", "seed", "until_train_error",
              "patience")
    digest = hashlib.sha256(json.dumps({k: getattr(cfg, k) for k in legacy},
                                       sort_keys=True).encode()).hexdigest()[:8]
    assert run_id_for(cfg) == f"c4-p0-e1-s0-{digest}"
    assert run_id_for(make_config("page", width=4)) != run_id_for(make_config(width=4))
    res = run_train(cfg)
    rec = store.read_h5(res.path)
    old_config = {k: v for k, v in rec.attrs["config"].items()
                  if k in (*legacy, "eval_every", "recipe", "device", "precision", "compile",
                           "compile_mode", "data_dir", "out", "run_id", "resume", "force")}
    store.update_h5(res.path, attrs={"config": old_config}, delete=("execution",))
    assert run_train(cfg).status == "skipped"
    model, _ = runs.load_model(res.path)
    x = torch.from_numpy(np.array(load_cifar10(cifar_root).test_x[:8]))
    assert torch.equal(model(to_input(x)).argmax(1), model(x.float() / 255).argmax(1))
    assert F.softmax(model(to_input(x)), 1).shape == (8, 10)


def test_ema_is_the_moving_average_of_the_weights(cifar_root, tmp_path):
    cfg = tiny_config(cifar_root, tmp_path, ema=0.9, momentum=0.9)
    tr = Trainer(cfg, load_cifar10(cifar_root), torch.device("cpu"), "fp32", None)
    tr.load_draws(1)
    ref = [p.detach().clone() for p in tr.params]  # the average starts at the initial weights
    for t in range(3):
        tr.step_fn(cfg.batch_size)()
        d = min(0.9, (1 + t) / (10 + t))
        ref = [r + (1 - d) * (p.detach() - r) for r, p in zip(ref, tr.params, strict=True)]
    ema = list(tr.ema_model.parameters())
    for r, e, p in zip(ref, ema, tr.params, strict=True):
        torch.testing.assert_close(e, r, atol=1e-6, rtol=1e-5)
        assert not torch.equal(e, p)
    for b_ema, b in zip(tr.ema_model.buffers(), tr.model.buffers(), strict=True):
        assert torch.equal(b_ema, b)  # BatchNorm statistics are the trained model's
    arrays, _ = tr.state_arrays()  # weights/ is what is evaluated; train_weights/ resumes
    np.testing.assert_array_equal(arrays["weights/0.weight"], ema[0].numpy())
    np.testing.assert_array_equal(arrays["train_weights/0.weight"], tr.params[0].detach().numpy())


@pytest.mark.slow
@pytest.mark.parametrize("recipe,extra", [("fast", {}),
                                          ("page", {"optimizer": "adam", "lr": 1e-3}),
                                          ("fast", {"optimizer": "muon", "muon_lr": 0.1})])
def test_compiled_step_matches_eager(cifar_root, tmp_path, recipe, extra):
    """The whole-step graph computes what the eager step computes (weight decay, Nesterov,
    Adam, label smoothing, augmentation), to float rounding, over three updates."""
    kw = dict(width=4, epochs=3, batch_size=64, train_samples=500, data_dir=cifar_root,
              out=tmp_path, device="cpu", precision="fp32", warmup=0.01, **extra)
    data = load_cifar10(cifar_root)
    trs = [Trainer(make_config(recipe, **kw), data, torch.device("cpu"), "fp32", mode)
           for mode in ("default", None)]
    init = [p.detach().clone() for p in trs[1].params]
    for tr in trs:
        tr.load_draws(1)
        for _ in range(3):
            tr.step_fn(64)()
    moved = max((p - q).abs().max().item() for p, q in zip(trs[1].params, init, strict=True))
    diff = max((p - q).abs().max().item()
               for p, q in zip(trs[0].params, trs[1].params, strict=True))
    # inductor's CPU kernels (BatchNorm backward above all) round differently from eager:
    # gradients differ by ~4e-3 relative, so after three updates the weights differ by a few
    # percent of how far they moved (module-only compilation does the same); the miscompiled
    # weight decay this guards against was off by more than a third of it after one update.
    # Adam's first steps are about lr * sign(grad), so a gradient at noise level may step
    # either way: a looser bound there (a wrong update is ~lr per step)
    bound = (0.3 if extra.get("optimizer") == "adam" else 0.1) * moved
    assert moved > 1e-3 and diff < bound
    assert float(trs[0].loss_sum) == pytest.approx(float(trs[1].loss_sum), rel=1e-4)


@pytest.mark.parametrize(("times", "compiled", "one_time"), [
    ([5.0, 1.2, 1.0, 1.1, 0.9], True, 4.2),  # compile on call 1, CUDA-graph record on call 2
    ([2.0, 1.0], True, 1.0),  # a two-step run: the second call is the steady one
    ([3.0], True, 3.0),  # a lone compiled call: its compile dominates
    ([3.0], False, 0.0),  # a lone eager call (a partial batch in a one-epoch run): all work
])
def test_first_calls_split_one_time_from_steady(times, compiled, one_time):
    fc = FirstCalls(lambda: None, torch.device("cpu"), compiled=compiled)
    fc.times = list(times)
    assert fc.one_time_s == pytest.approx(one_time)


@pytest.mark.slow
def test_one_process_trains_many_compiled_runs(cifar_root, tmp_path, monkeypatch):
    """Every Trainer compiles the same step code: one compile-cache entry per distinct width,
    batch size, augmentation or loss in a process. A process that trains many kinds of run
    (`hw0 all`, a sweep) must not hit Dynamo's recompile limit (8 by default; fullgraph=True
    turns hitting it into an error)."""
    monkeypatch.setattr(torch._dynamo.config, "recompile_limit", 1)
    data = load_cifar10(cifar_root)
    for width in (4, 8, 2):
        cfg = make_config("notebook", width=width, epochs=1, batch_size=64, train_samples=128,
                          data_dir=cifar_root, out=tmp_path, device="cpu")
        tr = Trainer(cfg, data, torch.device("cpu"), "fp32", "default")
        tr.load_draws(1)
        tr.step_fn(64)()


def test_alternate_flip_mirrors_each_image_every_other_epoch():
    ops, cpu = ("hflip", "crop"), torch.device("cpu")
    by_image = []
    for epoch in (1, 2, 3):
        d = epoch_draws(256, 5, epoch, ops, cpu, alternate_flip=True)
        flip = torch.empty(256, dtype=torch.bool)
        flip[d.perm] = d.hflip  # position -> the image it holds
        by_image.append(flip)
        plain = epoch_draws(256, 5, epoch, ops, cpu)  # the other draws are unchanged
        assert torch.equal(d.perm, plain.perm) and torch.equal(d.shift, plain.shift)
    assert torch.equal(by_image[1], ~by_image[0]) and torch.equal(by_image[2], by_image[0])
    assert 0.35 < by_image[0].float().mean() < 0.65  # the first epoch's bits are fair coins
    other = epoch_draws(256, 6, 1, ops, cpu, alternate_flip=True)
    other_flip = torch.empty(256, dtype=torch.bool)
    other_flip[other.perm] = other.hflip
    assert not torch.equal(other_flip, by_image[0])  # drawn from the seed


def test_crop_pad_moves_images_by_up_to_that_many_pixels():
    rng = np.random.default_rng(2)
    x = rng.integers(0, 256, (6, 3, 32, 32), dtype=np.uint8)
    d = epoch_draws(5000, 0, 1, ("crop",), torch.device("cpu"), crop_pad=2)
    assert d.shift.min() == 0 and d.shift.max() == 4  # offsets into the 2-pixel padded image
    shift = d.shift[:6]
    got = augment_batch(torch.from_numpy(x), None, None, shift, "reflect", crop_pad=2)
    padded = np.pad(x, ((0, 0), (0, 0), (2, 2), (2, 2)), mode="reflect")
    for i, (r, c) in enumerate(shift.tolist()):
        np.testing.assert_array_equal(got[i].numpy(), padded[i, :, r:r + 32, c:c + 32])


def test_whitening_filters_decorrelate_patches():
    """The filters' responses on the images they were fitted to have unit variance and no
    correlation (up to the eps that keeps tiny directions finite), top directions first."""
    from hw0cli.models import whitening_filters

    g = torch.Generator().manual_seed(0)
    base = torch.rand(200, 3, 8, 8, generator=g)
    x = F.avg_pool2d(F.interpolate(base, size=32, mode="bilinear"), 3, 1, 1)  # correlated
    filt = whitening_filters(x, pairs=6, eps=1e-6)
    assert filt.shape == (12, 3, 3, 3) and torch.equal(filt[6:], -filt[:6])
    flat = filt[:6].flatten(1)  # signs fixed, not LAPACK's: each largest entry positive
    assert (flat.gather(1, flat.abs().argmax(1, keepdim=True)) > 0).all()
    out = F.conv2d(x.double(), filt[:6].double()).transpose(0, 1).reshape(6, -1)
    cov = torch.cov(out)
    torch.testing.assert_close(cov, torch.eye(6, dtype=torch.float64), atol=1e-3, rtol=0)
    patches = F.unfold(x.double(), 3).transpose(1, 2).reshape(-1, 27)
    raw = torch.linalg.eigvalsh(torch.cov(patches.T)).flip(0)
    # each filter's norm is 1 / sqrt(its direction's variance): largest variance first
    norms = filt[:6].flatten(1).double().norm(dim=1)
    torch.testing.assert_close(norms, raw[:6].rsqrt(), rtol=1e-3, atol=0)


def test_whitened_first_conv_is_frozen_and_trained_past(cifar_root, tmp_path):
    cfg = tiny_config(cifar_root, tmp_path, width=8, whiten=True, normalize=True, ema=0.9,
                      momentum=0.9)
    tr = Trainer(cfg, load_cifar10(cifar_root), torch.device("cpu"), "fp32", None)
    conv = getattr(tr.model, "0")
    assert not conv.weight.requires_grad and all(p is not conv.weight for p in tr.params)
    first = conv.weight.detach().clone()
    assert torch.equal(first[4:8], -first[:4])  # c = 8: four +- pairs
    rest = [p.detach().clone() for p in tr.params]
    tr.load_draws(1)
    for _ in range(2):
        tr.step_fn(cfg.batch_size)()
    assert torch.equal(conv.weight, first)  # no gradient, no weight decay
    assert all(not torch.equal(a, p) for a, p in zip(rest, tr.params, strict=True))
    assert torch.equal(getattr(tr.ema_model, "0").weight, first)


@pytest.mark.parametrize("optimizer", ["sgd", "muon"])
def test_bn_shift_lr_multiplier_scales_its_step_not_its_decay(cifar_root, tmp_path, optimizer):
    """--bn-bias-lr k: a BatchNorm shift moves k times as far on the same gradient, while its
    weight decay per step stays lr * wd * b (airbench's bias_scaler); other weights move as
    without it (under muon too, where the shifts take SGD's step and the filters Muon's)."""
    data = load_cifar10(cifar_root)
    moves = {}
    for k in (1.0, 64.0):
        cfg = tiny_config(cifar_root, tmp_path, weight_decay=0.1, bn_bias_lr=k,
                          optimizer=optimizer)
        tr = Trainer(cfg, data, torch.device("cpu"), "fp32", None)
        bn = getattr(tr.model, "1")
        with torch.no_grad():
            bn.bias.fill_(0.5)  # a nonzero shift, so that its decay shows
        before = [p.detach().clone() for p in tr.params]
        tr.load_draws(1)
        tr.step_fn(cfg.batch_size)()
        moves[k] = {id_: p.detach() - b for id_, (p, b) in enumerate(
            zip(tr.params, before, strict=True))}
        shift = next(i for i, p in enumerate(tr.params) if p is bn.bias)
    lr, wd = 0.05, 0.1
    decay = -lr * wd * 0.5
    # move(k) = -lr (k g + wd b): move(64) - 64 move(1) = (1 - 64) * (-lr wd b)
    torch.testing.assert_close(moves[64.0][shift] - 64 * moves[1.0][shift],
                               torch.full_like(moves[1.0][shift], (1 - 64) * decay),
                               rtol=1e-4, atol=1e-6)
    conv = 0  # the first conv's weight: not a BatchNorm shift
    torch.testing.assert_close(moves[64.0][conv], moves[1.0][conv])
