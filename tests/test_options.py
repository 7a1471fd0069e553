"""The option declarations (hw0cli.options): what is derived from one declaration."""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Literal

import pytest
from annotated_types import Ge, Interval
from typer.testing import CliRunner

from hw0cli.batch.cells import train_args
from hw0cli.errors import Hw0UsageError
from hw0cli.options import Opt, check_declared, command_args, declared, from_given, id_fields
from hw0cli.train.config import SCIENCE_FIELDS, TrainConfig, make_config, run_id_for
from tests.helpers import config_from_train_args

# Run ids handed out before the declarations existed (computed at main 2cb29bd): the same
# settings must keep their ids, or existing run files stop matching their commands. (The fast
# and page recipes have since changed; their settings of then are spelled out.)
KNOWN_IDS = [
    ("notebook", {}, "c64-p0-e20-s0-a438375c"),
    ("fast", {"epochs": 20, "alternate_flip": False, "crop_pad": 4},
     "c64-p0-e20-s0-9baa338c"),
    ("page", {"warmup": 5 / 24, "drop_last": True}, "c64-p0-e20-s0-bc91bf15"),
    ("notebook", {"width": 4, "noise": 0.5, "seed": 3}, "c4-p0.5-e20-s3-db80fd63"),
]


@pytest.mark.parametrize(("recipe", "options", "run_id"), KNOWN_IDS)
def test_run_ids_are_unchanged(recipe, options, run_id):
    assert run_id_for(make_config(recipe, **options)) == run_id


def test_science_fields_are_the_declared_ones():
    assert SCIENCE_FIELDS[:19] == (
        "width", "noise", "epochs", "batch_size", "lr", "momentum", "nesterov", "weight_decay",
        "optimizer", "schedule", "augment", "label_smoothing", "objective", "tta",
        "train_samples", "batchnorm", "seed", "until_train_error", "patience")
    assert set(SCIENCE_FIELDS[19:]) == set(id_fields(TrainConfig, "if-changed"))


def test_grid_command_line_reproduces_every_option(tmp_path):
    """Every declared option survives config -> command line -> parse -> config."""
    cfg = make_config("page", width=8, noise=0.25, seed=2, batchnorm=False, cutout=4,
                      until_train_error=0.05, compile=False, precision="fp32",
                      data_dir=tmp_path / "d", out=tmp_path / "o")
    args = train_args(cfg)
    assert "--no-batchnorm" in args and "--no-compile" in args
    assert config_from_train_args(args) == cfg
    assert shlex.split(shlex.join(args)) == args


@dataclass(frozen=True)
class Toy:
    size: Annotated[int, Interval(ge=1, le=9), Opt("How big", unit="cells",
                                                   run_id="always")] = 3
    kind: Annotated[Literal["a", "b"], Opt("Which one")] = "a"
    color: Annotated[bool, Opt("Remove the colour", flag="--no-color")] = True
    widths: Annotated[tuple[int, ...], Ge(1), Opt("Widths")] = (4, 64)
    limit: Annotated[float | None, Opt("A cap", default_text="none")] = None
    out: Annotated[Path, Opt("Where", envvar="TOY_OUT")] = Path("x")


def test_declarations_drive_checks_and_command_lines():
    d = declared(Toy, "size")
    assert d.help_text() == "How big (cells; in [1, 9])" and d.opt.run_id == "always"
    assert declared(Toy, "kind").choices == ("a", "b")
    assert declared(Toy, "color").one_way and declared(Toy, "color").flag == "--no-color"
    assert declared(Toy, "widths").many and declared(Toy, "limit").optional
    with pytest.raises(Hw0UsageError, match=r"--size must be in \[1, 9\] \(got 10\)"):
        check_declared(Toy(size=10))
    with pytest.raises(Hw0UsageError, match="Unknown kind 'c'"):
        check_declared(Toy(kind="c"))
    with pytest.raises(Hw0UsageError, match="--widths must be at least 1"):
        check_declared(Toy(widths=(4, 0)))
    assert command_args(Toy(size=5, color=False, widths=(2, 3)), Toy()) == [
        "--size", "5", "--no-color", "--widths", "2,3"]
    assert from_given(Toy, {"color": True, "widths": "1,2", "limit": None}) == {
        "color": False, "widths": (1, 2)}
    with pytest.raises(Hw0UsageError, match="comma-separated"):
        from_given(Toy, {"widths": "1,,x"})


def test_a_new_declaration_reaches_the_command_line():
    """One declaration gives an option with its help, default, choices and env var."""
    import typer

    from hw0cli.cli.declared import with_options
    seen = {}
    app = typer.Typer()

    @app.command()
    @with_options(Toy)
    def toy(options: dict, loud: bool = False) -> None:
        seen.update(options, loud=loud)

    runner = CliRunner()
    r = runner.invoke(app, ["--help"], env={"COLUMNS": "200", "NO_COLOR": "1"})
    for text in ("--size", "How big (cells; in [1, 9])", "[default: 3]", "one of: a, b",
                 "--no-color", "[env var: TOY_OUT]", "[default: (none)]", "--loud"):
        assert text in r.output, text
    r = runner.invoke(app, ["--size", "4", "--no-color", "--loud"], env={"TOY_OUT": "/o"})
    assert r.exit_code == 0, r.output
    assert seen == {"size": 4, "color": False, "out": Path("/o"), "loud": True}


def test_init_options_enter_the_run_id_only_when_set():
    from hw0cli.train.config import TrainConfig, run_id_for
    assert run_id_for(TrainConfig()) == "c64-p0-e20-s0-a438375c"  # every earlier id stands
    ids = {run_id_for(TrainConfig(init=i)) for i in ("default", "kaiming", "xavier")}
    assert len(ids) == 3
    assert run_id_for(TrainConfig(init_scale=0.5)) != run_id_for(TrainConfig())
