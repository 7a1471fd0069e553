"""Every command's --help, as an 80-column terminal shows it: each default, each choice and
each environment variable is there. Expectations come from the commands' own parameters and
from the option declarations, so a new option is checked without editing this file."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from hw0cli.cli import app
from hw0cli.options import declarations
from hw0cli.train.config import TrainConfig

runner = CliRunner()
ENV = {"COLUMNS": "80", "NO_COLOR": "1", "TERMINAL_WIDTH": "80"}
ROOT = typer.main.get_command(app)
NOT_OURS = {"help", "install_completion", "show_completion"}


def commands(group: Any = ROOT, path: tuple[str, ...] = ()) -> Iterator[tuple[tuple, Any]]:
    """(argv prefix, click command) for the root and every command below it."""
    yield path, group
    for name, cmd in getattr(group, "commands", {}).items():
        yield from commands(cmd, (*path, name))


ALL = list(commands())


def help_blocks(path: tuple[str, ...]) -> dict[str, str]:
    """Option flag -> its help block (every line of it joined, box drawing removed)."""
    r = runner.invoke(app, [*path, "--help"], env=ENV)
    assert r.exit_code == 0, r.output
    lines = r.output.splitlines()
    assert max(len(line) for line in lines) <= 80
    blocks: dict[str, str] = {}
    current = None
    for line in lines:
        inner = line.strip().strip("│╭╮╰╯─").strip()
        head = re.match(r"(-[-\w]+)", inner)
        if head and line.lstrip().startswith("│ -"):
            current = head.group(1)
            blocks[current] = ""
        elif not line.lstrip().startswith("│"):
            current = None
        if current:
            blocks[current] += " " + inner
    return blocks


def squeeze(text: str) -> str:
    """Without whitespace: the help wraps long values (reduce-\noverhead) at any column."""
    return "".join(text.split())


def expected_default(p: Any) -> str | None:
    """What `[default: ...]` must show for click parameter `p`, or None for no default."""
    if isinstance(p.show_default, str):
        return p.show_default
    if p.default is None or p.show_default is False or (p.is_flag and not p.secondary_opts):
        return None
    if p.is_flag:  # --x/--no-x: the flag that is on by default
        return (p.opts if p.default else p.secondary_opts)[0].lstrip("-")
    return str(p.default)


def choices_of(cmd: Any, p: Any) -> list[str]:
    ctx = cmd.make_context("hw0", [], resilient_parsing=True)
    return [c.value for c in p.shell_complete(ctx, "") if c.value]


@pytest.mark.parametrize("path", [p for p, _ in ALL], ids=lambda p: " ".join(p) or "hw0")
def test_help_shows_defaults_choices_and_env_vars(path: tuple[str, ...]) -> None:
    cmd = dict(ALL)[path]
    blocks = help_blocks(path)
    options = [p for p in cmd.params if p.param_type_name == "option" and p.name not in NOT_OURS]
    for p in options:
        block = blocks.get(p.opts[0])
        assert block is not None, f"{p.opts[0]} missing from `{' '.join(path)} --help`"
        default = expected_default(p)
        if default is not None:
            assert squeeze(f"[default: {default}]") in squeeze(block) or squeeze(
                f"[default: ({default})]") in squeeze(block), (p.opts[0], block)
        for choice in choices_of(cmd, p):
            assert choice in squeeze(block), (p.opts[0], choice, block)
        if p.envvar:
            assert f"[env var: {p.envvar}]" in block, (p.opts[0], block)


def test_train_help_follows_the_declarations() -> None:
    """Each declared train option is listed with its default, choices and env var."""
    blocks = help_blocks(("train",))
    for d in declarations(TrainConfig):
        if not d.opt.cli:
            continue
        block = squeeze(blocks[d.flag])
        if d.opt.default_text:
            assert squeeze(d.opt.default_text) in block, d.name
        elif d.type is bool and not d.one_way:
            assert f"[default:{'' if d.default else 'no-'}{d.flag[2:]}]" in block, d.name
        elif not d.one_way:
            assert f"[default:{d.default}]" in block, d.name
        assert all(c in block for c in d.choices), d.name
        if d.opt.envvar:
            assert f"[envvar:{d.opt.envvar}]" in block, d.name


def test_version_and_completion() -> None:
    r = runner.invoke(app, ["--version"])
    assert r.exit_code == 0 and r.output.startswith("hw0 ")
    assert "--install-completion" in runner.invoke(app, ["--help"], env=ENV).output


@pytest.mark.parametrize(("words", "expected"), [
    ("hw0 train --schedule ", ["constant", "step", "cosine", "onecycle", "triangle"]),
    ("hw0 eval --provider ", ["auto", "tensorrt", "cuda", "cpu"]),
    ("hw0 train --pad", ["--pad-mode"]),
])
def test_shell_completion_offers_choices(words: str, expected: list[str]) -> None:
    env = {"_HW0_COMPLETE": "complete_bash", "COMP_WORDS": words,
           "COMP_CWORD": str(len(words.split()) - (0 if words.endswith(" ") else 1))}
    r = runner.invoke(app, [], prog_name="hw0", env=env)
    assert r.exit_code == 0 and r.output.split() == expected


def test_help_lists_commands():
    r = runner.invoke(app, ["--help"])
    assert r.exit_code == 0
    for cmd in ("train", "runs", "data"):
        assert cmd in r.output
    assert runner.invoke(app, ["train", "--help"]).exit_code == 0


TYPE_NAMES = re.compile(r"<(bool|int|float|str|list\[\w+\]|tuple\[[\w, .]+\]|Path)>")


@pytest.mark.parametrize("path", [p for p, _ in ALL], ids=lambda p: " ".join(p) or "hw0")
def test_no_python_type_names_in_help(path: tuple[str, ...]) -> None:
    r = runner.invoke(app, [*path, "--help"], env=ENV)
    assert not TYPE_NAMES.search(r.output), TYPE_NAMES.search(r.output)


GROUPS = [(p, c) for p, c in ALL if len(p) == 1 and getattr(c, "commands", None)]


@pytest.mark.parametrize(("path", "group"), GROUPS, ids=[p[0] for p, _ in GROUPS])
def test_root_help_names_every_subcommand_of_each_group(path, group) -> None:
    """`hw0 --help` describes each group by the commands it has (none left out)."""
    text = squeeze(" ".join(runner.invoke(app, ["--help"], env=ENV).output.split("│")))
    start = text.index(squeeze(group.help.split(":")[0]))
    described = text[start:start + 2 * len(squeeze(group.help))]
    for name in group.commands:
        assert name in described, (path, name)


@pytest.mark.parametrize("path", [p for p, _ in ALL if len(p) == 2
                                  and p[0] in ("grid", "sweep")], ids=" ".join)
def test_every_grid_and_sweep_command_says_it_takes_train_options(path) -> None:
    r = runner.invoke(app, [*path, "--help"], env=ENV)
    assert "any `hw0 train` option" in " ".join(r.output.split()), r.output


def test_slurm_time_limit_is_the_same_for_grids_and_sweeps() -> None:
    grid_slurm, sweep_slurm = dict(ALL)[("grid", "slurm")], dict(ALL)[("sweep", "slurm")]
    times = [next(p.default for p in c.params if p.name == "time")
             for c in (grid_slurm, sweep_slurm)]
    assert times[0] == times[1]


def test_one_spelling_per_concept_with_the_old_ones_kept() -> None:
    """The vertical flip is `vflip` everywhere (--augment vflip, --view vflip, eval --vflip;
    --flip still works); BatchNorm is `--batchnorm/--no-batchnorm`, as the sweep axis
    `batchnorm=on,off` spells it."""
    from hw0cli.batch.sweep import parse_axis
    from tests.helpers import config_from_train_args
    blocks = help_blocks(("eval",))
    assert "--vflip,--flip" in blocks or any(k.startswith("--vflip") for k in blocks)
    flag = next(p for p in dict(ALL)[("eval",)].params if p.name == "flip")
    assert flag.opts[:2] == ["--vflip", "--flip"]
    assert config_from_train_args(["--no-batchnorm"]).batchnorm is False
    assert config_from_train_args(["--batchnorm"]).batchnorm is True
    assert parse_axis("batchnorm=on,off").values == (True, False)
    assert "--batchnorm" in help_blocks(("train",))
