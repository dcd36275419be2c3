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
from scipy.constants import Boltzmann

from femion.laws import materials
from femion.geometry import plan
from femion.config.schema import Case
from femion.laws.host import HostThermodynamics
from femion.laws.kinetics import arrhenius, barrier_equilibrium_shift
from femion._dolfinx import MPI
from femion.magnetic.biot_savart import SheetCurrent, magnetic_flux_density
from femion.protocol.stages import Controls, electron_conductor, top_conductor
from femion.transport.problem import (
    ElectrolyteModel,
    Ion,
    KineticsModel,
    LorentzModel,
    OxideModel,
    TopElectrode,
    TransportDomain,
    TransportProblem,
)


def transport_layers(case: Case):
    """(oxide layer, electrolyte layer, layer above the electrolyte or None, the film's electron
    conductor: the conductor beneath, the oxide itself when contacts sit on it, or None)."""
    layers = case.geometry.layers
    i = next(k for k, layer in enumerate(layers) if layer.kind == "oxide")
    film = electron_conductor(case)
    above = layers[i + 2] if i + 2 < len(layers) else None
    return layers[i], layers[i + 1], above, (case.layer(film) if film is not None else None)


def plan_points(case: Case, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Plan (x, y) of mesh points: a 2D section's points lie on y = section_y."""
    if x.shape[0] == 3 and case.mesh.dimension == 3:
        return x[0], x[1]
    return x[0], np.full(x.shape[1], section_y(case))


def section_y(case: Case) -> float:
    return case.mesh.section_y if case.mesh.section_y is not None else case.geometry.plate.width / 2


def space_points(case: Case, x: np.ndarray) -> np.ndarray:
    """(N, 3) points in the device's 3D frame for mesh coordinates x (gdim, N)."""
    px, py = plan_points(case, x)
    z = x[2] if case.mesh.dimension == 3 else x[1]
    return np.column_stack([px, py, z])


def exchanging_valence(case: Case) -> int:
    """z of the cation the film takes up."""
    name = case.exchanging_ion()
    return int(next(i.valence for i in case.transport_ions() if i.name == name))


def oxide_capacity(case: Case, oxide_layer) -> float:
    """c_max (mol/m³ of inserted ions): given, or density/molar mass × the largest insertion
    fraction (Li per formula unit) / z: the host takes a fixed number of electrons, and a
    z-valent ion uses z of them."""
    spec = case.transport.oxide
    if spec.max_concentration is not None:
        return spec.max_concentration
    m = materials.get(oxide_layer.material)
    return m.value("density") / m.value("molar_mass") * m.value("max_insertion_fraction") / exchanging_valence(case)


class Device:
    """A case's transport problem with the controls a protocol acts through (:meth:`apply`)."""

    def __init__(self, case: Case, problem: TransportProblem, contacts: list[str], film: str | None,
                 field_parts: dict, top_potential=None):
        self.case, self.problem = case, problem
        self.contacts = contacts  # contact names, in the order of the problem's electron contacts
        self.film = film
        self.top = top_conductor(case)
        self.field_parts = field_parts  # "external" and conductor → {"oxide": B, "electrolyte": B} arrays
        self.top_potential = top_potential  # x → φ_s of the driven top sheet at its solved drive
        self.drive_voltage = {}  # conductor → V of the conductor stage's solution
        self.applied: Controls | None = None

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
        if self.field_parts:
            parts = self.field_parts
            B = {k: parts["external"][k].copy() for k in ("oxide", "electrolyte")}
            if controls.drive is not None and controls.drive in parts:
                for k in B:
                    B[k] += controls.scale * parts[controls.drive][k]
            p.set_magnetic_field(B)
        self.applied = controls

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
        phi_l = p.u["psi"].x.array / p.f_RT + shift
        top = None
        if controls.inject_voltage is not None:
            top = np.full(phi_l.shape, controls.inject_voltage)
        elif controls.drive == self.top and electrochemical:
            top = controls.scale * self.top_potential(xe)
        if top is not None:
            from femion.laws.kinetics import NUMPY

            theta = 1.0 / (1.0 + np.exp(-p.u["w"].x.array))
            U = np.asarray(p.oxide.open_circuit_potential(theta, NUMPY), dtype=float)
            below = _plan_transfer(self.case, xo, phi_e - U, xe, p.comm)  # φ_l at rest with the film
            top_level = top - p._top.equilibrium_potential
            if controls.drive == self.top:  # floating film: its level makes the two halves balance
                level = p.comm.allreduce(float(np.sum(top_level - below)), op=MPI.SUM) / max(
                    p.comm.allreduce(top_level.size, op=MPI.SUM), 1)
                phi_e += level
                below = below + level
            phi_l = 0.5 * (top_level + below)
        p.u["psi"].x.array[:] = p.f_RT * phi_l
        for n in ("phi_e", "psi"):
            p.u[n].x.scatter_forward()


def _plan_field(xy: np.ndarray, values: np.ndarray, line: bool = False):
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
    return _plan_field(uniq * 1e-9, mean, line=case.mesh.dimension == 2)(*plan_points(case, x_to))


def _plan_interpolator(solution, case: Case):
    """x → the sheet potential (V) of a conductor-stage solution at transport mesh points x."""
    V = solution.potential.function_space
    n = V.dofmap.index_map.size_local
    comm = V.mesh.comm
    xy = np.vstack(comm.allgather(V.tabulate_dof_coordinates()[:n, :2]))
    vals = np.concatenate(comm.allgather(solution.potential.x.array[:n]))
    field = _plan_field(xy, vals)
    return lambda x: field(*plan_points(case, x))


def build_device(case: Case, stack, sheets: dict[str, SheetCurrent], solutions: dict,
                 prefix: str = "femion_transport_") -> Device:
    """The :class:`Device` of ``case`` on ``stack``; ``sheets``/``solutions``: conductor → its sheet
    current / conductor-stage solution."""
    voltages = {name: s.voltage for name, s in solutions.items()}
    problem, contacts, film = _build_problem(case, stack, voltages, prefix)
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
                                                                      method=case.magnetic.method).T)
                parts[name][key] = B.x.array.copy()
        problem.max_B = 0.0
    top = top_conductor(case)
    top_potential = _plan_interpolator(solutions[top], case) if top in solutions else None
    dev = Device(case, problem, contacts, film, parts, top_potential)
    dev.film_potential = _plan_interpolator(solutions[film], case) if film in solutions else None
    return dev


def build_transport(case: Case, stack, sheets: list[SheetCurrent], voltages: dict[str, float],
                    prefix: str = "femion_transport_") -> TransportProblem:
    """The TransportProblem of ``case`` with every drive on at the conductor stage's values and
    the field of all ``sheets`` (no protocol)."""
    problem, contacts, film = _build_problem(case, stack, voltages, prefix)
    if case.magnetic.enabled:
        ext = case.magnetic.external_field
        problem.set_magnetic_field(lambda x: magnetic_flux_density(sheets, space_points(case, x), external_field=ext,
                                                                   method=case.magnetic.method).T)
    return problem


def _build_problem(case: Case, stack, voltages: dict[str, float], prefix: str):
    """(TransportProblem, names of its electron contacts, the film's conductor)."""
    tr = case.transport
    ox_layer, el_layer, above, conductor = transport_layers(case)
    top_name = f"{el_layer.name}|{above.name}" if above is not None else "none"
    domain = TransportDomain.from_stack(stack, ox_layer.name, el_layer.name, top_name)
    T = tr.temperature
    k = tr.kinetics
    U0 = tr.oxide.host.standard_potential
    if U0 is None:
        U0 = materials.get(ox_layer.material).value("standard_potential")
    if k.barrier_liquid is not None:
        U0 += barrier_equilibrium_shift(k.barrier_liquid, k.barrier_solid)
    host = HostThermodynamics(
        tr.oxide.host.model, U0, T, omega=tr.oxide.host.interaction,
        table=None if tr.oxide.host.table is None else ([t for t, _ in tr.oxide.host.table],
                                                       [u for _, u in tr.oxide.host.table]),
        valence=exchanging_valence(case),
    )
    D0 = tr.oxide.diffusivity
    if tr.oxide.diffusivity_law == "constant":
        diffusivity = lambda th, xp: D0 + 0.0 * th  # noqa: E731
    else:
        diffusivity = lambda th, xp: D0 * (1 - th)  # noqa: E731

    t_ox = ox_layer.thickness
    rho_ox = ox_layer.resistivity or materials.get(ox_layer.material).value("resistivity")
    G_ox = t_ox / rho_ox
    plate = case.geometry.plate
    if conductor is not None and conductor.kind == "conductor":
        track = plan.pattern_geometry(conductor.pattern, plate)
        G_c = conductor.sheet_conductance

        def conductance(x):
            px, py = plan_points(case, x)
            return G_ox + G_c * plan.points_in(track, px, py, 1e-9)
    else:
        conductance = G_ox

    # every contact on the film's conductor; at first the drive on it is on, if it has one
    contacts, names = [], []
    if conductor is not None:
        track = plan.pattern_geometry(conductor.pattern, plate)
        drive = next((d for d in case.drives if d.conductor == conductor.name), None)
        for c in case.geometry.contacts:
            if c.conductor != conductor.name:
                continue
            value = voltages.get(conductor.name, 0.0) if drive is not None and c.name == drive.from_ else 0.0

            def on_contact(x, g=plan.contact_geometry(c, plate)):
                px, py = plan_points(case, x)
                return plan.points_in(g, px, py, 1e-9) & plan.points_in(track, px, py, 1e-9)

            contacts.append((on_contact, value))
            names.append(c.name)

    oxide = OxideModel(
        c_max=oxide_capacity(case, ox_layer),
        diffusivity=diffusivity,
        open_circuit_potential=host.open_circuit_potential,
        theta_initial=tr.oxide.initial_filling,
        conductance=conductance,
        thickness=t_ox,
        vertical_conductivity=1.0 / rho_ox,
        gradient_energy=tr.oxide.gradient_energy,
    )
    ions = [Ion(i.name, i.valence, i.diffusivity, i.concentration) for i in case.transport_ions()]
    eps_r = tr.electrolyte.relative_permittivity
    if eps_r is None:
        eps_r = materials.get(el_layer.material).properties.get("relative_permittivity")
        eps_r = eps_r.value if eps_r is not None else 65.0
    electrolyte = ElectrolyteModel(ions, exchanging=case.exchanging_ion(),
                                   poisson=tr.electrolyte.model == "poisson", relative_permittivity=eps_r)
    params = {}
    if k.law != "butler_volmer":
        params["reorganization"] = k.reorganization_energy / (Boltzmann * T)
    i0 = arrhenius(k.exchange_current_density, k.activation_energy, T, k.reference_temperature)
    kinetics = KineticsModel(law=k.law, exchange_current_density=i0,
                             alpha_a=k.alpha_a, alpha_c=k.alpha_c, params=params)
    top = None
    if tr.top_electrode is not None:
        top = TopElectrode(potential=tr.top_electrode.potential,
                           equilibrium_potential=tr.top_electrode.equilibrium_potential,
                           exchange_current_density=tr.top_electrode.exchange_current_density,
                           capacitance=tr.top_electrode.capacitance)
    lor = tr.lorentz
    closure = tr.mechanism.lorentz_closure
    lorentz = LorentzModel(bulk=lor.bulk, closure=closure, step_law=lor.step_law,
                           step_params=lor.step_params() if closure else {"lam0": 0.0})
    problem = TransportProblem(domain, oxide, electrolyte, kinetics, temperature=T, top=top,
                               electron_contacts=contacts, lorentz=lorentz, prefix=prefix)
    return problem, names, None if conductor is None else conductor.name
