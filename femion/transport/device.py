"""The device as a transport problem: a case's stack, materials and drives → :class:`Device`.

The oxide's electrons come from the nearest conductor beneath it (or from contacts on the
oxide itself, seed 000 Model I): that sheet's conductance (where its pattern is) plus the
oxide's own sets the in-plane conduction of φ_e, and the contacts on it hold φ_e at the
conductor stage's contact potentials while a drive is on (V on ``from``, 0 on ``to``, scaled by
the stage). A driven top conductor (Model IV) sets the counter electrode's potential to its
sheet potential φ_s(x). The magnetic field of each drive is evaluated once on the transport mesh
and scaled with the stage's drive, plus the external field.
"""

from __future__ import annotations

import numpy as np

from femion._dolfinx import MPI
from femion.config.schema import Case
from femion.laws.kinetics import NUMPY
from femion.magnetic.biot_savart import SheetCurrent, magnetic_flux_density
from femion.protocol.stages import Controls, top_conductor
from femion.transport.case_models import build_problem, plan_points, section_y, space_points, transport_layers  # noqa: F401 (device.section_y, ... used)
from femion.transport.problem import TransportProblem


class Device:
    """A case's transport problem with the controls a protocol acts through (:meth:`apply`)."""

    def __init__(self, case: Case, problem: TransportProblem, contacts: list[str], film: str | None,
                 field_parts: dict, top_potential=None, film_potential=None):
        self.case, self.problem = case, problem
        self.contacts = contacts  # contact names, in the order of the problem's electron contacts
        self.film = film
        self.top = top_conductor(case)
        self.field_parts = field_parts  # "external" and conductor → {"oxide": B, "electrolyte": B} arrays
        self.top_potential = top_potential  # x → φ_s of the driven top sheet at its solved drive
        self.film_potential = film_potential  # x → φ_s of the film's driven conductor at its solved drive
        #: the stack's Joule heating (femion.runner.heating.Heating) with transport.mechanism.thermal, else None
        self.heating = None

    def apply(self, controls: Controls, voltages: dict[str, float]) -> None:
        """Set the source as ``controls`` says. ``voltages``: conductor → V of its solved drive."""
        p, case = self.problem, self.case
        electrochemical = case.transport.mechanism.electrochemical
        n = len(self.contacts)
        flags, values = [False] * n, [0.0] * n
        top_on, top_value = False, None
        if controls.inject_voltage is not None:
            flags = [True] * n  # the film's conductor at 0 V, the top electrode at +V
            top_on, top_value = True, controls.inject_voltage
        elif controls.drive is not None and controls.drive == self.film:
            d = next(d for d in case.drives if d.conductor == self.film)
            for k, name in enumerate(self.contacts):
                if name in (d.from_, d.to):
                    flags[k] = True
                    if name == d.from_ and electrochemical:
                        values[k] = controls.scale * voltages[self.film]
        elif controls.drive is not None and controls.drive == self.top and electrochemical:
            top_on = True
            top_value = lambda x, s=controls.scale: s * self.top_potential(x)  # noqa: E731
        if n:
            p.set_contact_potentials(values)
            p.set_contacts_connected(flags)
        if p.j_top is not None:
            if top_on:
                p.set_top_potential(top_value)
            else:
                p.set_top_connected(False)
        p.set_exchange(controls.exchange)
        if self.heating is not None:
            self.heating.set_controls(p.t, controls)
        if self.field_parts:
            parts = self.field_parts
            B = {k: parts["external"][k].copy() for k in ("oxide", "electrolyte")}
            if controls.drive is not None and controls.drive in parts:
                for k in B:
                    B[k] += controls.scale * parts[controls.drive][k]
            p.set_magnetic_field(B)

    def guess_potentials(self, controls: Controls, voltages: dict[str, float]) -> None:
        """A starting guess of φ_e and φ_l for the stage ``controls`` begin, close to the answer.

        The potentials follow a change of the source at once, and the exchange is exponential in
        them: Newton must start near the new level or its first residual overflows. The guess:
        φ_e follows the driven film conductor's scaled sheet potential (G_ITO ≫ the exchange) and
        φ_l shifts with it, keeping every local overpotential η = φ_e − φ_l − U(θ) as it was; with
        the top electrode connected, φ_l lies halfway between the film's and the top's levels
        (equal overpotentials), a floating film at the level that balances the two.
        """
        p = self.problem
        if controls.drive is None and controls.inject_voltage is None:
            return  # open circuit: the present state is the best guess
        xo = p.spaces["phi_e"].tabulate_dof_coordinates().T
        xe = p.spaces["psi"].tabulate_dof_coordinates().T
        phi_e = p.u["phi_e"].x.array
        old = phi_e.copy()
        electrochemical = self.case.transport.mechanism.electrochemical
        if controls.inject_voltage is not None:
            phi_e[:] = 0.0
        elif controls.drive == self.film and self.film_potential is not None:
            phi_e[:] = (controls.scale if electrochemical else 0.0) * self.film_potential(xo)
        shift = _plan_transfer(self.case, xo, phi_e - old, xe, p.comm)
        phi_l = p.u["psi"].x.array / p.f_RT_value + shift
        top = None
        if controls.inject_voltage is not None:
            top = np.full(phi_l.shape, controls.inject_voltage)
        elif controls.drive == self.top and electrochemical:
            top = controls.scale * self.top_potential(xe)
        if top is not None:
            theta = 1.0 / (1.0 + np.exp(-p.u["w"].x.array))
            U = np.asarray(p.oxide.open_circuit_potential(theta, NUMPY), dtype=float)
            below = _plan_transfer(self.case, xo, phi_e - U, xe, p.comm)  # φ_l at rest with the film
            top_level = top - p.top_electrode.equilibrium_potential
            if controls.drive == self.top:  # floating film: its level makes the two halves balance
                level = p.comm.allreduce(float(np.sum(top_level - below)), op=MPI.SUM) / max(
                    p.comm.allreduce(top_level.size, op=MPI.SUM), 1)
                phi_e += level
                below = below + level
            phi_l = 0.5 * (top_level + below)
        p.u["psi"].x.array[:] = p.f_RT_value * phi_l
        for n in ("phi_e", "psi"):
            p.u[n].x.scatter_forward()


def plan_field(xy: np.ndarray, values: np.ndarray, line: bool = False):
    """(qx, qy) → values interpolated from plan points ``xy`` (N, 2): linear, the nearest value
    outside their hull; along x only when the points lie on a section line."""
    from scipy.interpolate import LinearNDInterpolator, NearestNDInterpolator

    if line:
        order = np.argsort(xy[:, 0])
        return lambda qx, qy: np.interp(qx, xy[order, 0], values[order])
    linear, nearest = LinearNDInterpolator(xy, values), NearestNDInterpolator(xy, values)

    def at(qx, qy):
        out = linear(qx, qy)
        bad = ~np.isfinite(out)
        out[bad] = nearest(qx[bad], qy[bad])
        return out

    return at


def _plan_transfer(case: Case, x_from, values, x_to, comm) -> np.ndarray:
    """Values at plan positions of ``x_from`` (through-thickness averaged) carried to ``x_to``."""
    px, py = plan_points(case, x_from)
    pts = np.vstack(comm.allgather(np.c_[px, py]))
    vals = np.concatenate(comm.allgather(np.asarray(values, dtype=float)))
    key = np.round(pts / 1e-9).astype(np.int64)
    uniq, inv = np.unique(key, axis=0, return_inverse=True)
    inv = inv.ravel()
    mean = np.bincount(inv, weights=vals) / np.bincount(inv)
    return plan_field(uniq * 1e-9, mean, line=case.mesh.dimension == 2)(*plan_points(case, x_to))


def _plan_interpolator(solution, case: Case):
    """x → the sheet potential (V) of a conductor-stage solution at transport mesh points x."""
    V = solution.potential.function_space
    n = V.dofmap.index_map.size_local
    comm = V.mesh.comm
    xy = np.vstack(comm.allgather(V.tabulate_dof_coordinates()[:n, :2]))
    vals = np.concatenate(comm.allgather(solution.potential.x.array[:n]))
    field = plan_field(xy, vals)
    return lambda x: field(*plan_points(case, x))


def build_device(case: Case, stack, sheets: dict[str, SheetCurrent], solutions: dict,
                 prefix: str = "femion_transport_") -> Device:
    """The :class:`Device` of ``case`` on ``stack``; ``sheets``/``solutions``: conductor → its sheet
    current / conductor-stage solution."""
    voltages = {name: s.voltage for name, s in solutions.items()}
    problem, contacts, film = build_problem(case, stack, voltages, prefix)
    parts = {}
    if case.magnetic.enabled:
        ext = np.asarray(case.magnetic.external_field, dtype=float)
        parts["external"] = {}
        for key, B in problem.B.items():
            B.interpolate(lambda x: np.tile(ext[:, None], (1, x.shape[1])))
            parts["external"][key] = B.x.array.copy()
        for name, sheet in sheets.items():
            parts[name] = {}
            for key, B in problem.B.items():
                B.interpolate(lambda x, s=sheet: magnetic_flux_density([s], space_points(case, x),
                                                                      method=case.magnetic.method,
                                                                      tolerance=case.magnetic.tolerance).T)
                parts[name][key] = B.x.array.copy()
        problem.max_B = 0.0
    top = top_conductor(case)
    top_potential = _plan_interpolator(solutions[top], case) if top in solutions else None
    film_potential = _plan_interpolator(solutions[film], case) if film in solutions else None
    return Device(case, problem, contacts, film, parts, top_potential, film_potential)
