"""Progress display for long work: rich on rank 0, silent on the other ranks."""

from __future__ import annotations

import contextlib
import sys
import time


class Stages:
    """Named stages of a run, shown as a rich progress bar on rank 0."""

    def __init__(self, names: list[str], rank: int = 0, enabled: bool = True):
        self.names = names
        self.enabled = enabled and rank == 0
        self.times: dict[str, float] = {}
        self._progress = None
        self._task = None

    def __enter__(self):
        if self.enabled:
            from rich.console import Console
            from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

            self._progress = Progress(
                TextColumn("[bold]{task.description:<22}"),
                BarColumn(),
                TextColumn("{task.completed}/{task.total}"),
                TimeElapsedColumn(),
                console=Console(file=sys.stderr),
                transient=False,
            )
            self._progress.__enter__()
            self._task = self._progress.add_task("starting", total=len(self.names))
        return self

    def __exit__(self, *exc):
        if self._progress is not None:
            self._progress.__exit__(*exc)
        return False

    @contextlib.contextmanager
    def stage(self, name: str):
        """Time one stage and advance the bar when it ends."""
        if self._progress is not None:
            self._progress.update(self._task, description=name)
        t0 = time.perf_counter()
        yield
        self.times[name] = time.perf_counter() - t0
        if self._progress is not None:
            self._progress.advance(self._task)

