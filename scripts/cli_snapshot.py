"""Write tests/fixtures/cli_snapshot.json: every command's parameters (name, option strings,
--no-x strings, default, kind) read from the click tree, not from the help text.

Run it only after an intended change of the command line (an option added, renamed or given a
new default on purpose), and say so in the commit; never to make a restructure pass
tests/test_cli_snapshot.py.

    python scripts/cli_snapshot.py [OUT.json]
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click
import typer

SNAPSHOT = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "cli_snapshot.json"


def _param(p: click.Parameter) -> dict:
    default = p.default
    if callable(default):
        default = "<computed>"
    elif not isinstance(default, (str, int, float, bool, type(None))):
        default = repr(default)
    return {"name": p.name, "opts": sorted(p.opts),
            "secondary": sorted(getattr(p, "secondary_opts", [])),
            "default": default, "kind": type(p).__name__}


def walk(cmd: click.Command, path: tuple[str, ...] = (), out: dict | None = None) -> dict:
    """{"hw0 grid run": [parameter, ...], ...} for `cmd` and every command below it."""
    out = {} if out is None else out
    out[" ".join(("hw0", *path))] = sorted((_param(p) for p in cmd.params),
                                           key=lambda d: d["name"] or "")
    for name, sub in sorted(getattr(cmd, "commands", {}).items()):
        walk(sub, (*path, name), out)
    return out


def live_tree() -> dict:
    """The command tree of the code on the path now."""
    from hw0cli.cli import app
    return walk(typer.main.get_command(app))


def main(argv: list[str]) -> int:
    target = Path(argv[0]) if argv else SNAPSHOT
    tree = live_tree()
    target.write_text(json.dumps(tree, indent=1, sort_keys=True) + "\n")
    print(f"{target}: {len(tree)} commands")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
