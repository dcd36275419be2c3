"""The magnetic flux density B (T) the Lorentz terms see: P1 3-vectors on both submeshes, the
largest |B| so far and the Hall parameter it gives."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from femion._dolfinx import MPI, dolfinx
from femion.laws.lorentz import hall_parameter


class MagneticField:
    """B on the oxide and electrolyte submeshes (``B["oxide"]``, ``B["electrolyte"]``)."""

    def __init__(self, ox_mesh, el_mesh, comm):
        self.comm = comm
        self.B = {key: dolfinx.fem.Function(dolfinx.fem.functionspace(m, ("Lagrange", 1, (3,))), name="B")
                  for key, m in (("oxide", ox_mesh), ("electrolyte", el_mesh))}

    def set(self, field: Callable[[np.ndarray], np.ndarray] | dict) -> None:
        """x → B(x) ((3, N)), or {"oxide": array, "electrolyte": array} of nodal 3-vectors."""
        for key, B in self.B.items():
            if callable(field):
                B.interpolate(lambda x: np.asarray(field(x), dtype=float).reshape(3, -1))
            else:
                B.x.array[:] = field[key]
            B.x.scatter_forward()

    def max_norm(self) -> float:
        """max |B| (T) over both submeshes and all ranks."""
        bmax = max(float(np.linalg.norm(B.x.array.reshape(-1, 3), axis=1).max(initial=0.0)) for B in self.B.values())
        return self.comm.allreduce(bmax, op=MPI.MAX)


def max_hall_parameter(ions, B_magnitude: float, T: float) -> float:
    """Largest |β| = |z| F D |B|/(RT) over ``ions`` at |B| (T) and T (K)."""
    return max(abs(hall_parameter(i.valence, i.diffusivity, B_magnitude, T)) for i in ions)
