"""The results directory: :mod:`~femion.results.writer` (a run writes it, atomically) and
:mod:`~femion.results.reader` (``open_result``). Importing this package loads neither DOLFINx nor
pyvista."""


class OutputError(RuntimeError):
    """The output directory cannot be written or read."""


def on_root(comm, fn, what: str):
    """Run ``fn`` on rank 0 and return its value on every rank; an OutputError or OSError there
    raises OutputError on every rank (instead of leaving the other ranks waiting at the next
    collective call). Anything else propagates on rank 0, where the CLI ends the job (MPI_Abort).

    Drawing the figures takes seconds, so rank 0 gets the cores: the other ranks wait asleep, not in
    MPI's blocking wait (which polls at full speed), and ``fn`` runs with one BLAS thread (a threaded
    BLAS on busy cores stalls: scipy's Delaunay interpolation of the figures and the report took
    10-30 s a call instead of 10 ms on 2 cores; the arrays drawn are small)."""
    import time

    value, error = None, None
    if comm.rank == 0:
        from threadpoolctl import threadpool_limits

        try:
            with threadpool_limits(limits=1, user_api="blas"):
                value = fn()
        except OutputError as exc:
            error = str(exc)
        except OSError as exc:
            error = f"{what}: {exc.strerror or exc}" + (f" ({exc.filename})" if exc.filename else "")
    if comm.size > 1:
        done = comm.Ibarrier()
        while not done.Test():
            time.sleep(1e-3)
    value, error = comm.bcast((value, error), root=0)
    if error is not None:
        raise OutputError(error)
    return value
