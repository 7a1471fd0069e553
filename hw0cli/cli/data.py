"""`hw0 data`: fetch and inspect CIFAR-10 and MNIST."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from hw0cli.cli.common import (
    DataDir,
    Hw0Typer,
    Json,
    data_dir_or_default,
    err_console,
    out_console,
    print_json,
    simple_table,
)
from hw0cli.errors import Hw0Error

data_app = Hw0Typer(help="Fetch and inspect CIFAR-10 and MNIST: download, info.",
                    no_args_is_help=True)


@data_app.command("download")
def data_download(data_dir: DataDir = None, which: Annotated[str, typer.Option(
        help="cifar10, mnist, or both (comma-separated)")] = "cifar10,mnist") -> None:
    """Download CIFAR-10 and MNIST with torchvision's utilities into torchvision's layouts."""
    from hw0cli.datafiles import download
    from hw0cli.errors import check
    sets = tuple(s.strip() for s in which.split(",") if s.strip())
    check(bool(sets) and all(s in ("cifar10", "mnist") for s in sets),
          f"--which takes cifar10, mnist or both (got '{which}').")
    for line in download(data_dir_or_default(data_dir), sets):
        out_console.print(line)


@data_app.command("info")
def data_info(data_dir: DataDir = None, as_json: Json = False) -> None:
    """Show which data files are present, their sizes and whether they match the official MD5."""
    from hw0cli.datafiles import info
    data_dir = data_dir_or_default(data_dir)
    rows = info(data_dir)
    missing = sorted({r.dataset for r in rows if not r.present})
    if as_json:
        print_json([r.__dict__ for r in rows])
        if missing:  # scripts can test the exit code
            raise typer.Exit(1)
        return
    checks = {None: "-", True: "[green]match[/]", False: "[yellow]differs[/]"}
    out_console.print(simple_table(
        f"Data in {data_dir}", ("dataset", "file", "present", "size", "official checksum"),
        [[r.dataset, Path(r.path).name, "yes" if r.present else "[red]missing[/]",
          f"{r.size / 1e6:.1f} MB" if r.present else "-", checks[r.md5_ok]] for r in rows],
        left=("dataset", "file", "present", "size", "official checksum")))
    if any(r.md5_ok is False for r in rows):
        err_console.print("[yellow]Warning:[/] some files differ from the official release "
                          "(a re-encoded or modified copy); results may differ slightly.")
    if missing:
        raise Hw0Error(f"Missing files of {', '.join(missing)}: run `hw0 data download "
                       f"--which {','.join(missing)} --data-dir {data_dir}`.")
