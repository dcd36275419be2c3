"""The discrete species balance made exact after each converged step.

Summing each species' rows of the residual (test function 1) leaves only its storage and the
sources at the boundary, since every flux and the exchange on Γ cancel between the domains:

    a0 M^{n+1} + a1 M^n + a2 M^{n−1} = Δt·S^{n+1}

for M = the exchanged cation in film and electrolyte (S = the counter electrode's release
∫ j_top ds, mol s⁻¹), and for every other ion (S = 0). With the lumped (vertex) mass the amounts
are nodal sums, M = Σ_i m_i c_i. Newton stops at a residual of 1e-14 of the volume (or at its floor), so the
balance holds only to that floor each step: 1e-7 relative over a paper run. The correction puts
it to round-off, uniformly in each amount: a scaling of each non-exchanged ion's concentration
(of the exchanged ion's in the electrolyte for the eliminated ion of a binary electrolyte) and a
shift of logit θ over the film. Its size is that of the floor, far below any measured change.
"""

from __future__ import annotations

import numpy as np

from femion._dolfinx import MPI, dolfinx, ufl
from femion.transport.domain import EL, OX, TOP


class SpeciesBalance:
    """Makes a0 M^{n+1} + a1 M^n + a2 M^{n−1} = Δt·S^{n+1} exact (see module doc)."""

    def __init__(self, problem):
        self.p = problem
        f, el = problem.fields, problem.electrolyte
        self.comm = problem.comm
        self.m_ox = self._weights(f.spaces["w"], problem.dx_mass(OX))
        self.ions = {i.name: i for i in el.ions}
        self.free = [i.name for i in f.free_ions]
        self.m_el = self._weights(f.spaces[f"u_{self.free[0]}"], problem.dx_mass(EL)) if self.free else None
        self.exchanged, self.eliminated = el.exchanging, el.eliminated
        ex = self.ions[self.exchanged]
        # the eliminated ion of a binary electrolyte follows the exchanged one: c_e = −z_x c_x / z_e
        self.binary = self.eliminated is not None and self.free == [self.exchanged]
        self.z_ratio = -ex.valence / self.ions[self.eliminated].valence if self.binary else None
        self._top_form = None
        if problem.j_top is not None:
            self._top_form = dolfinx.fem.form(problem.j_top * problem.ds(TOP), entity_maps=problem.entity_maps)

    def _weights(self, V, measure) -> np.ndarray:
        """Lumped mass m_i = ∫ φ_i (vertex quadrature) of the owned dofs of ``V``."""
        v = ufl.TestFunction(V)
        vec = dolfinx.fem.assemble_vector(dolfinx.fem.form(v * measure, entity_maps=self.p.entity_maps))
        vec.scatter_reverse(dolfinx.la.InsertMode.add)
        return vec.array[: V.dofmap.index_map.size_local].copy()

    # ------------------------------------------------------------ amounts
    def _sum(self, weights, values) -> float:
        return self.comm.allreduce(float(weights @ values[: len(weights)]), op=MPI.SUM)

    def amounts(self, state: dict) -> dict[str, float]:
        """Film amount ``oxide`` and each ion's amount in the electrolyte (mol) of ``state``
        ({name: dof array} of w and the u_i)."""
        cmax = self.p.oxide.c_max
        out = {"oxide": cmax * self._sum(self.m_ox, 1.0 / (1.0 + np.exp(-state["w"])))}
        conc = {n: self.ions[n].concentration * np.exp(state[f"u_{n}"]) for n in self.free}
        for n, c in conc.items():
            out[n] = self._sum(self.m_el, c)
        if self.eliminated is not None and self.m_el is not None:
            e = self.ions[self.eliminated]
            out[self.eliminated] = self._sum(
                self.m_el, -sum(self.ions[n].valence * c for n, c in conc.items()) / e.valence)
        return out

    # ------------------------------------------------------------ correction
    def correct(self, dt: float) -> None:
        """Correct the converged state in place (call before the history shifts)."""
        f = self.p.fields
        a0, a1, a2 = (float(c.value) for c in f.a)
        u = {n: fn.x.array for n, fn in f.u.items()}
        old = self.amounts({n: fn.x.array for n, fn in f.u_old.items()})
        older = self.amounts({n: fn.x.array for n, fn in f.u_older.items()}) if a2 != 0.0 else old
        now = self.amounts(u)

        def target(key, source=0.0):
            return (dt * source - a1 * old[key] - a2 * older[key]) / a0

        for n in self.free:  # the ions never exchanged: each conserved alone
            if n != self.exchanged:
                u[f"u_{n}"][:] += np.log(target(n) / now[n])
        if self.binary and not self._stores_charge():
            # the eliminated ion (never exchanged) is conserved; it is the exchanged ion's image
            goal = target(self.eliminated) / self.z_ratio
            u[f"u_{self.exchanged}"][:] += np.log(goal / now[self.exchanged])
        now = self.amounts(u)
        source = self.top_source()
        group = (target("oxide") + target(self.exchanged, source)) if self.m_el is not None else target("oxide")
        self._shift_film(u["w"], group - now.get(self.exchanged, 0.0))

    def _stores_charge(self) -> bool:
        top = self.p.top_electrode
        return top is not None and top.capacitance > 0

    def top_source(self) -> float:
        """∫ j_top ds (mol/s) at the present state, summed over the ranks."""
        if self._top_form is None:
            return 0.0
        return self.comm.allreduce(dolfinx.fem.assemble_scalar(self._top_form), op=MPI.SUM)

    def _shift_film(self, w: np.ndarray, goal: float) -> None:
        """w += s with the film amount c_max Σ m_i θ(w_i + s) = ``goal`` (Newton on the scalar s)."""
        cmax, s = self.p.oxide.c_max, 0.0
        for _ in range(4):
            th = 1.0 / (1.0 + np.exp(-(w[: len(self.m_ox)] + s)))
            miss = cmax * self._sum(self.m_ox, th) - goal
            slope = cmax * self._sum(self.m_ox, th * (1 - th))
            if slope <= 0.0 or abs(miss) <= 1e-16 * abs(goal):
                break
            s -= miss / slope
        w[:] += s
