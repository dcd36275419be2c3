"""Stop requests from SIGINT/SIGTERM, honoured at step and stage boundaries on every rank.

A signal only sets a flag: a handler that raised inside PETSc's solve would come back as a PETSc
error and be taken for a failed step. The run asks :func:`check` at its boundaries; the ranks
agree (one ``allreduce``) so that all stop at the same step even if only one was signalled
(``mpiexec`` forwards both signals to every rank). A second Ctrl-C stops at once, writing nothing.
"""

from __future__ import annotations

import contextlib
import signal

_requested: int = 0  # signal number of the first stop request, 0 if none


class Interrupted(Exception):
    """A stop was requested by signal ``signum``; exit status 128 + signum."""

    def __init__(self, signum: int, where: str):
        self.signum, self.where = signum, where
        super().__init__(f"interrupted by {signal.Signals(signum).name} {where}")

    @property
    def exit_status(self) -> int:
        return 128 + self.signum


def _handler(signum, frame) -> None:
    global _requested
    if _requested and signum == signal.SIGINT:
        raise KeyboardInterrupt  # asked twice: no more waiting for a step boundary
    _requested = _requested or signum


@contextlib.contextmanager
def stop_on_signals():
    """Within the block, SIGINT and SIGTERM request a stop instead of killing the process."""
    global _requested
    _requested = 0
    previous = {s: signal.signal(s, _handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for s, h in previous.items():
            signal.signal(s, h)
        _requested = 0


def requested(comm) -> int:
    """The signal number if any rank was asked to stop, else 0 (collective)."""
    return int(comm.allreduce(_requested, op=_max_op()))


def check(comm, where: str) -> None:
    """Raise :class:`Interrupted` on every rank if any rank was asked to stop (collective)."""
    signum = requested(comm)
    if signum:
        raise Interrupted(signum, where)


def _max_op():
    from mpi4py import MPI

    return MPI.MAX
