"""Typer options generated from a config's declarations (`hw0cli.options`).

`with_options(TrainConfig)` gives a command one option per declared field, with the field's
help, default, choices (listed in the help and completed by the shell) and environment
variable; the command receives `options`: the values the user gave (on the command line or
through an environment variable), by field name, so that a recipe's settings apply to the rest.
Choices and bounds are checked by the library (`check_declared`), once, for CLI and library
callers alike.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape

from hw0cli.cli.common import folder
from hw0cli.options import Declared, declarations, from_given, text

CTX = "hw0_ctx"
GIVEN = ("COMMANDLINE", "ENVIRONMENT")  # parameter sources that count as "the user set it"


def _completer(choices: tuple[str, ...]) -> Callable[[str], list[str]]:
    def complete(incomplete: str) -> list[str]:
        return [c for c in choices if c.startswith(incomplete)]
    return complete


def _option(d: Declared) -> typer.models.OptionInfo:
    one_way = d.one_way
    decls = [d.flag] if one_way or d.type is not bool else [f"{d.flag}/--no-{d.flag[2:]}"]
    shown: bool | str = d.opt.default_text or (not one_way and d.default is not None)
    extra: dict[str, Any] = {}
    help_text = d.help_text() + (", comma-separated" if d.many else "")
    if d.choices:  # listed and completed here; checked by the library, with its message
        help_text += f"; {'any' if d.many else 'one'} of: {', '.join(d.choices)}"
        extra = {"autocompletion": _completer(d.choices)}
    if d.opt.envvar:
        extra.update(envvar=d.opt.envvar, show_envvar=True)
    if d.type is Path and not d.many:
        extra.update(parser=folder, metavar="PATH")
    # help is plain text: escaped, because Typer renders it as rich markup
    return typer.Option(*decls, help=escape(help_text), show_default=shown,
                        rich_help_panel=d.opt.panel, metavar=metavar(d), **extra)


TYPE_WORDS = {int: "INTEGER", float: "NUMBER", str: "TEXT"}


def metavar(d: Declared) -> str:
    """What the option's value is, from its declaration: nothing for a flag, NAME for a
    choice, a list for a comma-separated option, else the value's type."""
    if d.type is bool:
        return ""
    word = "NAME" if d.choices else TYPE_WORDS.get(d.type, "PATH")
    return f"{word},..." if d.many else word


def parameter(d: Declared) -> inspect.Parameter:
    """The Typer parameter of one declared field."""
    if d.one_way:
        kind, default = bool, False
    else:
        kind = str if d.many else d.type
        default = None if d.default in (dataclasses.MISSING, None) else d.default
        if d.many and default is not None:
            default = text(d, default)
    annotation = Annotated[kind | None, _option(d)]  # type: ignore[operator]
    return inspect.Parameter(d.name, inspect.Parameter.KEYWORD_ONLY, default=default,
                             annotation=annotation)


def with_options(cls: type, skip: tuple[str, ...] = ()) -> Callable[[Callable], Callable]:
    """Decorate a command `fn(options, ...)`: its own parameters stay, and one option per
    declared field of `cls` (except `skip`) comes first."""
    fields = [d for d in declarations(cls) if d.opt.cli and d.name not in skip]

    def decorate(fn: Callable) -> Callable:
        own = [p for p in inspect.signature(fn, eval_str=True).parameters.values()
               if p.name != "options"]
        ctx = inspect.Parameter(CTX, inspect.Parameter.KEYWORD_ONLY, annotation=typer.Context)

        @functools.wraps(fn)
        def command(**kwargs: Any) -> Any:
            context = kwargs.pop(CTX)
            values = {d.name: kwargs.pop(d.name) for d in fields}
            given = {k: v for k, v in values.items()
                     if getattr(context.get_parameter_source(k), "name", "") in GIVEN}
            return fn(options=from_given(cls, given), **kwargs)

        params = [ctx, *(parameter(d) for d in fields),
                  *(p.replace(kind=inspect.Parameter.KEYWORD_ONLY) for p in own)]
        del command.__wrapped__  # Typer must read the generated signature, not fn's
        command.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
        command.__annotations__ = {p.name: p.annotation for p in params}
        return command
    return decorate


def given_options(cls: type, params: dict[str, Any], sources: Callable[[str], Any]
                  ) -> dict[str, Any]:
    """The declared fields of `cls` that a parsed command (its `params` and their
    `sources`) got from the user, as field values."""
    names = {d.name for d in declarations(cls) if d.opt.cli}
    given = {k: v for k, v in params.items()
             if k in names and getattr(sources(k), "name", "") in GIVEN}
    return from_given(cls, given)
