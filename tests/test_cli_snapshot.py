"""Every command lists the same parameters, option strings and defaults as the snapshot
tests/fixtures/cli_snapshot.json, taken from main (da7b9d5) before the package restructure
(issue 23): a move of modules must not change the command line.

Regenerate the snapshot (`python scripts/cli_snapshot.py`) only for an intended change of the
command line (an option added, renamed or given a new default on purpose, said so in the
commit); never to make a restructure pass.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SNAPSHOT = ROOT / "tests" / "fixtures" / "cli_snapshot.json"


def _snapshot_module():
    spec = importlib.util.spec_from_file_location("cli_snapshot", ROOT / "scripts" /
                                                  "cli_snapshot.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def differences(old: dict, new: dict) -> list[str]:
    """One line per command or parameter that was added, removed or changed."""
    lines = [f"command removed: {c}" for c in sorted(set(old) - set(new))]
    lines += [f"command added: {c}" for c in sorted(set(new) - set(old))]
    for cmd in sorted(set(old) & set(new)):
        was = {p["name"]: p for p in old[cmd]}
        now = {p["name"]: p for p in new[cmd]}
        lines += [f"{cmd}: parameter removed: {n} {was[n]['opts']}" for n in sorted(set(was) -
                                                                                  set(now))]
        lines += [f"{cmd}: parameter added: {n} {now[n]['opts']}" for n in sorted(set(now) -
                                                                                set(was))]
        for n in sorted(set(was) & set(now)):
            for key in sorted(set(was[n]) | set(now[n])):
                if was[n].get(key) != now[n].get(key):
                    lines.append(f"{cmd}: {n} {key}: {was[n].get(key)!r} -> "
                                 f"{now[n].get(key)!r}")
    return lines


def test_snapshot_has_every_command():
    old = json.loads(SNAPSHOT.read_text())
    assert len(old) == 25 and "hw0 train" in old and "hw0 sweep slurm" in old
    assert {"name": "epochs", "opts": ["--epochs"], "default": 20}.items() <= {
        p["name"]: p for p in old["hw0 train"]}["epochs"].items()


def test_differences_are_named():
    old = {"hw0 x": [{"name": "a", "opts": ["--a"], "secondary": [], "default": 1,
                      "kind": "Option"}]}
    new = {"hw0 x": [{"name": "a", "opts": ["--a"], "secondary": [], "default": 2,
                      "kind": "Option"}], "hw0 y": []}
    assert differences(old, new) == ["command added: hw0 y", "hw0 x: a default: 1 -> 2"]


def test_cli_matches_snapshot():
    old = json.loads(SNAPSHOT.read_text())
    new = _snapshot_module().live_tree()
    diff = differences(old, new)
    assert not diff, ("the command line differs from tests/fixtures/cli_snapshot.json:\n"
                      + "\n".join(diff))
    assert new == old
