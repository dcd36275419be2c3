"""Steady conduction in a thin conducting sheet (ITO) with contacts.

A conductor a few hundred nanometres thick and centimetres wide carries its
current in plane, so it is solved as a sheet on the plan mesh:

    −∇·(G ∇φ_s) = 0   on the conductor's plan region,   G = σ·t = 1/R_s  [S]

with φ_s = 0 V on the ``to`` contact and φ_s = V on the ``from`` contact,
insulated (n·G∇φ_s = 0) elsewhere. The problem is linear, so it is solved once
for V = 1 V and scaled: a current drive I gives V = I·R. Sheet current density
K = −G∇φ_s (A/m), resistance R = V/I, Joule power P = ∫ G|∇φ_s|² dA = I²R.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from shapely.geometry.base import BaseGeometry

from femion._dolfinx import MPI, PETSc, dolfinx, geometry_dofmap, ufl
from femion.geometry.plan import points_in
from femion.magnetic.biot_savart import SheetCurrent

#: distance (m) within which a node counts as lying on a contact
CONTACT_TOLERANCE = 1e-9

SOLVER_OPTIONS = {
    "direct": {"ksp_type": "preonly", "pc_type": "lu", "pc_factor_mat_solver_type": "mumps"},
    "iterative": {"ksp_type": "cg", "pc_type": "gamg", "ksp_rtol": 1e-12, "ksp_atol": 1e-14, "ksp_max_it": 2000,
                  # aggressive coarsening by MIS-2, not by squaring the graph: 1.6x on 2 ranks at 1e6 cells
                  # against 1.3-1.5x (the squared graph's MatTransposeMatMult does not scale)
                  "pc_gamg_aggressive_square_graph": False},
}


class ConductorSolveError(RuntimeError):
    """The linear solver for the sheet potential did not converge."""


@dataclass
class SheetSolution:
    """Potential and current of one driven conductor sheet (SI units)."""

    name: str
    mesh: dolfinx.mesh.Mesh  # plan submesh of the conductor
    potential: dolfinx.fem.Function  # φ_s, V (P1)
    sheet_current: dolfinx.fem.Function  # K, A/m (DG0 vector, cell average)
    sheet_conductance: float  # G, S
    z: float  # height of the sheet's mid-plane, m
    current: float  # I from the 'from' contact into the sheet, A
    voltage: float  # φ_s(from) − φ_s(to), V
    resistance: float  # R = V/I, Ω
    joule_power: float  # P = ∫ G|∇φ_s|² dA, W
    solver_iterations: int

    def current_into(self, inside: Callable[[np.ndarray], np.ndarray]) -> float:
        """Current (A) flowing into the region whose nodes satisfy ``inside(x)``.

        Discrete-conservative flux: I = −∫ G∇φ_s·∇w dA with w = 1 on the region's
        nodes and 0 elsewhere; it is exact for the Galerkin solution, so any cut
        across the conductor carries the drive current to solver tolerance.
        """
        V = self.potential.function_space
        w = dolfinx.fem.Function(V)
        dofs = dolfinx.fem.locate_dofs_geometrical(V, inside)
        w.x.array[dofs] = 1.0
        w.x.scatter_forward()
        G = self.sheet_conductance
        form = dolfinx.fem.form(-G * ufl.inner(ufl.grad(self.potential), ufl.grad(w)) * ufl.dx)
        return self.mesh.comm.allreduce(dolfinx.fem.assemble_scalar(form), op=MPI.SUM)

    def panels(self) -> SheetCurrent:
        """All cells of the sheet (gathered on every rank) as panels with constant K."""
        msh = self.mesh
        num_owned = msh.topology.index_map(2).size_local
        cells = np.arange(num_owned, dtype=np.int32)
        xdofs = geometry_dofmap(msh)[cells]
        if msh.topology.cell_type == dolfinx.mesh.CellType.quadrilateral:
            xdofs = xdofs[:, [0, 1, 3, 2]]  # dolfinx quads are tensor-ordered; panels go round
        verts = msh.geometry.x[xdofs][:, :, :2]
        kdofs = self.sheet_current.function_space.dofmap.list[cells, 0]
        K = self.sheet_current.x.array.reshape(-1, 2)[kdofs]
        comm = msh.comm
        verts = np.concatenate(comm.allgather(verts))
        K = np.concatenate(comm.allgather(K))
        return SheetCurrent(vertices=verts, sheet_current=K, z=self.z)


def _unit_potential(msh, G, on_from, on_to, solver: str, prefix: str):
    V = dolfinx.fem.functionspace(msh, ("Lagrange", 1))
    d_from = dolfinx.fem.locate_dofs_geometrical(V, on_from)
    d_to = dolfinx.fem.locate_dofs_geometrical(V, on_to)
    u, v = ufl.TrialFunction(V), ufl.TestFunction(V)
    a = G * ufl.inner(ufl.grad(u), ufl.grad(v)) * ufl.dx
    L = dolfinx.fem.Constant(msh, 0.0) * v * ufl.dx
    bcs = [
        dolfinx.fem.dirichletbc(PETSc.ScalarType(1.0), d_from, V),
        dolfinx.fem.dirichletbc(PETSc.ScalarType(0.0), d_to, V),
    ]
    problem = dolfinx.fem.petsc.LinearProblem(
        a, L, bcs=bcs, petsc_options_prefix=prefix, petsc_options=SOLVER_OPTIONS[solver]
    )
    phi = problem.solve()
    ksp = problem.solver
    reason = ksp.getConvergedReason()
    if reason <= 0:
        raise ConductorSolveError(
            f"sheet potential solve ({solver}) did not converge: KSP reason {reason} "
            f"after {ksp.getIterationNumber()} iterations"
        )
    if not np.all(np.isfinite(phi.x.array)):
        raise ConductorSolveError("sheet potential solve returned non-finite values")
    return phi, d_from, ksp.getIterationNumber()


def solve_sheet(
    plan_mesh: dolfinx.mesh.Mesh,
    cells: np.ndarray,
    *,
    name: str,
    sheet_conductance: float,
    z: float,
    contact_from: BaseGeometry,
    contact_to: BaseGeometry,
    current: float | None = None,
    voltage: float | None = None,
    solver: str = "direct",
) -> SheetSolution:
    """Solve −∇·(G∇φ_s) = 0 on the plan ``cells`` of one conductor (see module doc).

    ``contact_from``/``contact_to`` are plan regions (m); the conductor's nodes in or
    on them are the contact. Give exactly one of ``current`` (A) or ``voltage`` (V);
    either may be negative (current flowing from ``to`` to ``from``).
    """
    if (current is None) == (voltage is None):
        raise ValueError("give exactly one of current or voltage")
    if not sheet_conductance > 0:
        raise ValueError(f"sheet_conductance must be > 0 (got {sheet_conductance})")
    tdim = plan_mesh.topology.dim
    num_owned = plan_mesh.topology.index_map(tdim).size_local
    owned = np.asarray(cells, dtype=np.int32)
    owned = owned[owned < num_owned]
    msh = dolfinx.mesh.create_submesh(plan_mesh, tdim, owned)[0]
    comm = msh.comm

    def on(geom):
        return lambda x: points_in(geom, x[0], x[1], CONTACT_TOLERANCE)

    for label, geom in (("from", contact_from), ("to", contact_to)):
        V0 = dolfinx.fem.functionspace(msh, ("Lagrange", 1))
        n = comm.allreduce(len(dolfinx.fem.locate_dofs_geometrical(V0, on(geom))), op=MPI.SUM)
        if n == 0:
            raise ValueError(f"conductor {name}: the '{label}' contact touches none of its nodes")

    G = dolfinx.fem.Constant(msh, PETSc.ScalarType(sheet_conductance))
    phi1, d_from, its = _unit_potential(msh, G, on(contact_from), on(contact_to), solver, f"femion_{name}_")
    # Current leaving the 'from' contact for 1 V (reaction form, exactly conservative).
    w = dolfinx.fem.Function(phi1.function_space)
    w.x.array[d_from] = 1.0
    w.x.scatter_forward()
    i_unit = comm.allreduce(
        dolfinx.fem.assemble_scalar(dolfinx.fem.form(G * ufl.inner(ufl.grad(phi1), ufl.grad(w)) * ufl.dx)),
        op=MPI.SUM,
    )
    if not i_unit > 0:
        raise ConductorSolveError(f"conductor {name}: no current path between the contacts (I = {i_unit:g} A at 1 V)")
    resistance = 1.0 / i_unit
    if current is not None:
        voltage = current * resistance
    else:
        current = voltage / resistance
    phi = phi1
    phi.x.array[:] *= voltage
    phi.name = f"phi_s_{name}"

    W = dolfinx.fem.functionspace(msh, ("DG", 0, (msh.geometry.dim,)))
    K = dolfinx.fem.Function(W, name=f"K_{name}")
    K.interpolate(dolfinx.fem.Expression(-G * ufl.grad(phi), W.element.interpolation_points))
    joule = comm.allreduce(
        dolfinx.fem.assemble_scalar(dolfinx.fem.form(G * ufl.inner(ufl.grad(phi), ufl.grad(phi)) * ufl.dx)),
        op=MPI.SUM,
    )
    return SheetSolution(
        name=name,
        mesh=msh,
        potential=phi,
        sheet_current=K,
        sheet_conductance=sheet_conductance,
        z=z,
        current=current,
        voltage=voltage,
        resistance=resistance,
        joule_power=joule,
        solver_iterations=its,
    )
