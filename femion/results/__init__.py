"""The results directory: :mod:`~femion.results.writer` (a run writes it, atomically) and
:mod:`~femion.results.reader` (``open_result``). Importing this package loads neither DOLFINx nor
pyvista."""


class OutputError(RuntimeError):
    """The output directory cannot be written or read."""


def on_root(comm, fn, what: str):
    """Run ``fn`` on rank 0 and return its value on every rank; an OutputError or OSError there
    raises OutputError on every rank (instead of leaving the other ranks waiting at the next
    collective call). Anything else propagates on rank 0, where the CLI ends the job (MPI_Abort)."""
    value, error = None, None
    if comm.rank == 0:
        try:
            value = fn()
        except OutputError as exc:
            error = str(exc)
        except OSError as exc:
            error = f"{what}: {exc.strerror or exc}" + (f" ({exc.filename})" if exc.filename else "")
    value, error = comm.bcast((value, error), root=0)
    if error is not None:
        raise OutputError(error)
    return value
