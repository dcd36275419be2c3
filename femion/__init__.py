"""femion: finite-element multiphysics for current- and field-driven ion transport in thin films.

The chain: case file → gmsh layer stack → conductor current → magnetic field →
(transport) → results and pictures. From Python (see :mod:`femion.api`)::

    import femion
    case = femion.load_case("cases/fig4_model_III.yaml", quick=True)
    result = femion.run(case, out="results/model_III")
    result.field("theta", result.times[-1])      # a pyvista grid, array "theta"

``open_result(path)`` reads a finished run.
"""

__version__ = "0.1.0"


def open_result(path):
    """Open a results directory written by ``femion run`` (see :class:`femion.results.reader.Result`)."""
    from femion.results.reader import open_result as _open

    return _open(path)


def load_case(source, set=None, quick=False):
    """The case of a case file or mapping, checked as ``femion run`` checks it (:func:`femion.api.load_case`)."""
    from femion.api import load_case as _load

    return _load(source, set=set, quick=quick)


def run(case, out=None, comm=None, **options):
    """Run a case and return its result, opened (:func:`femion.api.run`)."""
    from femion.api import run as _run

    return _run(case, out=out, comm=comm, **options)


__all__ = ["__version__", "load_case", "open_result", "run"]
