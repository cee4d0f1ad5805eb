"""Rich console helpers shared by the CLI: one console, progress bars, tables."""
from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

console = Console(stderr=False, highlight=False, soft_wrap=True)
if not console.is_terminal:  # logs and CI: tables 120 columns wide instead of rich's default 80
    console.width = max(console.width, 120)


@contextlib.contextmanager
def progress_bar(description: str, total: int | None) -> Iterator:
    """Yield ``advance(n)``, driving a rich progress bar with count, elapsed time and ETA."""
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
               TextColumn("eta"), TimeRemainingColumn())
    with Progress(*columns, console=console, transient=False, disable=not console.is_terminal) as bar:
        task = bar.add_task(description, total=total)
        yield lambda n=1: bar.advance(task, n)


class RichReporter:
    """Per-epoch progress bar (loss, img/s, ETA) and one line per finished epoch."""

    def __init__(self, run: str, fold: int, enabled: bool = True):
        self.label, self.enabled = f"{run} fold {fold}", enabled
        self.bar: Progress | None = None

    def start_epoch(self, epoch: int, epochs: int, steps: int) -> None:
        if not self.enabled:
            return
        self.epoch, self.epochs, self.images, self.loss, self.started = epoch, epochs, 0, 0.0, time.perf_counter()
        columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                   TextColumn("loss {task.fields[loss]:.4f}  {task.fields[ips]:.1f} img/s  eta"),
                   TimeRemainingColumn())
        self.bar = Progress(*columns, console=console, transient=True, disable=not console.is_terminal)
        self.bar.start()
        self.task = self.bar.add_task(f"{self.label} epoch {epoch}/{epochs}", total=steps, loss=0.0, ips=0.0)

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
        mark = " [green]*best*[/green]" if best else ""
        extra = record.extra or {}
        multi = f"  mIoU {extra['miou']:.4f}  acc {extra['acc']:.4f}  CE {extra['ce']:.4f}" if "miou" in extra else ""
        console.print(f"{self.label} epoch {record.epoch}/{self.epochs}: train {record.train_loss:.4f}  "
                      f"val {record.val_loss:.4f}  dice {record.val_dice:.4f}{multi}  lr {record.lr:.1e}  "
                      f"{record.img_per_s:.1f} img/s  {record.seconds:.0f}s{mark}")
