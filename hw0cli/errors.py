"""Errors that carry a fix-it message; the CLI prints them and exits with `exit_code`."""

from __future__ import annotations


class Hw0Error(Exception):
    """A runtime failure the user can act on (exit code 1)."""

    exit_code = 1

    def __init__(self, message: str, exit_code: int | None = None) -> None:
        super().__init__(message)
        if exit_code is not None:
            self.exit_code = exit_code


class Hw0UsageError(Hw0Error):
    """A bad option or argument (exit code 2, like any usage error)."""

    exit_code = 2


def check(condition: bool, message: str) -> None:
    """Raise `Hw0UsageError(message)` unless `condition` holds."""
    if not condition:
        raise Hw0UsageError(message)
