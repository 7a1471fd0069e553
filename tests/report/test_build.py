import numpy as np
import pytest
from pypdf import PdfReader
from typer.testing import CliRunner

from hw0cli import pipeline
from hw0cli.linreg.config import LinregConfig
from hw0cli.linreg.run import run_linreg
from hw0cli.report.build import ReportConfig, run_report
from tests.helpers import write_mnist

runner = CliRunner()

TINY = {
    "description": "test-sized",
    "warmup": [{"width": 2, "epochs": 2, "train_samples": 200, "batch_size": 50,
                "compile": False, "precision": "fp32"}],
    "robust": [{"width": 2, "epochs": 2, "train_samples": 200, "batch_size": 50,
                "augment": "vflip", "compile": False, "precision": "fp32"}],
    "grid": {"widths": (2,), "noises": (0.0, 1.0), "seeds": (0,),
             "train_options": {"train_samples": 200, "batch_size": 50, "epochs": 3,
                               "compile": False, "precision": "fp32"}},
    "linreg": {"method": "all", "n": 60, "gd_iters": 200, "sgd_iters": 200,
               "overparam_iters": 100, "rf_features": (10, 60, 200)},
    "sweep": {"preset": "bn-study", "name": "tiny-study",
              "axes": {"width": (2,), "init": ("default",), "seed": (0,), "lr": (0.05, 1e12)},
              "train_options": {"train_samples": 200, "batch_size": 50, "epochs": 1,
                                "precision": "fp32"}},
}


@pytest.fixture(scope="module")
def data_root(cifar_root, tmp_path_factory):
    write_mnist(cifar_root, n_train=200, n_test=80)  # MNIST beside the synthetic CIFAR
    return cifar_root


@pytest.fixture(scope="module")
def all_done(data_root, tmp_path_factory):
    out = tmp_path_factory.mktemp("all")
    mp = pytest.MonkeyPatch()
    mp.setitem(pipeline.PRESETS, "tiny", TINY)
    res = pipeline.run_all(pipeline.AllConfig(preset="tiny", data_dir=data_root, out=out,
                                              device="cpu"))
    yield res, out, mp
    mp.undo()


def is_blank(png) -> bool:
    import matplotlib.pyplot as plt
    img = plt.imread(png)
    return float(np.std(img[..., :3])) < 1e-3


@pytest.mark.slow
def test_all_runs_every_step_and_writes_the_report(all_done):
    res, out, _ = all_done
    assert [s.status for s in res.steps] == ["done"] * len(res.steps), res.steps
    titles = [s.title for s in res.steps]
    assert titles[0].startswith("Warm-up") and titles[-1].startswith("Problem 3")
    rep = res.report
    assert all(rep.sections.values()), rep.sections
    reader = PdfReader(rep.pdf)
    assert len(reader.pages) == rep.pages >= 6  # figures packed: fewer, fuller pages
    text = "\n".join(p.extract_text() for p in reader.pages)
    diverged = [s for s in res.steps if s.detail.startswith("diverged")]
    assert "batchnorm False, lr 1000000000000.0" in " ".join(s.title for s in diverged)
    assert all("lr 0.05" not in s.title for s in diverged)
    # the axes with one value (width, init, seed) are settings of the study, not effects
    assert "Warm-up: what changes when you change batchnorm, lr (sweep tiny-study)" in \
        rep.sections
    for title in ("Warm-up", "Problem 1", "Problem 2", "Problem 3",
                  "Environment and reproducibility", "hw0 train --width 2"):
        assert title in text, title
    md = rep.md.read_text()
    assert md.count("![") == len(rep.figures) >= 8
    for fig in rep.figures:
        assert fig.stat().st_size > 2000 and not is_blank(fig), fig
    assert (out / "preset_tiny.json").exists()


@pytest.mark.slow
def test_second_all_skips_everything(all_done, data_root):
    _, out, _ = all_done
    res = pipeline.run_all(pipeline.AllConfig(preset="tiny", data_dir=data_root, out=out,
                                              device="cpu"))
    assert all(s.status == "skipped" for s in res.steps), res.steps
    assert sum(s.seconds for s in res.steps) < 10


def test_missing_sections_name_their_commands(data_root, tmp_path):
    run_linreg(LinregConfig(method="rank", n=50, data_dir=data_root, out=tmp_path))
    rep = run_report(ReportConfig(out=tmp_path))
    assert rep.sections["Problem 3: least squares and kernels on MNIST"]
    assert not rep.sections["Warm-up: Myrtle5 on CIFAR-10"]
    text = "\n".join(p.extract_text() for p in PdfReader(rep.pdf).pages)
    assert "hw0 eval --vflip" in text and "grid.sh" in text and "(missing: see below)" in text


def test_quick_preset_plan(tmp_path):
    steps = pipeline.plan(pipeline.AllConfig(preset="quick", data_dir=tmp_path, out=tmp_path))
    titles = [s.title for s in steps]
    assert len(titles) == 1 + 6 + 1 + 2 + 6 + 1
    assert sum(t.startswith("Problem 2") for t in titles) == 6
    study = [t for t in titles if t.startswith("Sweep bn-study-quick")]
    assert len(study) == 6 and "batchnorm False, lr 1.0" in study[-1]


def test_warmup_section_compares_recipes(cifar_root, tmp_path):
    """A notebook and a page run side by side: one table row each (the page run with its TTA
    accuracy) and one figure of both test-error curves."""
    from hw0cli.report.build import warmup_section
    from hw0cli.runs import list_runs
    from hw0cli.train.config import make_config
    from hw0cli.train.run import run_train

    small = dict(width=2, epochs=2, train_samples=200, data_dir=cifar_root, out=tmp_path,
                 device="cpu", precision="fp32", compile=False)
    run_train(make_config("notebook", batch_size=50, **small))
    page = run_train(make_config("page", batch_size=100, tta=True, **small))
    sec = warmup_section(list_runs(tmp_path), tmp_path / "fig")
    header, rows = next(b.table for b in sec.blocks if b.kind == "table")
    assert "TTA acc" in header and sorted(r[2] for r in rows) == ["notebook", "page"]
    page_row = next(r for r in rows if r[2] == "page")
    assert page_row[header.index("TTA acc")] == f"{100 * (1 - page.test_err_tta):.2f}%"
    assert (tmp_path / "fig" / "recipes_compared.png").stat().st_size > 5000
    assert any(b.kind == "figure" and b.image.name == "recipes_compared.png" for b in sec.blocks)
    assert any("cutout 8" in " ".join(b.lines) for b in sec.blocks if b.kind == "text")


def test_warmup_row_gives_mean_and_std_over_seeds(cifar_root, tmp_path):
    """Three seeds of one setting: one row, the latest seed's run, its test and TTA accuracies
    as mean +- std over the three; a run of other settings (another lr) stays out of them."""
    from hw0cli.report.build import warmup_section
    from hw0cli.runs import list_runs
    from hw0cli.train.config import make_config
    from hw0cli.train.run import run_train

    small = dict(width=2, epochs=2, train_samples=200, data_dir=cifar_root, out=tmp_path,
                 device="cpu", precision="fp32", compile=False, batch_size=50, tta=True)
    run_train(make_config("notebook", seed=3, lr=0.01, **small))  # not a seed of the others
    res = [run_train(make_config("notebook", seed=s, **small)) for s in (0, 1, 2)]
    sec = warmup_section(list_runs(tmp_path), tmp_path / "fig")
    header, rows = next(b.table for b in sec.blocks if b.kind == "table")
    assert [r[0] for r in rows] == [res[-1].run_id]  # the latest run stands for the setting
    for col, errs in (("test acc", [r.test_err for r in res]),
                      ("TTA acc", [r.test_err_tta for r in res])):
        acc = 1 - np.array(errs)
        want = f"{100 * acc.mean():.2f}% +- {100 * acc.std():.2f} (3 seeds)"
        assert rows[0][header.index(col)] == want, (col, rows[0])


def test_a_fast_recipe_grid_over_widths_is_one_group():
    """The report shows the largest group of grid runs with the same settings: a fast-recipe
    grid is one group although its lr, logit scale and batch differ by width (as the recipe's), and
    an lr given explicitly makes another group."""
    import dataclasses

    from hw0cli.report.grid import _grid_settings
    from hw0cli.train.config import make_config

    def settings(recipe="fast", **kw):
        return _grid_settings(dataclasses.asdict(make_config(recipe, **kw)))
    assert settings(width=4, noise=0.5, seed=1) == settings(width=64) == settings(width=32)
    assert settings(width=4)["lr"] == "the recipe's at each width"
    assert settings(width=4)["batch_size"] == "the recipe's at each width"
    assert settings(width=64)["muon_lr"] == settings(width=4)["muon_lr"]  # (64: SGD, default)
    assert settings(width=4, muon_lr=0.2) != settings(width=4)
    assert settings(width=64)["activation"] == settings(width=4)["activation"]  # (64: ReLU)
    assert settings(width=4, activation="relu") != settings(width=4)
    assert settings(width=4, batch_size=512) != settings(width=4)
    assert settings(width=4, lr=0.3) != settings(width=4)
    assert settings(width=16, lr=0.3)["lr"] == 0.3
    assert settings("notebook", width=4, lr=1e-3)["lr"] == 1e-3


def test_recipe_text_names_what_differs_from_the_notebook():
    import dataclasses

    from hw0cli.report.build import _recipe_text
    from hw0cli.train.config import make_config

    narrow = _recipe_text(dataclasses.asdict(make_config("fast", width=16)), 6)
    assert "optimizer muon" in narrow and "muon lr 0.1" in narrow
    assert "activation gelu" in narrow and "6 epochs" in narrow
    assert "freeze bn scale True" in narrow and "bn bias lr 8.0" in narrow
    assert "activation" not in _recipe_text(dataclasses.asdict(make_config("fast")), 30)


@pytest.mark.slow
def test_report_commands_carry_no_folder_of_the_machine(all_done, data_root):
    """Reproduce lines run anywhere: no absolute path of the machine that made the report."""
    res, out, _ = all_done
    md = res.report.md.read_text()
    assert str(out) not in md and str(data_root) not in md and str(out.resolve()) not in md
    assert "--data-dir" not in md.replace("--data-dir and", "")  # only the sentence saying so
    assert "hw0 sweep run --axis" in md and "hw0 report\n" in md
    assert "Caveat:" in md  # the tiny study trains 1 epoch: its numbers are said to be early


def test_train_command_leaves_the_folders_to_the_reader(tmp_path):
    from dataclasses import asdict

    from hw0cli.report.build import _train_command
    from hw0cli.train.config import make_config
    cmd = _train_command(asdict(make_config(width=4, lr=0.3, data_dir=tmp_path / "d",
                                            out=tmp_path / "o")))
    assert cmd == "hw0 train --width 4 --noise 0.0 --seed 0 --lr 0.3"


def test_grid_curves_say_when_the_test_set_is_measured():
    from types import SimpleNamespace

    from hw0cli.report.notes import test_points
    every = [SimpleNamespace(config={"eval_every": 1})]
    assert test_points(every, 1000) == "test err at every epoch."
    sparse = test_points([SimpleNamespace(config={"eval_every": 10})], 1000)
    assert "every 10 epochs and at the last" in sparse and "3.3 training epochs" in sparse


def test_spectrum_axis_fits_the_data_not_the_tolerance():
    from hw0cli.linreg.plots import _spectrum_figure
    from hw0cli.linreg.summary import LinregSummary, SpectrumSummary
    s = np.array([40.0, 20.0, 5.0, 2.0, 1e-14, 3e-15])
    summary = LinregSummary(n=6, seed=0, d=784, labels="parity", device="cpu",
                            spectrum=SpectrumSummary(4, 1e-11, 40.0, 2.0, 20.0, 400.0, 3200.0))
    fig = _spectrum_figure(summary, {"singular_values": s})
    ax = fig.axes[0]
    low, high = ax.get_ylim()
    assert low > 2.0 / 10 and high < 40.0 * 10  # about one decade of room, not sixteen
    labels = ax.get_legend_handles_labels()[1]
    assert any("not drawn" in t for t in labels) and any("2 below" in t for t in labels)


def test_a_study_too_small_to_mean_anything_says_so():
    """Every setting at chance after 3 epochs: no 'range' between them, and a caveat."""
    from hw0cli.batch.sweep import Axis, SweepConfig
    from hw0cli.report.sweep import (
        CellResult,
        Level,
        Setting,
        SweepSummary,
        _axis_sentence,
        _caveat,
    )
    cells = [CellResult((("lr", lr),), 0, "done", 0.9, 0.9 - 0.001 * k, 3, {})
             for k, lr in enumerate((0.03, 0.3, 1.0))]
    summary = SweepSummary("s", ["lr"], None, [Setting(c.point, (c,)) for c in cells], {}, [],
                           [])
    cfg = SweepConfig(axes=(Axis("lr", (0.03, 0.3, 1.0)),),
                      train_options=(("train_samples", 2000),))
    said = _caveat(cfg, summary)
    assert said.startswith("Caveat: 3 of 3 settings learned nothing measurable")
    assert "3 epochs on 2,000 images" in said
    levels = [Level("lr", c.point[0][1], None, (c.test_err, 0.0), (0.9, 0.0), 1, 0, 1)
              for c in cells]
    sentence = _axis_sentence("lr", levels, None)
    assert "every cell at chance" in sentence and "range" not in sentence
    trained = [CellResult((("lr", lr),), 0, "done", 0.2, 0.3, 30, {}) for lr in (0.1, 1.0)]
    long = SweepSummary("s", ["lr"], None, [Setting(c.point, (c,)) for c in trained], {}, [],
                        [])
    assert _caveat(cfg, long) is None


def test_grid_table_gives_mean_and_std_over_seeds(cifar_root, tmp_path):
    """Problem 2's table: a cell trained at two seeds shows its errors as mean +- std."""
    from hw0cli.quantities import TEST, label
    from hw0cli.report.grid import problem2_section
    from hw0cli.runs import list_runs
    from hw0cli.train.config import make_config
    from hw0cli.train.run import run_train

    small = dict(width=2, epochs=2, train_samples=200, data_dir=cifar_root, out=tmp_path,
                 device="cpu", precision="fp32", compile=False, batch_size=50,
                 until_train_error=0.01, noise=0.5)
    res = [run_train(make_config("notebook", seed=s, **small)) for s in (0, 1)]
    sec = problem2_section(list_runs(tmp_path), tmp_path / "fig")
    header, rows = next(b.table for b in sec.blocks if b.kind == "table")
    assert len(rows) == 1 and rows[0][header.index("seeds")] == "2"
    test = np.array([r.test_err for r in res])
    assert rows[0][header.index(label(TEST))] == \
        f"{100 * test.mean():.2f}% +- {100 * test.std():.2f}"
