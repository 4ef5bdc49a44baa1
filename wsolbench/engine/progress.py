"""Rich progress bars for training and inference (rank 0 only; silent when disabled)."""

from __future__ import annotations

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

console = Console(stderr=True)


def make_progress(*extra_columns, enabled: bool = True) -> Progress:
    return Progress(
        TextColumn("[bold blue]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        *extra_columns,
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console,
        disable=not enabled,
        transient=False,
    )


class TrainProgress:
    """One bar for the run (epochs) and one for the current epoch (steps, loss, acc, img/s)."""

    def __init__(self, epochs: int, steps_per_epoch: int, enabled: bool = True):
        self.enabled = enabled
        self.steps = steps_per_epoch
        self.progress = make_progress(TextColumn("{task.fields[stats]}"), enabled=enabled)
        self.run_task = self.progress.add_task("train", total=epochs, stats="")
        self.epoch_task = None

    def __enter__(self) -> TrainProgress:
        self.progress.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        if exc[0] is None and self.epoch_task is not None:
            self.progress.advance(self.run_task)
        self.progress.__exit__(*exc)

    def skip_to(self, epoch: int) -> None:
        self.progress.update(self.run_task, completed=epoch)

    def start_epoch(self, epoch: int) -> None:
        if self.epoch_task is not None:
            self.progress.remove_task(self.epoch_task)
            self.progress.advance(self.run_task)
        self.epoch_task = self.progress.add_task(f"epoch {epoch + 1}", total=self.steps, stats="")

    def update(self, step: int, loss: float, accuracy: float, images_per_second: float) -> None:
        stats = f"loss {loss:.4f}  acc {accuracy:5.1f}%  {images_per_second:,.0f} img/s"
        self.progress.update(self.epoch_task, completed=step, stats=stats)
        self.progress.update(self.run_task, stats=stats)
