"""The one place that imports DOLFINx.

The PyPI wheel ``dolfinx-solver-real`` vendors MPI/PETSc and must be
initialised (``import dolfinx_solver``) before ``dolfinx`` or ``petsc4py``
are imported. conda-forge builds and the official FEniCS containers have no
such package, and need nothing. Every femion module that needs DOLFINx or
PETSc imports them from here.
"""

from __future__ import annotations

try:  # pragma: no cover - depends on the install path
    import dolfinx_solver  # noqa: F401  (side effect: loads the vendored MPI/PETSc)
except ImportError:  # conda-forge / container install
    dolfinx_solver = None

import dolfinx  # noqa: E402
import dolfinx.fem  # noqa: E402
import dolfinx.fem.petsc  # noqa: E402
import dolfinx.io  # noqa: E402
import dolfinx.mesh  # noqa: E402
import ufl  # noqa: E402
from mpi4py import MPI  # noqa: E402
from petsc4py import PETSc  # noqa: E402

WHEEL = dolfinx_solver is not None

__all__ = ["MPI", "PETSc", "WHEEL", "dolfinx", "geometry_dofmap", "ufl"]


def geometry_dofmap(msh):
    """(num_cells, nodes_per_cell) geometry dofmap; ``dofmaps[0]`` from 0.11, ``dofmap`` before."""
    geom = msh.geometry
    return geom.dofmaps[0] if hasattr(type(geom), "dofmaps") else geom.dofmap
