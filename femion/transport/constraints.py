"""Dirichlet conditions of a transport problem and the nonlinear problem for the active set.

* the electron contacts hold φ_e at their potentials (Constants, so a protocol can scale or
  reverse the drive) while connected;
* the caller's ``dirichlet`` data {field: (locate(x), value(x, t))}, set at every step's new time;
* without any exchange the potentials have no reference: each is pinned at one node;
* pins that hold ψ (and φ_e) at the level they have, when the electrolyte is removed or the
  film floats (:meth:`Constraints.select`).

One dolfinx NonlinearProblem is made per active set (the first time it is needed) and kept.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from femion._dolfinx import MPI, PETSc, dolfinx, ufl
from femion.transport.linear import petsc_options


class Constraints:
    """All Dirichlet conditions, which ones are active, and the NonlinearProblem of that set."""

    def __init__(self, fields, meshes: dict, gdim: int, comm, *, electron_contacts: Sequence[tuple[Callable, float]],
                 dirichlet: dict | None, no_exchange: bool, has_top: bool):
        self.spaces, self.meshes, self.gdim, self.comm = fields.spaces, meshes, gdim, comm
        self.bc_field = []  # (bc, name of the field it holds), in the order they are applied
        #: contact potentials (V) as Constants, so a protocol can scale or reverse the drive
        self.contact_potentials = []
        for locate, value in electron_contacts:
            value_c = dolfinx.fem.Constant(meshes["phi_e"], PETSc.ScalarType(value))
            self.contact_potentials.append(value_c)
            dofs = dolfinx.fem.locate_dofs_geometrical(self.spaces["phi_e"], locate)
            self.bc_field.append((dolfinx.fem.dirichletbc(value_c, dofs, self.spaces["phi_e"]), "phi_e"))
        self.contact_bcs = [bc for bc, _ in self.bc_field]
        self.dirichlet_funcs = []
        for name, (locate, func) in (dirichlet or {}).items():
            g = dolfinx.fem.Function(self.spaces[name])
            dofs = dolfinx.fem.locate_dofs_geometrical(self.spaces[name], locate)
            self.bc_field.append((dolfinx.fem.dirichletbc(g, dofs), name))
            self.dirichlet_funcs.append((g, func))
        if no_exchange:
            self._reference_potentials(fields.u, has_top)
        self.bcs = [bc for bc, _ in self.bc_field]
        # Once the electrolyte is removed nothing ties ψ (and, with the contacts open, φ_e) to a
        # level: each is then held at one node at the value it had (see select).
        self.pins = {}
        for name in ("psi", "phi_e"):
            g = dolfinx.fem.Function(self.spaces[name])
            self.pins[name] = (dolfinx.fem.dirichletbc(g, self._corner_dofs(name)), g)
        self.contacts_connected = (True,) * len(self.contact_bcs)
        self._problems = {}
        self.problem, self.active_bcs = None, []

    def _corner_dofs(self, name: str):
        """The dofs of field ``name`` at the smallest-coordinate corner of its mesh (over all ranks)."""
        x = self.meshes[name].geometry.x
        corner = [self.comm.allreduce(float(x[:, i].min(initial=np.inf)), op=MPI.MIN) for i in range(self.gdim)]
        return dolfinx.fem.locate_dofs_geometrical(self.spaces[name], lambda x, c=corner: np.all(
            [np.isclose(x[i], c[i], rtol=0, atol=1e-9 * (1 + abs(c[i]))) for i in range(len(c))], axis=0))

    def _reference_potentials(self, u: dict, has_top: bool) -> None:
        """Without any exchange the potentials have no reference: pin each at one node (at its
        present value) unless a condition already holds it."""
        held = {name for _, name in self.bc_field}
        for name in ("psi", "phi_e"):
            if name in held or (name == "psi" and has_top):
                continue
            V = self.spaces[name]
            if name == "phi_e":  # no exchange: φ_e is meaningless, and may be uncoupled column by column
                dofs = np.arange(V.dofmap.index_map.size_local + V.dofmap.index_map.num_ghosts, dtype=np.int32)
            else:
                dofs = self._corner_dofs(name)
            value = float(u[name].x.array[0]) if u[name].x.array.size else 0.0
            value = self.comm.bcast(value, root=0)
            self.bc_field.append((dolfinx.fem.dirichletbc(PETSc.ScalarType(value), dofs, V), name))

    def select(self, u: dict, exchange: bool, top: bool, build: Callable) -> None:
        """Make the problem whose Dirichlet set matches the contacts' state (``self.contacts_connected``),
        the exchange and the counter electrode (on or off) the active one; ``build(bcs, n)`` makes
        the n-th NonlinearProblem."""
        flags = self.contacts_connected
        if exchange:
            # a floating film under an open top electrode: φ_e and φ_l may shift together without
            # changing any η, so the electrolyte potential is referenced at one node
            held = {name for bc, name in self.bc_field if any(bc is b for b in self.bcs)}
            pinned = ("psi",) if not any(flags) and not top and "psi" not in held else ()
        else:
            pinned = tuple(n for n, skip in (("psi", top), ("phi_e", any(flags))) if not skip)
        for name in pinned:  # hold the level the field has now
            self.pins[name][1].x.array[:] = u[name].x.array
        key = (flags, pinned)
        if key not in self._problems:
            off = [c for c, on in zip(self.contact_bcs, flags, strict=False) if not on]
            bcs = [bc for bc in self.bcs if all(bc is not c for c in off)] + [self.pins[n][0] for n in pinned]
            self._problems[key] = (build(bcs, len(self._problems)), bcs)
        self.problem, self.active_bcs = self._problems[key]
        for name in pinned:
            if not any(b is self.pins[name][0] for b, _ in self.bc_field):
                self.bc_field.append((self.pins[name][0], name))

    def close(self) -> None:
        """Destroy the PETSc solvers made so far. Each SNES holds the Newton's convergence test, which
        holds the problem, which holds the SNES: a cycle through PETSc that Python's collector cannot
        see, so without this every problem and its meshes (with their MPI communicators) would live
        on until MPICH runs out of communicators (2048 per process)."""
        for problem, _ in self._problems.values():
            for obj in (problem.solver, problem.A, problem.b, problem.x):
                if obj is not None:
                    obj.destroy()
        self._problems.clear()
        self.problem = None

    def set_time(self, t: float) -> None:
        """The caller's Dirichlet data at time ``t``."""
        for g, func in self.dirichlet_funcs:
            g.interpolate(lambda x, f=func: f(x, t))

    def apply(self, u: dict) -> None:
        """Put the active Dirichlet values into the unknowns (Newton then starts from a state that
        satisfies them, and its first residual measures the physics, not the jump to the data)."""
        for bc, name in self.bc_field:
            if any(bc is a for a in self.active_bcs):
                bc.set(u[name].x.array)


def nonlinear_problem(residual, unknowns, bcs, entity_maps, prefix: str, volume: float, converged,
                      linear_solver: str = "direct", extra_options: dict | None = None):
    """The dolfinx NonlinearProblem of the residual blocks with ``bcs``: the ``linear_solver`` of
    linear.py (MUMPS, or GMRES on a field split) with the case's ``extra_options`` over it,
    tolerances 1e-13 relative and 1e-14·|Ω| absolute, ``converged`` as its test."""
    problem = dolfinx.fem.petsc.NonlinearProblem(
        ufl.extract_blocks(residual),
        unknowns,
        bcs=bcs,
        kind="mpi",
        entity_maps=entity_maps,
        petsc_options_prefix=prefix,
        petsc_options={**petsc_options(linear_solver), **(extra_options or {})},
    )
    problem.solver.setTolerances(rtol=1e-13, atol=1e-14 * volume, stol=0.0, max_it=25)
    problem.solver.setConvergenceTest(converged)
    return problem
