"""MPI without DOLFINx: ``mpi4py.MPI``, after the wheel's initialisation when that is installed.

``femion validate`` needs a communicator (only rank 0 prints) but neither DOLFINx nor PETSc;
:mod:`femion._dolfinx` imports its MPI from here, so the wheel is initialised in one place.
"""

from __future__ import annotations

try:  # pragma: no cover - depends on the install path
    import dolfinx_solver  # side effect: loads the vendored MPI, checks petsc4py (imports neither)
except ImportError:  # conda-forge / container install
    dolfinx_solver = None

from mpi4py import MPI

WHEEL = dolfinx_solver is not None

__all__ = ["MPI", "WHEEL"]
