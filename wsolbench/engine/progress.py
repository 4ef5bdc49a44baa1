"""Progress for training and inference (rank 0 only; silent when disabled).

On a terminal: rich bars. Elsewhere (a log file, CI): no bars, one line when a stage starts
and one when it ends, so a log shows what is running without redrawn bars. Every description
names what runs: ``stage(...)`` puts the caller's context in front of it, e.g. the bench's
"model 3 of 8 (cam)", so a bar reads "model 3 of 8 (cam): infer test".
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

console = Console(stderr=True)
_CONTEXT: ContextVar[tuple[str, ...]] = ContextVar("progress_context", default=())


@contextmanager
def stage(text: str) -> Iterator[None]:
    """Name what runs inside the block in every progress description (nested: joined)."""
    token = _CONTEXT.set((*_CONTEXT.get(), text))
    try:
        yield
    finally:
        _CONTEXT.reset(token)


def describe(what: str) -> str:
    """``what`` behind the current context: "model 3 of 8 (cam): infer test"."""
    return ": ".join((*_CONTEXT.get(), what))


def make_progress(*extra_columns, enabled: bool = True):
    """Bars on a terminal, a line per stage elsewhere (``LineProgress``); silent if disabled."""
    if enabled and not console.is_terminal:
        return LineProgress(console)
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


class LineProgress:
    """The part of rich's ``Progress`` the commands use, as plain lines: a task says when it
    starts (unless added with ``log_start=False``) and when it completes, with its time and
    its ``stats`` field."""

    def __init__(self, out: Console):
        self.out = out
        self.tasks: dict[int, dict[str, Any]] = {}

    def __enter__(self) -> LineProgress:
        return self

    def __exit__(self, *exc) -> None:
        return None

    def add_task(
        self, description: str, total: float | None = None, completed: float = 0, **fields
    ) -> int:
        task = len(self.tasks)
        done = bool(total) and completed >= total  # nothing left: one line, no "done in"
        self.tasks[task] = dict(
            description=description,
            total=total,
            completed=completed,
            started=time.perf_counter(),
            done=done,
            fields=fields,
        )
        if done:
            self._line(description)
        elif fields.get("log_start", True):
            size = f" ({int(total):,})" if total else ""
            self._line(f"{description}{size} ...")
        return task

    def advance(self, task: int, advance: float = 1) -> None:
        self.update(task, completed=self.tasks[task]["completed"] + advance)

    def update(self, task: int, completed: float | None = None, **fields) -> None:
        state = self.tasks[task]
        state["fields"].update(fields)
        if completed is not None:
            state["completed"] = completed
            if state["total"] and completed >= state["total"]:
                self._finish(task)

    def remove_task(self, task: int) -> None:
        self._finish(task)

    def _finish(self, task: int) -> None:
        state = self.tasks[task]
        if state["done"]:
            return
        state["done"] = True
        seconds = time.perf_counter() - state["started"]
        stats = state["fields"].get("stats") or ""
        self._line(
            f"{state['description']} done in {seconds:.0f} s" + (f" ({stats})" if stats else "")
        )

    def _line(self, text: str) -> None:
        self.out.print(escape(text), highlight=False, soft_wrap=True)


class TrainProgress:
    """One bar for the run (epochs) and one for the current epoch (steps, loss, acc, img/s);
    in a log, a line per epoch."""

    def __init__(self, epochs: int, steps_per_epoch: int, enabled: bool = True, start: int = 0):
        self.enabled = enabled
        self.steps = steps_per_epoch
        self.epochs = epochs
        self.progress = make_progress(TextColumn("{task.fields[stats]}"), enabled=enabled)
        if start >= epochs:
            label = "trained (every epoch is in the checkpoint)"
        else:
            label = f"train, from epoch {start + 1} of {epochs}" if start else "train"
        self.run_task = self.progress.add_task(
            describe(label), total=epochs, completed=start, stats=""
        )
        self.epoch_task = None

    def __enter__(self) -> TrainProgress:
        self.progress.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        if exc[0] is None and self.epoch_task is not None:
            self.progress.remove_task(self.epoch_task)
            self.progress.advance(self.run_task)
        self.progress.__exit__(*exc)

    def skip_to(self, epoch: int) -> None:
        self.progress.update(self.run_task, completed=epoch)

    def start_epoch(self, epoch: int) -> None:
        if self.epoch_task is not None:
            self.progress.remove_task(self.epoch_task)
            self.progress.advance(self.run_task)
        self.epoch_task = self.progress.add_task(
            describe(f"epoch {epoch + 1} of {self.epochs}"),
            total=self.steps,
            stats="",
            log_start=False,
        )

    def update(self, step: int, loss: float, accuracy: float, images_per_second: float) -> None:
        stats = f"loss {loss:.4f}  acc {accuracy:5.1f}%  {images_per_second:,.0f} img/s"
        self.progress.update(self.epoch_task, completed=step, stats=stats)
        self.progress.update(self.run_task, stats=stats)
