"""femion: finite-element multiphysics for current- and field-driven ion transport in thin films.

The chain: case file → gmsh layer stack → conductor current → magnetic field →
(transport) → results and pictures. ``open_result(path)`` reads a finished run.
"""

__version__ = "0.1.0"


def open_result(path):
    """Open a results directory written by ``femion run`` (see :class:`femion.results.reader.Result`)."""
    from femion.results.reader import open_result as _open

    return _open(path)


__all__ = ["__version__", "open_result"]
