"""Rich console helpers shared by the CLI: one console, progress bars, tables.

On a terminal progress is a live rich bar; without one (a log file, CI, ``nohup``) a bar would
print nothing until the end, so progress becomes a plain line at most every ``LOG_EVERY_S``
seconds and one when the work is done.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable, Iterator

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

console = Console(stderr=False, highlight=False, soft_wrap=True)
if not console.is_terminal:  # logs and CI: tables 120 columns wide instead of rich's default 80
    console.width = max(console.width, 120)


LOG_EVERY_S = 30.0  # without a terminal: at most one progress line per this many seconds


class LogProgress:
    """``advance(n)`` for a log: a line ``<what>: <done>/<total> (<pct>), <elapsed>, eta <s>`` at
    most every ``every_s`` seconds, and ``done()``'s closing line with the count
    and the time taken."""

    def __init__(
        self,
        description: str,
        total: int | None,
        every_s: float,
        log: Callable[[str], None],
        clock: Callable[[], float] = time.monotonic,
    ):
        self.description, self.total, self.every_s, self.log, self.clock = (
            description,
            total,
            every_s,
            log,
            clock,
        )
        self.count, self.started = 0, clock()
        self.last = self.started

    def _counted(self) -> str:
        if not self.total:
            return f"{self.count}"
        return f"{self.count}/{self.total} ({self.count / self.total:.0%})"

    def __call__(self, n: int = 1) -> None:
        self.count += n
        now = self.clock()
        if now - self.last < self.every_s:
            return
        self.last, elapsed = now, now - self.started
        eta = ""
        if self.total and self.count:
            eta = f", eta {max(self.total - self.count, 0) * elapsed / self.count:.0f}s"
        self.log(f"{self.description}: {self._counted()}, {elapsed:.0f}s{eta}")

    def done(self) -> None:
        if self.count:
            self.log(
                f"{self.description}: {self._counted()} done in {self.clock() - self.started:.0f}s"
            )


@contextlib.contextmanager
def progress_bar(description: str, total: int | None) -> Iterator:
    """Yield ``advance(n)``: a rich progress bar (count, elapsed time, ETA) on a terminal, periodic
    plain lines (:class:`LogProgress`) otherwise."""
    if not console.is_terminal:
        progress = LogProgress(description, total, LOG_EVERY_S, console.print)
        yield progress
        progress.done()
        return
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("eta"),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=console, transient=False) as bar:
        task = bar.add_task(description, total=total)
        yield lambda n=1: bar.advance(task, n)


class RichReporter:
    """Per-epoch progress bar (loss, img/s, ETA) and one line per finished epoch."""

    def __init__(self, run: str, fold: int | str, enabled: bool = True):
        refit = fold == "full"  # pipeline.config.names.FULL: the full-data refit
        self.label, self.enabled = (
            f"{run} full-data refit" if refit else f"{run} fold {fold}",
            enabled,
        )
        self.bar: Progress | None = None

    def start_epoch(self, epoch: int, epochs: int, steps: int) -> None:
        if not self.enabled:
            return
        self.epoch, self.epochs, self.images, self.loss, self.started = (
            epoch,
            epochs,
            0,
            0.0,
            time.perf_counter(),
        )
        columns = (
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("loss {task.fields[loss]:.4f}  {task.fields[ips]:.1f} img/s  eta"),
            TimeRemainingColumn(),
        )
        self.bar = Progress(
            *columns, console=console, transient=True, disable=not console.is_terminal
        )
        self.bar.start()
        self.task = self.bar.add_task(
            f"{self.label} epoch {epoch}/{epochs}", total=steps, loss=0.0, ips=0.0
        )

    def step(self, images: int, loss: float) -> None:
        if not self.bar:
            return
        self.images += images
        self.loss = loss if self.images == images else 0.9 * self.loss + 0.1 * loss
        ips = self.images / max(time.perf_counter() - self.started, 1e-9)
        self.bar.update(self.task, advance=1, loss=self.loss, ips=ips)

    def end_epoch(self, record, best: bool) -> None:
        if not self.enabled:
            return
        if self.bar:
            self.bar.stop()
        console.print(
            f"{self.label} epoch {record.epoch}/{self.epochs}: train {record.train_loss:.4f}  "
            f"{validation(record, best)}  lr {record.lr:.1e}  {record.img_per_s:.1f} img/s  "
            f"{record.seconds:.0f}s{' [green]*best*[/green]' if validated(record) and best else ''}"
        )


def validated(record) -> bool:
    """Whether an epoch record has validation scores (a full-data refit has none: NaN)."""
    return not math.isnan(record.val_loss)


def validation(record, best: bool) -> str:
    """The validation part of an epoch line; for a full-data refit, what is true instead: nothing
    was validated, and model.pt is the latest epoch (``best``: the epoch was kept)."""
    if not validated(record):
        return "no validation images (full-data refit)" + (
            "; model.pt = this epoch" if best else ""
        )
    extra = record.extra or {}
    multi = (
        f"  mIoU {extra['miou']:.4f}  acc {extra['acc']:.4f}  CE {extra['ce']:.4f}"
        if "miou" in extra
        else ""
    )
    return f"val {record.val_loss:.4f}  dice {record.val_dice:.4f}{multi}"
