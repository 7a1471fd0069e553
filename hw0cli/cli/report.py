"""`hw0 report` and `hw0 all`: the hand-in, and every experiment in order then the hand-in."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from hw0cli.choices import Device, Preset
from hw0cli.cli.common import (
    DataDir,
    Log,
    OutDir,
    choice,
    data_dir_or_default,
    duration,
    out_console,
    out_or_default,
    say,
)
from hw0cli.errors import Hw0Error


def report(
    out: OutDir = None,
    report_dir: Annotated[Path | None, typer.Option(
        "--report-dir", help="Where to write", show_default="<out>/report")] = None,
    formats: Annotated[str, typer.Option("--format", help="pdf, md or both")] = "pdf,md",
) -> None:
    """Write the hand-in: report.pdf and report.md (with PNGs) from everything in --out."""
    from hw0cli.report import ReportConfig, run_report
    res = run_report(ReportConfig(out=out_or_default(out), report_dir=report_dir,
                                  formats=tuple(f.strip() for f in formats.split(","))))
    _print_report(res)


def _print_report(res: Any) -> None:
    for title, present in res.sections.items():
        mark = "[green]results[/]" if present else "[yellow]missing (says which command)[/]"
        say(f"  {title}: {mark}")
    if res.pdf:
        say(f"PDF: {res.pdf} ({res.pages} pages)")
    if res.md:
        say(f"Markdown: {res.md} ({len(res.figures)} figures)")


def all_cmd(
    preset: Annotated[str, choice(Preset, help="quick: laptop CPU, reduced (see docs/report.md); "
                                  "full: the assignment's settings, for a GPU")] = "quick",
    device: Annotated[str, choice(Device, help="Where to train and evaluate")] = "auto",
    log: Log = None,
    smoke: Annotated[bool, typer.Option(
        "--smoke", help="Check the preset's whole plan in minutes: every step as planned but "
        "with each step's training images and epochs cut to a few, trained eagerly, through "
        "to the PDF; results go to <out>/smoke")] = False,
    data_dir: DataDir = None,
    out: OutDir = None,
) -> None:
    """Run every experiment of the homework in order (resumably), then write the report."""
    from hw0cli.cli.display import RichReporter
    from hw0cli.pipeline import AllConfig, StepClock, preset_settings, run_all, validate_plan
    from hw0cli.tracking import parse_backends
    out_dir = out_or_default(out) / ("smoke" if smoke else "")  # never among real results
    cfg = AllConfig(preset=preset, data_dir=data_dir_or_default(data_dir), out=out_dir,
                    device=device, log=parse_backends(log), smoke=smoke)
    validate_plan(cfg)  # a bad plan: one message before anything is printed or run
    say(f"[bold]hw0 all --preset {preset}{' --smoke' if smoke else ''}[/]: "
        f"{preset_settings(cfg)['description']}; results in {cfg.out} (settings: "
        f"{Path(cfg.out) / f'preset_{preset}.json'})")
    say("[dim]timing this machine's training speed for the first ETA (the precision probe, "
        "which the runs reuse) ...[/]")
    clock = StepClock()

    def step(i: int, n: int, title: str) -> None:
        eta = clock.eta(i, n)
        if _live():
            out_console.rule(f"[{i + 1}/{n}] {title}")
        else:  # a log: one plain line, never cut or wrapped
            say(f"[{i + 1}/{n}] {title}", wrap=False)
        out_console.print(f"{i} done, 1 running, {n - i - 1} left; "
                          f"{duration(clock.elapsed())} so far"
                          + (f", ETA ~{duration(eta)}" if eta is not None else ""),
                          highlight=False, soft_wrap=True, style="dim")

    def result(r: Any) -> None:
        color = {"done": "green", "skipped": "cyan", "failed": "red"}[r.status]
        say(f"[{color}]{r.status}[/] in {r.seconds:.0f} s: {r.detail}")

    res = run_all(cfg, on_step=step, on_result=result,
                  reporter_factory=lambda: RichReporter(out_console), clock=clock)
    _print_all_result(res)


def _live() -> bool:
    """Whether stdout is a terminal: there, lines wrap to its width; in a log they never do."""
    return out_console.is_terminal


def _print_all_result(res: Any) -> None:
    if _live():
        out_console.rule("report")
    else:
        say("report", wrap=False)
    _print_report(res.report)
    say(f"total {res.seconds:.0f} s; {res.count('done')} steps run, {res.count('skipped')} "
        f"already done, {len(res.failed)} failed")
    if res.failed:
        causes: dict[str, list[str]] = {}  # one cause, said once, with the steps it stopped
        for f in res.failed:
            causes.setdefault(f.detail, []).append(f.title)
        raise Hw0Error(f"{len(res.failed)} step(s) failed: " + "; ".join(
            f"{titles[0]}{f' and {len(titles) - 1} more' if len(titles) > 1 else ''}: {cause}"
            for cause, titles in causes.items()) + " Fix the cause and run `hw0 all` again: "
            "finished steps are skipped.")
