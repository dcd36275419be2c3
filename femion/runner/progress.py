"""Progress of a run: a rich display on rank 0 at a terminal, plain log lines otherwise.

The stages of the pipeline advance one bar; the transport stage adds a bar in simulated time
(t of t_end, the step, Newton iterations, the protocol stage running). Without a terminal (a batch
job) or with ``--no-progress``, rank 0 logs through the ``femion`` logger (INFO): each protocol stage
as it starts and ends, and the simulated time at most every :data:`LOG_EVERY` seconds of wall time.
"""

from __future__ import annotations

import contextlib
import logging
import sys
import time

log = logging.getLogger("femion")

#: wall-clock seconds between two plain progress lines of the transport
LOG_EVERY = 10.0


class _Stderr(logging.StreamHandler):
    """A handler writing to whatever ``sys.stderr`` is at the time (pytest, notebooks replace it)."""

    @property  # type: ignore[override]
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, value) -> None:
        pass


def configure_logging(verbosity: int, rank: int) -> None:
    """The ``femion`` logger of the command line: INFO (``verbosity`` 0), DEBUG (> 0) or WARNING
    (< 0) to stderr as ``femion: <message>``, from rank 0 only."""
    level = logging.DEBUG if verbosity > 0 else logging.INFO if verbosity == 0 else logging.WARNING
    log.setLevel(level if rank == 0 else logging.CRITICAL + 1)
    if not any(isinstance(h, _Stderr) for h in log.handlers):
        handler = _Stderr()
        handler.setFormatter(logging.Formatter("femion: %(message)s"))
        log.addHandler(handler)
    log.propagate = False


class TransportProgress:
    """The transport in simulated time: :meth:`stage` as each protocol stage starts, :meth:`step`
    after every accepted step, :meth:`close` at the end. A rich task when ``progress`` holds a
    rich Progress, else log lines (rank 0)."""

    def __init__(self, t_end: float, n_stages: int, rank: int = 0, progress=None):
        self.t_end, self.n_stages, self.rank = float(t_end), n_stages, rank
        self.progress = progress if rank == 0 else None
        self.task = None if self.progress is None else self.progress.add_task("transport", total=self.t_end)
        self.label, self.index, self.steps, self.newton = "", 0, 0, 0
        self.t, self.dt = 0.0, 0.0  # the last accepted step's end time and size, s
        self._last_log = time.perf_counter()

    def stage(self, index: int, label: str, t_start: float, t_end: float) -> None:
        if self.label and self.progress is None:
            self._line(f"stage {self.index + 1}/{self.n_stages} {self.label} done")
        self.index, self.label = index, label
        if self.progress is None:
            log.info("stage %d/%d %s: t = %g to %g s", index + 1, self.n_stages, label, t_start, t_end)

    def step(self, t: float, dt: float, newton: int) -> None:
        self.steps += 1
        self.newton += newton
        self.t, self.dt = t, dt
        if self.progress is not None:
            self.progress.update(self.task, completed=min(t, self.t_end),
                                 description=f"t {t:.4g}/{self.t_end:.4g} s dt {dt:.2g} s N {newton} [{self.label}]")
        elif time.perf_counter() - self._last_log >= LOG_EVERY:
            self._line(f"stage {self.index + 1}/{self.n_stages} {self.label}")

    def _line(self, where: str) -> None:
        log.info("%s: t = %.4g of %.4g s (%.0f %%), dt %.3g s, %d steps, %d Newton iterations", where, self.t,
                 self.t_end, 100.0 * self.t / self.t_end if self.t_end else 100.0, self.dt, self.steps, self.newton)
        self._last_log = time.perf_counter()

    def close(self) -> None:
        if self.label and self.progress is None:
            self._line(f"stage {self.index + 1}/{self.n_stages} {self.label} done")
        if self.progress is not None and self.task is not None:
            self.progress.remove_task(self.task)
            self.task = None


class Stages:
    """Named stages of a run, shown as a rich progress bar on rank 0 at a terminal (logged as they
    start otherwise)."""

    def __init__(self, names: list[str], rank: int = 0, enabled: bool = True):
        self.names = names
        self.rank = rank
        self.enabled = enabled and rank == 0 and sys.stderr.isatty()
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
        else:
            log.debug("%s", name)
        t0 = time.perf_counter()
        yield
        self.times[name] = time.perf_counter() - t0
        if self._progress is not None:
            self._progress.advance(self._task)

    def transport(self, t_end: float, n_stages: int) -> TransportProgress:
        """The transport's progress in simulated time, up to ``t_end`` (s) over ``n_stages`` stages."""
        return TransportProgress(t_end, n_stages, self.rank, self._progress)
