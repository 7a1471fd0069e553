"""Options declared once, on the config dataclass they belong to.

A field's type says what it holds (a `Literal` lists its choices, `X | None` allows "not set");
its `Annotated` metadata says the rest: `Opt` (one-line help, unit, flag, environment
variable, run-id role) and `annotated_types` bounds (`Ge`, `Gt`, `Le`, `Lt`, `Interval`). Every
use of an option derives from that one declaration: the command line's parameters and help
(`hw0cli.cli.declared`), the checks of a config (`check_declared`), the command line that
reproduces a config (`command_args`, for the grid) and the fields of the run id (`id_fields`).
Torch-free, so the command line's help stays fast.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import types
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import annotated_types as at

from hw0cli.errors import Hw0UsageError


@dataclass(frozen=True)
class Opt:
    """What a field means to a user; put it in the field's `Annotated[...]`."""

    help: str  # one line, no markup, no default (the default is shown from the field)
    unit: str | None = None  # shown after the help: "(pixels)", "(fraction of steps)"
    flag: str | None = None  # the flag, where it is not --<name>; for a bool, "--no-x" is a
    # one-way flag that flips its default (e.g. --no-batchnorm)
    envvar: str | None = None  # read when the option is not given (the library does the same)
    default_text: str | None = None  # the default in words, where it is None or computed
    run_id: Literal["always", "if-changed"] | None = None  # part of the run id; "if-changed":
    # only when it differs from its default (options added after ids were first handed out)
    noun: str | None = None  # "Unknown <noun> 'x'"; default: the name with spaces
    cli: bool = True  # False: the library's field only (set by the program, not a user)
    panel: str | None = None  # the help section it is listed under


@dataclass(frozen=True)
class Declared:
    """One field as declared: resolved type, choices, bounds, default and `Opt`."""

    name: str
    type: Any  # int, float, bool, str or Path (None stripped; Literal choices are str); of
    # each item, for a tuple
    optional: bool  # `X | None`: None is a legal value (off / automatic)
    many: bool  # `tuple[X, ...]`: a comma-separated list on the command line
    choices: tuple[str, ...]
    bounds: tuple[at.BaseMetadata, ...]
    default: Any  # dataclasses.MISSING when computed by a default_factory
    opt: Opt

    @property
    def flag(self) -> str:
        """The option as the command line spells it (a bool's positive form)."""
        return self.opt.flag or "--" + self.name.replace("_", "-")

    @property
    def one_way(self) -> bool:
        """A bool with a single flag that flips its default (e.g. --no-batchnorm)."""
        return self.type is bool and (self.opt.flag or "").startswith("--no-")

    def range_text(self) -> str:
        """The bounds in words: 'in [1, 1024]', '> 0', 'at least 1'."""
        lo = next((("[", b.ge) for b in self.bounds if isinstance(b, at.Ge)), None) or next(
            (("(", b.gt) for b in self.bounds if isinstance(b, at.Gt)), None)
        hi = next(((b.le, "]") for b in self.bounds if isinstance(b, at.Le)), None) or next(
            ((b.lt, ")") for b in self.bounds if isinstance(b, at.Lt)), None)
        if lo and hi:
            return f"in {lo[0]}{_num(lo[1])}, {_num(hi[0])}{hi[1]}"
        if lo:
            return f"at least {_num(lo[1])}" if lo[0] == "[" else f"> {_num(lo[1])}"
        if hi:
            return f"at most {_num(hi[0])}" if hi[1] == "]" else f"< {_num(hi[0])}"
        return ""

    def help_text(self) -> str:
        extra = [x for x in (self.opt.unit, self.range_text()) if x]
        return self.opt.help + (f" ({'; '.join(extra)})" if extra else "")


def _num(bound: float) -> str:
    """A bound as a user writes it: integers in full (4294967295, not 4.29497e+09)."""
    return str(bound) if isinstance(bound, int) else f"{bound:g}"


def _split(hint: Any) -> tuple[Any, tuple[Any, ...]]:
    if typing.get_origin(hint) is typing.Annotated:
        base, *meta = typing.get_args(hint)
        return base, tuple(meta)
    return hint, ()


def _declare(f: dataclasses.Field, hint: Any) -> Declared:
    base, meta = _split(hint)
    args = typing.get_args(base)
    optional = typing.get_origin(base) in (typing.Union, types.UnionType) and type(None) in args
    if optional:
        (base,) = [a for a in args if a is not type(None)]
    many = typing.get_origin(base) is tuple
    if many:
        base = typing.get_args(base)[0]
    choices: tuple[str, ...] = ()
    if typing.get_origin(base) is Literal:
        choices, base = tuple(typing.get_args(base)), str
    opt = next((m for m in meta if isinstance(m, Opt)), None) or Opt(help="")
    bounds: list[at.BaseMetadata] = []
    for m in meta:
        bounds += list(m) if isinstance(m, at.GroupedMetadata) else [m]
    bounds = [b for b in bounds if isinstance(b, (at.Ge, at.Gt, at.Le, at.Lt))]
    return Declared(f.name, base, optional, many, choices, tuple(bounds), f.default, opt)


@functools.cache
def declarations(cls: type) -> tuple[Declared, ...]:
    """Every field of dataclass `cls`, in declaration order."""
    hints = typing.get_type_hints(cls, include_extras=True)
    return tuple(_declare(f, hints[f.name]) for f in dataclasses.fields(cls))


def declared(cls: type, name: str) -> Declared:
    return next(d for d in declarations(cls) if d.name == name)


def flag(cls: type, name: str) -> str:
    """How a message names field `name` of `cls` to a user: its command-line flag."""
    return declared(cls, name).flag


def id_fields(cls: type, role: str) -> tuple[str, ...]:
    """The fields whose `Opt.run_id` is `role` ("always" or "if-changed")."""
    return tuple(d.name for d in declarations(cls) if d.opt.run_id == role)


def _in_bounds(value: float, bounds: tuple[at.BaseMetadata, ...]) -> bool:
    # written as positive tests, so that NaN fails every one
    for b in bounds:
        ok = ((isinstance(b, at.Ge) and value >= b.ge) or (isinstance(b, at.Gt) and value > b.gt)
              or (isinstance(b, at.Le) and value <= b.le) or (isinstance(b, at.Lt)
                                                                and value < b.lt))
        if not ok:
            return False
    return not isinstance(value, float) or math.isfinite(value)


def check_declared(cfg: Any) -> None:
    """Raise Hw0UsageError for a value outside its declared choices or bounds."""
    for d in declarations(type(cfg)):
        value = getattr(cfg, d.name)
        if value is None and d.optional:
            continue
        for item in value if d.many else (value,):
            if d.choices and item not in d.choices:
                noun = d.opt.noun or d.name.replace("_", " ")
                raise Hw0UsageError(f"Unknown {noun} '{item}'. Choose one of: "
                                    f"{', '.join(d.choices)}.")
            if d.bounds and not _in_bounds(item, d.bounds):
                raise Hw0UsageError(f"{d.flag} must be {d.range_text()} (got {item}).")


def _args_for(d: Declared, value: Any) -> list[str]:
    if d.one_way:
        return [d.flag] if value != d.default else []
    if d.type is bool:
        return [d.flag if value else "--no-" + d.flag[2:]]
    return [d.flag, text(d, value)]


def text(d: Declared, value: Any) -> str:
    """A value as the command line writes it (a tuple: comma-separated)."""
    return ",".join(str(v) for v in value) if d.many else str(value)


def parse_items(d: Declared, text: str) -> tuple:
    """'4,64' -> (4, 64) for a tuple option; an empty item or a bad number is a usage error."""
    kind = float if d.type is int else d.type  # '1e3' is a count too
    try:
        items = tuple(kind(t.strip()) for t in text.split(",")) if text.strip() else ()
    except ValueError:
        raise Hw0UsageError(f"{d.flag} takes comma-separated values (got '{text}').") from None
    return tuple(int(v) for v in items) if d.type is int else items


def command_args(cfg: Any, base: Any, always: tuple[str, ...] = (),
                 skip: tuple[str, ...] = ()) -> list[str]:
    """Command-line arguments that turn `base` into `cfg`: every option whose value differs
    from `base`'s, and those in `always`, in declaration order."""
    args: list[str] = []
    for d in declarations(type(cfg)):
        if not d.opt.cli or d.name in skip:
            continue
        value = getattr(cfg, d.name)
        if d.name not in always and value == getattr(base, d.name):
            continue
        if value is None:
            raise Hw0UsageError(f"{d.flag} cannot be set back to its automatic value on a "
                                "command line; leave it out of the base settings.")
        args += _args_for(d, str(value) if isinstance(value, Path) else value)
    return args


def from_given(cls: type, given: dict[str, Any]) -> dict[str, Any]:
    """Field values from command-line values given by a user (keyed by field name): a one-way
    flag that was given means the opposite of the field's default."""
    by_name = {d.name: d for d in declarations(cls)}
    out = {}
    for k, v in given.items():
        d = by_name[k]
        if v is not None:
            out[k] = not d.default if d.one_way else parse_items(d, v) if d.many else v
    return out
