"""The device as a transport problem: a case's stack, materials and drives → TransportProblem.

The oxide's electrons come from the nearest conductor beneath it: its sheet conductance
(where its pattern is) plus the oxide's own sets the in-plane conduction of φ_e, and the
contacts of the drives on that conductor hold φ_e at the conductor stage's contact
potentials (V on ``from``, 0 on ``to``). The magnetic field of all sheet currents (plus the
external field) is evaluated on the transport mesh for the Lorentz terms and for β.
"""

from __future__ import annotations

import numpy as np
from scipy.constants import Boltzmann

from . import materials, plan
from .case import Case
from .host import HostThermodynamics
from .kinetics import arrhenius, barrier_equilibrium_shift
from .magnetic import SheetCurrent, magnetic_flux_density
from .transport import (
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
    """(oxide layer, electrolyte layer, layer above the electrolyte or None, conductor beneath or None)."""
    layers = case.geometry.layers
    i = next(k for k, layer in enumerate(layers) if layer.kind == "oxide")
    below = next((layers[k] for k in range(i - 1, -1, -1) if layers[k].kind == "conductor"), None)
    above = layers[i + 2] if i + 2 < len(layers) else None
    return layers[i], layers[i + 1], above, below


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


def oxide_capacity(case: Case, oxide_layer) -> float:
    """c_max (mol/m³): given, or density/molar mass × the largest insertion fraction."""
    spec = case.transport.oxide
    if spec.max_concentration is not None:
        return spec.max_concentration
    m = materials.get(oxide_layer.material)
    return m.value("density") / m.value("molar_mass") * m.value("max_insertion_fraction")


def build_transport(case: Case, stack, sheets: list[SheetCurrent], voltages: dict[str, float],
                    prefix: str = "femion_transport_") -> TransportProblem:
    """The TransportProblem of ``case`` on ``stack`` (section or 3D) with the drives' contact potentials.

    ``voltages``: conductor name → V of its 'from' contact (its 'to' contact is at 0 V).
    """
    tr = case.transport
    ox_layer, el_layer, above, conductor = transport_layers(case)
    top_name = f"{el_layer.name}|{above.name}" if above is not None else "none"
    domain = TransportDomain.from_stack(stack, ox_layer.name, el_layer.name, top_name)
    T = tr.temperature
    k = tr.kinetics
    U0 = tr.oxide.host.standard_potential
    if k.barrier_liquid is not None:
        U0 += barrier_equilibrium_shift(k.barrier_liquid, k.barrier_solid)
    host = HostThermodynamics(
        tr.oxide.host.model, U0, T, omega=tr.oxide.host.interaction,
        table=None if tr.oxide.host.table is None else ([t for t, _ in tr.oxide.host.table],
                                                       [u for _, u in tr.oxide.host.table]),
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
    if conductor is not None:
        track = plan.pattern_geometry(conductor.pattern, plate)
        G_c = conductor.sheet_conductance

        def conductance(x):
            px, py = plan_points(case, x)
            return G_ox + G_c * plan.points_in(track, px, py, 1e-9)
    else:
        conductance = G_ox

    contacts = []
    if conductor is not None:
        cgeom = {c.name: plan.contact_geometry(c, plate) for c in case.geometry.contacts}
        track = plan.pattern_geometry(conductor.pattern, plate)
        for d in case.drives:
            if d.conductor != conductor.name:
                continue
            for cname, value in ((d.from_, voltages[conductor.name]), (d.to, 0.0)):
                def on_contact(x, g=cgeom[cname]):
                    px, py = plan_points(case, x)
                    return plan.points_in(g, px, py, 1e-9) & plan.points_in(track, px, py, 1e-9)

                contacts.append((on_contact, value))

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
    electrolyte = ElectrolyteModel(ions, exchanging=tr.electrolyte.exchanging,
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
                           exchange_current_density=tr.top_electrode.exchange_current_density,
                           capacitance=tr.top_electrode.capacitance)
    field = None
    if case.magnetic.enabled:
        ext = case.magnetic.external_field

        def field_at(x):
            return magnetic_flux_density(sheets, space_points(case, x), external_field=ext,
                                         method=case.magnetic.method).T

        field = field_at

    lor = tr.lorentz
    lorentz = LorentzModel(bulk=lor.bulk, closure=lor.closure, step_law=lor.step_law,
                           step_params=lor.step_params() if lor.closure else {"lam0": 0.0})
    return TransportProblem(domain, oxide, electrolyte, kinetics, temperature=T, top=top,
                            electron_contacts=contacts, magnetic_field=field, lorentz=lorentz, prefix=prefix)
