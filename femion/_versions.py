"""Which DOLFINx femion runs on, checked as :mod:`femion._dolfinx` loads it (plain Python: the
command line catches the error without importing DOLFINx)."""

from __future__ import annotations

#: the DOLFINx releases femion runs on: (major, minor) from, and up to but not including
SUPPORTED_DOLFINX = ((0, 11), (0, 12))


class DolfinxVersionError(ImportError):
    """The installed DOLFINx is not one femion supports (one line: found, needed, how to get it)."""


def check_dolfinx_version(version: str) -> None:
    """DolfinxVersionError unless ``version`` (e.g. "0.11.1") is in :data:`SUPPORTED_DOLFINX`."""
    try:
        found = tuple(int(p) for p in version.split(".")[:2])
    except ValueError:
        found = (-1, -1)
    (lo, hi) = SUPPORTED_DOLFINX
    if not lo <= found < hi:
        raise DolfinxVersionError(
            f"femion needs DOLFINx {lo[0]}.{lo[1]} (found {version}): install femion[dolfinx] (the PyPI wheel), "
            f"conda-forge fenics-dolfinx={lo[0]}.{lo[1]} or the dolfinx/dolfinx:v{lo[0]}.{lo[1]}.0 image")
