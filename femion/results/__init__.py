"""The results directory: :mod:`~femion.results.writer` (a run writes it, atomically) and
:mod:`~femion.results.reader` (``open_result``). Importing this package loads neither DOLFINx nor
pyvista."""


class OutputError(RuntimeError):
    """The output directory cannot be written or read."""
