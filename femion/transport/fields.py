"""The unknowns, their BDF history and the physical fields they stand for.

All unknowns are P1, each on its own submesh (one space object per field, so Dirichlet
conditions never leak between blocks):

* ``w`` = logit θ on the oxide, θ = c_s/c_max = 1/(1 + e^{−w}) (so 0 < θ < 1 always);
* ``u_<ion>`` = ln(c_i/c_i,0) on the electrolyte for every ion but the eliminated one;
* ``psi`` = Fφ_l/(RT) on the electrolyte, ``phi_e`` (V) on the oxide;
* ``mu`` = μ/(RT) on the oxide, with a Cahn–Hilliard gradient energy only;
* ``w_s`` = logit of the film's filling at its electrolyte face, in the shell model only
  (terms.surface_filling: the film's mean is ``w``).

Time derivatives are variable-step BDF: (a0 x^{n+1} + a1 x^n + a2 x^{n−1})/Δt.
"""

from __future__ import annotations

import numpy as np

from femion._dolfinx import MPI, dolfinx, ufl
from femion.laws.kinetics import NUMPY


class Fields:
    """Spaces, unknowns ``u``, test functions ``v`` and the history ``u_old``/``u_older``."""

    def __init__(self, msh, ox_mesh, el_mesh, oxide, electrolyte, *, store_psi: bool = False,
                 surface_filling: bool = False):
        def P1(m):
            return dolfinx.fem.functionspace(m, ("Lagrange", 1))

        self.oxide, self.electrolyte = oxide, electrolyte
        self.free_ions = [i for i in electrolyte.ions if i.name != electrolyte.eliminated]
        self.c_ref = max(i.concentration for i in electrolyte.ions)
        self.spaces = {"w": P1(ox_mesh), "phi_e": P1(ox_mesh), "psi": P1(el_mesh)}
        for ion in self.free_ions:
            self.spaces[f"u_{ion.name}"] = P1(el_mesh)
        self.names = ["w"] + [f"u_{i.name}" for i in self.free_ions] + ["psi", "phi_e"]
        self.cahn_hilliard = oxide.gradient_energy > 0
        if self.cahn_hilliard:  # chemical potential μ (in units of RT) as its own field
            self.spaces["mu"] = P1(ox_mesh)
            self.names.append("mu")
        if surface_filling:  # the filling at the film's electrolyte face, beside its mean
            self.spaces["w_s"] = P1(ox_mesh)
            self.names.append("w_s")
        self.u = {n: dolfinx.fem.Function(self.spaces[n], name=n) for n in self.names}
        # ψ's history only for the double layer's dψ/dt
        stored = ("w", "u_", "psi") if store_psi else ("w", "u_")
        self.u_old = {n: dolfinx.fem.Function(self.spaces[n]) for n in self.names if n.startswith(stored)}
        self.u_older = {n: dolfinx.fem.Function(self.spaces[n]) for n in self.u_old}
        # one level more, for the local error of a BDF2 step only (not in any form)
        self.u_oldest = {n: f.x.array.copy() for n, f in self.u_older.items()}
        W = ufl.MixedFunctionSpace(*[self.spaces[n] for n in self.names])
        self.v = dict(zip(self.names, ufl.TestFunctions(W), strict=False))
        #: BDF coefficients a0, a1, a2
        self.a = [dolfinx.fem.Constant(msh, v) for v in (1.0, -1.0, 0.0)]
        self.have_older = False
        #: steps (s) that led to the history levels since the last restart, newest first:
        #: [t_n − t_{n−1}, t_{n−1} − t_{n−2}] (the local error needs them)
        self.past_dt: list[float] = []

    # ------------------------------------------------------------ expressions
    @staticmethod
    def theta_expr(w):
        """θ = 1/(1 + e^{−w})."""
        return 1.0 / (1.0 + ufl.exp(-w))

    def concentration_exprs(self, u: dict) -> dict:
        """c_i (mol/m³) of every ion as UFL, the eliminated one by electroneutrality."""
        el = self.electrolyte
        conc = {i.name: i.concentration * ufl.exp(u[f"u_{i.name}"]) for i in self.free_ions}
        if el.eliminated is not None:
            e = el.ion(el.eliminated)
            conc[e.name] = -sum(i.valence * conc[i.name] for i in self.free_ions) / e.valence
        return conc

    def _old_expr(self, name, store):
        if name == "w":
            return self.theta_expr(store["w"])
        ion = name[2:]
        return self.electrolyte.ion(ion).concentration * ufl.exp(store[name])

    def bdf(self, expr_new, name: str, scale):
        """(a0 x^{n+1} + a1 x^n + a2 x^{n−1})/scale of the quantity x (θ or c_i) of unknown ``name``."""
        a = self.a
        return (a[0] * expr_new + a[1] * self._old_expr(name, self.u_old)
                + a[2] * self._old_expr(name, self.u_older)) / scale

    def bdf_increment(self, name: str):
        """a0 u^{n+1} + a1 u^n + a2 u^{n−1} of the unknown ``name`` itself."""
        a = self.a
        return a[0] * self.u[name] + a[1] * self.u_old[name] + a[2] * self.u_older[name]

    # ------------------------------------------------------------ history
    def set_bdf(self, dt: float, order: int, dt_prev: float | None) -> None:
        """Coefficients of the next step: variable-step BDF2 when asked and a previous step exists."""
        if order == 2 and self.have_older and dt_prev:
            om = dt / dt_prev
            coeffs = ((1 + 2 * om) / (1 + om), -(1 + om), om**2 / (1 + om))
        else:
            coeffs = (1.0, -1.0, 0.0)
        for c, v in zip(self.a, coeffs, strict=False):
            c.value = v

    def values(self) -> dict:
        """Copies of the unknowns' arrays (:meth:`set_values` puts them back)."""
        return {n: f.x.array.copy() for n, f in self.u.items()}

    def set_values(self, saved: dict) -> None:
        for n, arr in saved.items():
            self.u[n].x.array[:] = arr

    def accept(self, dt: float) -> None:
        """The present state becomes the newest history level (after a converged step of ``dt``)."""
        for n in self.u_old:
            self.u_oldest[n][:] = self.u_older[n].x.array
            self.u_older[n].x.array[:] = self.u_old[n].x.array
            self.u_old[n].x.array[:] = self.u[n].x.array
        # a step after a restart has no valid older level: its predecessor's step is not kept
        self.past_dt = [dt] + (self.past_dt[:1] if self.have_older else [])
        self.have_older = True

    def restart(self) -> None:
        """The next step is BDF1 and the older levels are forgotten (the controls jumped)."""
        self.have_older = False
        self.past_dt = []

    def controlled(self, store: dict) -> np.ndarray:
        """θ and c_i/c_i,0 of every free ion at the owned dofs of ``store`` (a level's
        {name: dof array}), one vector: the quantities whose local error sets the step."""
        nw = self.spaces["w"].dofmap.index_map.size_local
        parts = [1.0 / (1.0 + np.exp(-store["w"][:nw]))]
        for ion in self.free_ions:
            n = f"u_{ion.name}"
            parts.append(np.exp(store[n][: self.spaces[n].dofmap.index_map.size_local]))
        return np.concatenate(parts)

    def levels(self) -> list[np.ndarray]:
        """:meth:`controlled` of each valid history level, newest first: y_n, y_{n−1}, y_{n−2}
        (after a restart fewer; the steps between them are :attr:`past_dt`)."""
        stores = [{n: f.x.array for n, f in self.u_old.items()}]
        if self.have_older:
            stores.append({n: f.x.array for n, f in self.u_older.items()})
            if len(self.past_dt) == 2:
                stores.append(self.u_oldest)
        return [self.controlled(s) for s in stores]

    def snapshot(self) -> dict:
        """Unknowns and history (copies)."""
        return {"have_older": self.have_older, "past_dt": list(self.past_dt), "u": self.values(),
                "u_old": {n: f.x.array.copy() for n, f in self.u_old.items()},
                "u_older": {n: f.x.array.copy() for n, f in self.u_older.items()},
                "u_oldest": {n: a.copy() for n, a in self.u_oldest.items()}}

    def restore(self, snapshot: dict) -> None:
        self.have_older = snapshot["have_older"]
        self.past_dt = list(snapshot.get("past_dt", []))
        for key in ("u", "u_old", "u_older"):
            for n, f in getattr(self, key).items():
                f.x.array[:] = snapshot[key][n]
        oldest = snapshot.get("u_oldest") or {}
        if set(oldest) != set(self.u_oldest):  # a state from before this level existed
            self.past_dt = self.past_dt[:1]
        for n in self.u_oldest:
            self.u_oldest[n][:] = oldest.get(n, self.u_older[n].x.array)

    def reset_history(self) -> None:
        """Make the present state the whole history."""
        for n in self.u_old:
            self.u_old[n].x.array[:] = self.u[n].x.array
            self.u_older[n].x.array[:] = self.u[n].x.array
            self.u_oldest[n][:] = self.u[n].x.array
        self.restart()

    # ------------------------------------------------------------ initial state
    def set_initial(self, electrolyte_initial: dict, contact_values, top, f_RT: float, comm) -> None:
        """θ and c at t = 0 (given), φ_e and ψ near equilibrium; ``f_RT`` = F/(RT) in 1/V."""
        th0 = self.oxide.theta_initial
        if callable(th0):
            self.u["w"].interpolate(lambda x: np.log(th0(x) / (1 - th0(x))))
        else:
            self.u["w"].x.array[:] = np.log(th0 / (1 - th0))
        for ion in self.free_ions:
            n = f"u_{ion.name}"
            if ion.name in electrolyte_initial:
                c0 = electrolyte_initial[ion.name]
                self.u[n].interpolate(lambda x, c0=c0, ion=ion: np.log(c0(x) / ion.concentration))
            else:
                self.u[n].x.array[:] = 0.0
        # Start near equilibrium: the oxide at its contacts' mean potential (or floating in
        # equilibrium with the counter electrode), the electrolyte where η = 0 on average.
        th_mean = float(np.mean(1 / (1 + np.exp(-self.u["w"].x.array)))) if self.u["w"].x.array.size else 0.5
        th_mean = comm.allreduce(th_mean, op=MPI.SUM) / comm.size
        U = float(self.oxide.open_circuit_potential(np.array(th_mean), NUMPY))
        if contact_values:
            phi0 = float(np.mean(contact_values))
            psi0 = f_RT * (phi0 - U)  # the film at rest under its contacts' mean potential
        elif top is not None:
            psi0 = f_RT * (top.potential - top.equilibrium_potential)
            phi0 = psi0 / f_RT + U
        else:
            phi0, psi0 = 0.0, -f_RT * U
        self.u["phi_e"].x.array[:] = phi0
        self.u["psi"].x.array[:] = psi0
        if "w_s" in self.u:  # at rest the film is uniform through its thickness
            self.u["w_s"].x.array[:] = self.u["w"].x.array
        if "mu" in self.u:
            th = 1 / (1 + np.exp(-self.u["w"].x.array))
            self.u["mu"].x.array[:] = -f_RT * np.asarray(self.oxide.open_circuit_potential(th, NUMPY))
        self.reset_history()
