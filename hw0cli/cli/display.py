"""Progress displays: a training run's bar and epoch lines, a grid's cells."""

from __future__ import annotations

import contextlib
import math
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

from hw0cli.cli.common import duration, err_console, mode_text, out_console
from hw0cli.errors import Hw0Error
from hw0cli.quantities import label, tta_label


class RichReporter:
    """Training progress a person can follow, in a terminal and in a log file.

    The live bar (this epoch's steps and the whole run, each with an ETA) is drawn on stderr,
    and only when stderr is a terminal; status lines say what happens before the first step
    (loading data, one-time compilation). One line per finished epoch goes to `lines` (stdout,
    or stderr with --json), never wrapped, without escape codes when redirected; while the bar
    is up and stdout is the same terminal, the lines are printed above the bar instead.
    """

    def __init__(self, lines: Console, status: Console | None = None) -> None:
        self.lines = lines
        self.status_console = status or err_console
        self.progress: Progress | None = None
        if self.status_console.is_terminal:
            self.progress = Progress(
                TextColumn("{task.description}"), BarColumn(bar_width=30),
                TextColumn("{task.fields[info]}"), TextColumn("[dim]ETA[/]"),
                TimeRemainingColumn(), console=self.status_console, transient=True,
                redirect_stdout=False, redirect_stderr=False)
        self.epoch_task: Any = None
        self.run_task: Any = None
        self.epochs = self.steps = self.start = 0
        self.tta_label = tta_label()

    def __enter__(self) -> RichReporter:
        if self.progress is not None:
            self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.progress is not None:
            self.progress.stop()

    def _line(self, text: str) -> None:
        if self.progress is not None and self.lines.is_terminal:
            self.progress.console.print(text, highlight=False, soft_wrap=True)
        else:
            self.lines.print(text, highlight=False, soft_wrap=True)

    def status(self, text: str) -> None:
        """What is happening before the bar moves (data loading, compilation)."""
        if self.progress is None:
            self.status_console.print(f"{text} ...", highlight=False, soft_wrap=True)
        elif self.epoch_task is None:
            self.epoch_task = self.progress.add_task(text, total=None, info="")
        else:
            self.progress.update(self.epoch_task, description=text, info="")

    def on_start(self, info: dict[str, Any]) -> None:
        self.epochs, self.steps = info["epochs"], info["steps_per_epoch"]
        self.start = info["start_epoch"]
        self.tta_label = tta_label(info.get("tta_shift", 0))
        first = self.start + 1
        resumed = f", resuming after epoch {info['start_epoch']}" if info["start_epoch"] else ""
        self._line(f"run [bold]{info['run_id']}[/] on {info['device']} ({info['precision']}, "
                   f"{mode_text(info.get('compile_mode'))}), {info['n_train']} training images, "
                   f"realized label noise {100 * info['realized_noise']:.1f}%{resumed}")
        self._line(f"{'epoch':>5} {'train loss':>10} {label('train_err'):>19} {'test loss':>9} "
                   f"{'test err':>8} {'lr':>8} {'seconds':>7}")
        waiting = ("compiling the training step (one-time, cached for later runs)"
                   if info.get("compile_mode") else "first steps")
        self.status(f"epoch {first}/{self.epochs}: {waiting}")
        if self.progress is not None:
            self.progress.update(self.epoch_task, total=self.steps, completed=0)
            self.run_task = self.progress.add_task(
                "run", total=(self.epochs - self.start) * self.steps, info="")

    def on_step(self, epoch: int, step: int, nsteps: int, loss: float, acc: float,
                images_per_s: float) -> None:
        if self.progress is None:
            return
        text = f"loss {loss:.3f}  acc {acc:.1%}  {images_per_s:,.0f} img/s"
        self.progress.update(self.epoch_task, description=f"epoch {epoch}/{self.epochs}",
                             total=nsteps, completed=step, info=text)
        self.progress.update(self.run_task,
                             completed=(epoch - 1 - self.start) * self.steps + step)

    def on_epoch(self, row: dict[str, Any]) -> None:
        extra = ""
        for key in ("train_eval_err", "test_err_tta"):  # shown where measured
            if not math.isnan(row.get(key, math.nan)):
                name = self.tta_label if key == "test_err_tta" else label(key)
                extra += f"  {name} {100 * row[key]:.2f}%"
        self._line(f"{row['epoch']:>5} {_num(row['train_loss'], '.4f'):>10} "
                   f"{_pct(row['train_err']):>19} {_num(row['test_loss'], '.4f'):>9} "
                   f"{_pct(row['test_err']):>8} {row['lr']:>8.4g} {row['seconds']:>7.1f}{extra}")
        if self.progress is not None and row["epoch"] < self.epochs:
            # reset, not update: the epoch's ETA must not use the last epoch's step times
            self.progress.reset(self.epoch_task, total=self.steps, info="",
                                description=f"epoch {row['epoch'] + 1}/{self.epochs}")


def _num(x: float, spec: str) -> str:
    """A number, or a dash where nothing was measured (a test evaluation skipped by
    --eval-every)."""
    return "-" if math.isnan(x) else format(x, spec)


def _pct(x: float) -> str:
    return "-" if math.isnan(x) else f"{100 * x:.2f}%"


def run_with_display(cfg: Any, lines: Console | None, tc: Any = None) -> Any:
    """`run_train` with the progress display (None: quiet) and the trackers of `tc`."""
    from hw0cli.data import load_cifar10
    from hw0cli.env import resolve_device
    from hw0cli.tracking import Fanout, TrackingReporter
    from hw0cli.train import run_train, validate
    validate(cfg)  # bad options are reported before the data is read, as run_train does
    resolve_device(cfg.device)
    with contextlib.ExitStack() as stack:
        display = stack.enter_context(RichReporter(lines)) if lines is not None else None
        tracking = stack.enter_context(TrackingReporter(tc)) if tc else None

        def load() -> Any:  # called once the run file is known to need training
            if display is not None:
                display.status(f"loading CIFAR-10 from {cfg.data_dir}")
            data = load_cifar10(cfg.data_dir)
            if display is not None:
                display.status("preparing the trainer (with --precision/--compile-mode auto, "
                               "the first run on a machine also times the candidates)")
            return data
        reporter = Fanout(display, tracking) if display or tracking else None
        return run_train(cfg, reporter=reporter, data=load)



class GridProgress:
    """Cells done / running / left with an ETA, and each running cell's epoch.

    On a terminal: a live display on stderr, refreshed from the running cells' run files (each
    checkpoint records `epochs_done`). Otherwise: one line per cell start and end, on stdout.
    """

    def __init__(self, total: int) -> None:
        import threading
        self.total, self.finished, self.failed = total, 0, 0
        self.running: dict[int, tuple[Any, float]] = {}  # index -> (config, start time)
        self.durations: list[float] = []  # cells that trained (not skipped), for the ETA
        self.lock = threading.Lock()
        self.stop_event = threading.Event()
        self.live = err_console.is_terminal
        self.progress = Progress(
            TextColumn("{task.description}"), BarColumn(bar_width=24),
            TextColumn("{task.fields[info]}"), console=err_console, transient=True,
            redirect_stdout=False, redirect_stderr=False) if self.live else None
        self.cell_tasks: dict[int, Any] = {}
        self.thread = threading.Thread(target=self._poll, daemon=True, name="hw0-grid-progress")

    def __enter__(self) -> GridProgress:
        if self.progress is not None:
            self.progress.start()
            self.overall = self.progress.add_task("cells", total=self.total, info="")
            self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop_event.set()
        if self.progress is not None:
            self.thread.join(timeout=5)
            self.progress.stop()

    def counts(self) -> str:
        from hw0cli.batch.cells import eta_seconds
        left = self.total - self.finished - len(self.running)
        rest = eta_seconds(self.durations, left, len(self.running))
        eta = f", ETA ~{duration(rest)}" if rest is not None else ""
        return f"{self.finished} done, {len(self.running)} running, {left} left{eta}"

    def _print(self, text: str) -> None:
        if self.progress is not None:
            self.progress.console.print(text, highlight=False, soft_wrap=True)
        else:
            out_console.print(text, highlight=False, soft_wrap=True)

    def start(self, index: int, cfg: Any) -> None:
        import time
        with self.lock:
            self.running[index] = (cfg, time.monotonic())
            if self.progress is not None:
                self.cell_tasks[index] = self.progress.add_task(
                    f"  cell {index} (c {cfg.width}, p {cfg.noise:g}, seed {cfg.seed})",
                    total=cfg.epochs, info="starting")
            else:
                self._print(f"cell {index} started (c {cfg.width}, p {cfg.noise:g}, seed "
                            f"{cfg.seed}); {self.counts()}")
            self._refresh()

    def done(self, r: Any) -> None:
        import time
        with self.lock:
            _, t0 = self.running.pop(r.index)
            seconds = time.monotonic() - t0
            self.finished += 1
            if seconds > 5:  # a skipped (already finished) cell says nothing about the pace
                self.durations.append(seconds)
            if self.progress is not None:
                self.progress.remove_task(self.cell_tasks.pop(r.index))
            ok = "[green]ok[/]" if r.returncode == 0 else f"[red]exit {r.returncode}[/]"
            if getattr(r, "elsewhere", False):  # a cells.CellRun another process holds
                ok = "[cyan]running in another process[/]"
            self._print(f"cell {r.index} {r.run_id}: {ok} in {duration(seconds)} (log {r.log});"
                        f" {self.counts()}")
            self._refresh()

    def _refresh(self) -> None:
        if self.progress is not None:
            self.progress.update(self.overall, completed=self.finished, info=self.counts())

    def _poll(self) -> None:
        from hw0cli import runs, store
        from hw0cli.train import run_id_for
        while not self.stop_event.wait(1.0):
            with self.lock:
                cells = dict(self.running)
            for i, (cfg, _) in cells.items():
                try:
                    a = store.read_h5(runs.run_path(cfg.out, run_id_for(cfg)),
                                      attrs_only=True).attrs
                except Hw0Error:
                    continue  # not written yet
                with self.lock:
                    if i in self.cell_tasks and self.progress is not None:
                        done = int(a.get("epochs_done", 0))
                        self.progress.update(self.cell_tasks[i], completed=done,
                                             info=f"epoch {done}/{cfg.epochs} (cap)")
            with self.lock:
                self._refresh()


