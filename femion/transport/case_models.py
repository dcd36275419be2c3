"""A case's layers, materials and transport settings as the transport models (models.py) and
their TransportProblem. Laws come by name from their registries in femion.laws, each given
the parameters it declares."""

from __future__ import annotations

import numpy as np

from femion._dolfinx import dolfinx
from femion.config.schema import Case
from femion.geometry import plan
from femion.laws import materials
from femion.laws.electrolyte import REFERENCE_TEMPERATURE
from femion.laws.host import DIFFUSIVITY_LAWS, HostThermodynamics
from femion.laws.kinetics import LAWS as RATE_LAWS
from femion.laws.kinetics import NUMPY, arrhenius, barrier_equilibrium_shift
from femion.protocol.stages import electron_conductor
from femion.thermal import TemperatureField
from femion.transport.domain import TransportDomain
from femion.transport.models import ElectrolyteModel, Ion, KineticsModel, LorentzModel, OxideModel, TopElectrode
from femion.transport.problem import TransportProblem
from femion.transport.shell import ShellDomain


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
    """(N, 3) points in the device's 3D frame for mesh coordinates x (gdim, N); a shell's plan
    points lie on the oxide|electrolyte interface."""
    px, py = plan_points(case, x)
    if is_shell(case):
        z = np.full(px.shape, case.layer_z()[transport_layers(case)[0].name][1])
    else:
        z = x[2] if case.mesh.dimension == 3 else x[1]
    return np.column_stack([px, py, z])


def is_shell(case: Case) -> bool:
    """True for the thin-film shell model (transport.model: shell), solved on the plan mesh."""
    return case.transport is not None and case.transport.model == "shell"


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


def oxide_model(case: Case, ox_layer, conductor, T) -> OxideModel:
    """The host: U(θ) (femion.laws.host, U0 shifted by the barrier asymmetry), D_s(θ) by its law, and
    the in-plane conductance G(x) = G_oxide + G_conductor where the conductor's pattern is (S)."""
    tr = case.transport
    k = tr.kinetics
    U0 = tr.oxide.host.standard_potential
    if U0 is None:
        U0 = materials.get(ox_layer.material).value("standard_potential")
    if k.barrier_liquid is not None:
        U0 += barrier_equilibrium_shift(k.barrier_liquid, k.barrier_solid)
    table = tr.oxide.host.table
    host = HostThermodynamics(tr.oxide.host.model, U0, T, omega=tr.oxide.host.interaction,
                              table=None if table is None else ([t for t, _ in table], [u for _, u in table]),
                              valence=exchanging_valence(case))
    law = DIFFUSIVITY_LAWS[tr.oxide.diffusivity_law]
    given = {"D0": tr.oxide.diffusivity, "omega": tr.oxide.host.interaction, "T": T}
    d_params = {name: given[name] for name in law.parameters}

    Ea = tr.oxide.activation_energy
    if Ea is None:
        Ea = materials.get(ox_layer.material).properties.get("diffusion_activation_energy")
        Ea = 0.0 if Ea is None else Ea.value

    def diffusivity(theta, xp):
        D = law(theta, xp=xp, **d_params)
        if Ea == 0.0:
            return D
        return arrhenius(D, Ea, T if xp is not NUMPY else float(T.value), REFERENCE_TEMPERATURE, xp=xp)

    t_ox = ox_layer.thickness
    rho_ox = ox_layer.resistivity or materials.get(ox_layer.material).value("resistivity")
    G_ox = t_ox / rho_ox
    conductance = G_ox
    if conductor is not None and conductor.kind == "conductor":
        track = plan.pattern_geometry(conductor.pattern, case.geometry.plate)
        G_c = conductor.sheet_conductance

        def conductance(x):
            px, py = plan_points(case, x)
            return G_ox + G_c * plan.points_in(track, px, py, 1e-9)

    return OxideModel(c_max=oxide_capacity(case, ox_layer), diffusivity=diffusivity,
                      open_circuit_potential=host.open_circuit_potential, theta_initial=tr.oxide.initial_filling,
                      conductance=conductance, thickness=t_ox, vertical_conductivity=1.0 / rho_ox,
                      gradient_energy=tr.oxide.gradient_energy)


def electron_contacts(case: Case, conductor, voltages: dict[str, float]) -> tuple[list, list[str]]:
    """([(locate(x), V)], names) of every contact on the film's conductor; at first the drive on it
    is on, if it has one (V on its ``from`` contact, 0 elsewhere)."""
    contacts, names = [], []
    if conductor is None:
        return contacts, names
    plate = case.geometry.plate
    track = plan.pattern_geometry(conductor.pattern, plate)
    drive = next((d for d in case.drives if d.conductor == conductor.name), None)
    for c in case.geometry.contacts:
        if c.conductor != conductor.name:
            continue
        value = voltages.get(conductor.name, 0.0) if drive is not None and c.name == drive.from_ else 0.0

        def on_contact(x, g=plan.contact_geometry(c, plate)):  # noqa: B008 (bound now, per contact)
            px, py = plan_points(case, x)
            return plan.points_in(g, px, py, 1e-9) & plan.points_in(track, px, py, 1e-9)

        contacts.append((on_contact, value))
        names.append(c.name)
    return contacts, names


def electrolyte_model(case: Case, el_layer) -> ElectrolyteModel:
    """The case's ions (electroneutral or Poisson), ε_r from the case or the material (else 65)."""
    tr = case.transport
    ions = [Ion(i.name, i.valence, i.diffusivity, i.concentration) for i in case.transport_ions()]
    eps_r = tr.electrolyte.relative_permittivity
    if eps_r is None:
        eps_r = materials.get(el_layer.material).properties.get("relative_permittivity")
        eps_r = eps_r.value if eps_r is not None else 65.0
    Ea = tr.electrolyte.activation_energy
    if Ea is None:
        Ea = materials.get(el_layer.material).properties.get("conduction_activation_energy")
        Ea = 0.0 if Ea is None else Ea.value
    return ElectrolyteModel(ions, exchanging=case.exchanging_ion(), poisson=tr.electrolyte.model == "poisson",
                            relative_permittivity=eps_r, activation_energy=Ea,
                            reference_temperature=REFERENCE_TEMPERATURE)


def kinetics_model(case: Case) -> KineticsModel:
    """The rate law; i0(T) by Arrhenius and λ̃ = λ/(k_B T) are formed with the temperature
    Constant (terms.exchange_flux), λ only for a law that declares ``reorganization``."""
    k = case.transport.kinetics
    takes_reorganization = "reorganization" in RATE_LAWS[k.law].parameters
    return KineticsModel(law=k.law, exchange_current_density=k.exchange_current_density, alpha_a=k.alpha_a,
                         alpha_c=k.alpha_c, activation_energy=k.activation_energy,
                         reference_temperature=k.reference_temperature,
                         reorganization_energy=k.reorganization_energy if takes_reorganization else None)


def build_problem(case: Case, stack, voltages: dict[str, float], prefix: str):
    """(TransportProblem, names of its electron contacts, the film's conductor)."""
    tr = case.transport
    ox_layer, el_layer, above, conductor = transport_layers(case)
    if is_shell(case):  # ``stack`` is the plan mesh
        domain = ShellDomain.from_plan(stack, ox_layer.name, el_layer.name, None if above is None else above.name,
                                       ox_layer.thickness, el_layer.thickness)
    else:
        top_name = f"{el_layer.name}|{above.name}" if above is not None else "none"
        domain = TransportDomain.from_stack(stack, ox_layer.name, el_layer.name, top_name)
    # one temperature for every form (host law, D_s, RT/F, Arrhenius): a uniform Constant, or with
    # Joule heating a field on the stack that the heat problem updates (femion.runner.heating)
    if tr.mechanism.thermal:
        T = TemperatureField(domain.mesh, float(tr.temperature))
    else:
        T = dolfinx.fem.Constant(domain.mesh, float(tr.temperature))
    contacts, names = electron_contacts(case, conductor, voltages)
    top = None
    if tr.top_electrode is not None:
        te = tr.top_electrode
        top = TopElectrode(potential=te.potential, equilibrium_potential=te.equilibrium_potential,
                           exchange_current_density=te.exchange_current_density, capacitance=te.capacitance)
    lor, closure = tr.lorentz, tr.mechanism.lorentz_closure
    lorentz = LorentzModel(bulk=lor.bulk, closure=closure, step_law=lor.step_law,
                           step_params=lor.step_params() if closure else {"lam0": 0.0})
    problem = TransportProblem(domain, oxide_model(case, ox_layer, conductor, T), electrolyte_model(case, el_layer),
                               kinetics_model(case), temperature=T, top=top, electron_contacts=contacts,
                               lorentz=lorentz, prefix=prefix, linear_solver=tr.linear_solver,
                               petsc_options=dict(tr.petsc_options))
    return problem, names, None if conductor is None else conductor.name
