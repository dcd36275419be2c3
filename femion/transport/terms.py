"""The residual, one function per block (each returns its UFL form or flux).

Every balance is multiplied by Δt and divided by a reference concentration (c_max for the
oxide, c_i for ion i, c_ref = max c_i for the charge), so all rows are a change of
concentration / reference × cell volume: one residual norm measures every block fairly.
Γ integrals take the oxide as '+', the electrolyte as '−'. ``f_RT`` = F/(RT) and ``T`` are UFL
(the problem's temperature Constant); ``xp`` is :func:`femion.laws.kinetics.ufl_math`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from femion._dolfinx import MPI, PETSc, dolfinx, ufl
from femion.constants import BOLTZMANN, FARADAY, GAS_CONSTANT, VACUUM_PERMITTIVITY
from femion.laws.kinetics import LAWS, arrhenius, reaction_rates
from femion.laws.lorentz import closure_surface_flux, hall_parameter, magneto_migration_flux, magneto_migration_flux_xz
from femion.laws.registry import choose
from femion.transport.domain import EL, GAMMA, OX, TOP

#: Residual occupancy ε (see :func:`exchange_flux`)
RESIDUAL_OCCUPANCY = 1e-9


@dataclass
class Exchange:
    """The exchange on Γ: molar flux j into the oxide and its one-way exit flux (both
    mol m⁻² s⁻¹), and the exchanged ion's valence z."""

    j: object
    exit_flux: object
    z: int


def exchange_flux(fields, m, oxide, electrolyte, kinetics, *, f_RT, T, exchange_on, xp) -> Exchange:
    """j = on · i0_ref(T)/(zF) (r_in − r_out), with the reaction-specific one-way rates of
    :func:`femion.laws.kinetics.reaction_rates` (insertion ∝ (1 − θ) c_l/c_l,0, extraction ∝ θ) at
    the driving force zη̃, η̃ = F(φ_e − U(θ))/(RT) − ψ."""
    k = kinetics
    # the filling the exchange sees is the film's at its electrolyte face: a shell's surface filling
    th_p = m.side(fields.theta_expr(fields.u["w_s" if "w_s" in fields.u else "w"]), "+")
    ex = electrolyte.ion(electrolyte.exchanging)
    c_l = m.side(fields.concentration_exprs(fields.u)[ex.name], "-")
    U = oxide.open_circuit_potential(th_p, xp)
    if fields.cahn_hilliard:  # the interface sees the full chemical potential, gradient term included
        U = -m.side(fields.u["mu"], "+") / f_RT
    eta = f_RT * (m.side(fields.u["phi_e"], "+") - U) - m.side(fields.u["psi"], "-")
    # a z-valent ion takes z electrons: its rate sees the driving force z·η, and the exchange
    # current density i0 (A/m²) carries i0/(zF) ions per m² and second
    z = ex.valence
    i0_ref = k.exchange_current_density
    if k.activation_energy != 0.0:
        i0_ref = arrhenius(i0_ref, k.activation_energy, T, k.reference_temperature, xp=xp)
    params = dict(k.params)
    if k.reorganization_energy is not None:
        params["reorganization"] = k.reorganization_energy / (BOLTZMANN * T)
    # the transfer coefficients go to every law that declares them (Butler–Volmer and its kin)
    declared = choose(LAWS, k.law, "rate law").parameters
    params.update({n: getattr(k, n) for n in ("alpha_a", "alpha_c") if n in declared})
    r_in, r_out = reaction_rates(k.law, z * eta, th_p, c_l / ex.concentration, theta_ref=k.theta_ref, xp=xp,
                                 **params)
    # Residual occupancy ε: the exit rate vanishes as θ → ε and the entry rate as 1 − θ → ε.
    # Under volts of bipolar drive a spot of film otherwise empties completely (the exit rate
    # is first order in θ), its logit heads to −∞ and Newton stalls there; ε = 1e-9 of the
    # capacity is invisible in any total or colour, and the exchange stays conservative.
    eps = RESIDUAL_OCCUPANCY
    r_out = r_out * (1 - eps / th_p)
    r_in = r_in * (1 - eps / (1 - th_p))
    # exchange switch: 1 with electrolyte on the film, 0 once it is removed (the state is kept)
    rate_scale = exchange_on * i0_ref / (z * FARADAY)
    return Exchange(rate_scale * (r_in - r_out), rate_scale * r_out, z)


def oxide_balance(fields, m, oxide, j, dt, xp):
    """θ rows: ∂θ/∂t + ∇·N/c_max = 0, N = −D_s(θ) c_max θ(1−θ)∇w (∇μ/RT with Cahn–Hilliard),
    −N·n = j on Γ."""
    w, vw = fields.u["w"], fields.v["w"]
    theta = fields.theta_expr(w)
    cmax = oxide.c_max
    Ds = oxide.diffusivity(theta, xp)
    # N = −(D_s/RT) c_max θ(1−θ) ∇μ, μ/RT = −f U(θ) − (κ/RT) ∇²θ (weakly); reduces to Fick
    # for an ideal host with κ = 0
    grad_mu = ufl.grad(fields.u["mu"]) if fields.cahn_hilliard else ufl.grad(w)
    N_ox = -Ds * cmax * theta * (1 - theta) * grad_mu
    # The through-film part of the solid flux takes the lumped (vertex) quadrature: on the
    # film's flat cells (0.5 mm x 250 nm) its consistent bilinear form couples in-plane
    # neighbours with the wrong sign (by h_x/6h_z), so an emptied node kept losing Li to its
    # neighbours and its logit ran to the bound; at the vertices it couples only the nodes
    # above and below. The in-plane part keeps the consistent quadrature.
    # (A shell has no through-film axis: its film is one sheet, all of N in-plane.)
    gv = ufl.grad(vw)
    last = m.through_axis
    in_plane = range(len(gv)) if last is None else [i for i in range(len(gv)) if i != last]
    F = fields.bdf(theta, "w", 1.0) * vw * m.dx_mass(OX) \
        - dt / cmax * sum(N_ox[i] * gv[i] for i in in_plane) * m.dx(OX)
    if last is not None:
        F -= dt / cmax * N_ox[last] * gv[last] * m.dx_mass(OX)
    return F - dt / cmax * j * m.side(vw, "+") * m.dS(GAMMA)


def surface_filling(fields, m, oxide, j, xp):
    """w_s rows (shell): θ_s = θ̄ + t j/(3 D_s(θ̄) c_max), the filling at the film's electrolyte face.

    Through-film diffusion lumped as the quadratic-profile approximation of a slab of thickness t
    fed by the flux j at one face and closed at the other (the polynomial approximation of
    Subramanian et al., J. Electrochem. Soc. 152 (2005) A2002, for a slab): the mean θ̄ is the
    shell's unknown, and the face the exchange acts on sits t j/(3 D_s c_max) above it. Without it
    a film emptied through its face would empty too fast (its exit rate would see the mean).
    Rows: t[(θ_s − θ̄) − t j/(3 D_s c_max)] per unit area; j only where the electrolyte covers it."""
    t = oxide.thickness
    theta, theta_s = fields.theta_expr(fields.u["w"]), fields.theta_expr(fields.u["w_s"])
    v = fields.v["w_s"]
    return (theta_s - theta) * v * m.dx_mass(OX) \
        - t * t / (3.0 * oxide.diffusivity(theta, xp) * oxide.c_max) * j * v * m.dS(GAMMA)


def chemical_potential(fields, m, oxide, f_RT, T, xp):
    """μ rows (Cahn–Hilliard): μ/RT = −F U(θ)/(RT) − (κ/RT)∇²θ, weakly."""
    mu, vmu = fields.u["mu"], fields.v["mu"]
    theta = fields.theta_expr(fields.u["w"])
    kappa_RT = oxide.gradient_energy / (GAS_CONSTANT * T)
    return (mu + f_RT * oxide.open_circuit_potential(theta, xp)) * vmu * m.dx(OX) \
        - kappa_RT * ufl.inner(ufl.grad(theta), ufl.grad(vmu)) * m.dx(OX)


def lorentz_closure(fields, m, lorentz, B_oxide, ex: Exchange, dt, cmax, xp):
    """dt/c_max ∫_Γ q·∇_Γ v dS, q = λ(|B|) r_out (n̂×B̂), r_out the one-way exit
    flux of the exchange: the oxide balance gains −∇_Γ·q."""
    gdim = m.mesh.geometry.dim
    n = ufl.FacetNormal(m.mesh)("+")  # out of the oxide
    B = B_oxide("+")
    r_out = ex.exit_flux
    n3 = n if gdim == 3 else ufl.as_vector([n[0], 0.0, n[1]])
    q3 = closure_surface_flux(n3, B, r_out, lorentz.step_law, xp, z=ex.z, **lorentz.step_params)
    q = q3 if gdim == 3 else ufl.as_vector([q3[0], q3[2]])
    gv = ufl.grad(fields.v["w"])("+")
    grad_gamma = gv - ufl.dot(gv, n) * n
    return dt / cmax * (ufl.inner(q, grad_gamma) * m.dS(GAMMA))


def nernst_planck_fluxes(conc, psi, electrolyte, lorentz, B, T, gdim, xp) -> dict:
    """N_i = −D_i(T) (∇c_i + z_i c_i ∇ψ) (mol m⁻² s⁻¹), with the magneto-migration correction
    N = [N + βN×b̂ + β²(N·b̂)b̂]/(1+β²), β = z_i F D_i |B|/(RT), if ``lorentz.bulk``."""
    D = {i.name: electrolyte.diffusivity(i, T, xp) for i in electrolyte.ions}
    out = {i.name: -D[i.name] * (ufl.grad(conc[i.name]) + i.valence * conc[i.name] * ufl.grad(psi))
           for i in electrolyte.ions}
    if lorentz.bulk:
        Bmag = ufl.sqrt(ufl.inner(B, B))
        for i in electrolyte.ions:
            beta = hall_parameter(i.valence, D[i.name], Bmag, T)
            if gdim == 3:
                out[i.name] = magneto_migration_flux(out[i.name], B, beta, xp)
            else:
                out[i.name] = magneto_migration_flux_xz(out[i.name], B, beta, xp)
    return out


def charge_balance(fields, m, electrolyte, flux, j, z, dt):
    """ψ rows, electroneutral: ∇·(Σ z_k N_k) = 0 in the electrolyte, Σ z_k N_k·n = −z j on Γ."""
    charge_flux = sum(ion.valence * flux[ion.name] for ion in electrolyte.ions)
    cref, vpsi = fields.c_ref, fields.v["psi"]
    return (-dt / cref * ufl.inner(charge_flux, ufl.grad(vpsi)) * m.dx(EL)
            + dt / cref * z * j * m.side(vpsi, "-") * m.dS(GAMMA))


def poisson(fields, m, electrolyte, conc, f_RT):
    """ψ rows, Poisson: −∇·(ε₀ε_r ∇φ_l) = F Σ z c, in ψ = Fφ_l/RT and scaled by 1/(F c_ref): a
    λ_D-like coefficient."""
    cref, psi, vpsi = fields.c_ref, fields.u["psi"], fields.v["psi"]
    eps = VACUUM_PERMITTIVITY * electrolyte.relative_permittivity / (f_RT * FARADAY * cref)
    space_charge = sum(ion.valence * conc[ion.name] for ion in electrolyte.ions) / cref
    return eps * ufl.inner(ufl.grad(psi), ufl.grad(vpsi)) * m.dx(EL) - space_charge * vpsi * m.dx(EL)


def ion_balances(fields, m, electrolyte, conc, flux, j, dt):
    """u_i rows: ∂c_i/∂t + ∇·N_i = 0, each scaled by its own c_i,0; the exchanging ion loses j on Γ."""
    F = None
    for ion in fields.free_ions:
        n = f"u_{ion.name}"
        vi = fields.v[n]
        ci = ion.concentration  # each species' rows scaled by its own reference concentration
        Fi = fields.bdf(conc[ion.name], n, ci) * vi * m.dx_mass(EL) \
            - dt / ci * ufl.inner(flux[ion.name], ufl.grad(vi)) * m.dx(EL)
        if ion.name == electrolyte.exchanging:
            Fi += dt / ci * j * m.side(vi, "-") * m.dS(GAMMA)
        F = Fi if F is None else F + Fi
    return F


def electron_conductivity(oxide, m, oxide_cells, comm):
    """(σ_in-plane as a DG0 Function, the σ tensor, the row scale h²/σ_max as a Constant)."""
    # electrons in the oxide: in-plane σ = G(x)/t (the conductor beneath plus the oxide's
    # own sheet), through-thickness σ_z = the oxide's conductivity (z is the last axis)
    sigma = dolfinx.fem.Function(dolfinx.fem.functionspace(m.ox_mesh, ("DG", 0)), name="sigma_e")
    G = oxide.conductance
    if callable(G):
        sigma.interpolate(lambda x: np.asarray(G(x), dtype=float) / oxide.thickness)
    else:
        sigma.x.array[:] = G / oxide.thickness
    msh = m.mesh
    gdim, tdim = msh.geometry.dim, msh.topology.dim
    last = m.through_axis  # None in a shell: only in-plane conduction
    sig = ufl.as_matrix([[(oxide.vertical_conductivity if i == last else sigma) if i == j else 0
                          for j in range(gdim)] for i in range(gdim)])
    # Row scale h²/σ_max makes the electron rows the size of the concentration rows
    # (cell volume x O(1)), so one residual norm measures every block fairly.
    sig_max = max(comm.allreduce(float(sigma.x.array.max(initial=0.0)), op=MPI.MAX), oxide.vertical_conductivity)
    h = comm.allreduce(float(np.mean(msh.h(tdim, oxide_cells[:1000]))) if len(oxide_cells) else 0.0, op=MPI.MAX)
    # a Constant, so that forms do not recompile for every mesh size
    e_scale = dolfinx.fem.Constant(msh, PETSc.ScalarType(h**2 / sig_max))
    return sigma, sig, e_scale


def electron_conduction(fields, m, sig, e_scale, j, z):
    """φ_e rows: −∇·(σ∇φ_e) = 0 in the oxide, σ∇φ_e·n = zF j on Γ, scaled by h²/σ_max."""
    phi, vphi = fields.u["phi_e"], fields.v["phi_e"]
    # σ∇φ_e·n = zF j on Γ: insertion draws electrons to the interface, so conventional current
    # leaves Γ into the oxide (n out of the oxide)
    return e_scale * ufl.inner(sig * ufl.grad(phi), ufl.grad(vphi)) * m.dx(OX) \
        - e_scale * z * FARADAY * j * m.side(vphi, "+") * m.dS(GAMMA)


def top_exchange_flux(c_top, psi, top, z, c_ex, f_RT, top_potential, top_connected):
    """j_top = on · (i0_top/(zF)) (c/c_0)^(1−α) [e^{(1−α)η̃} − e^{−αη̃}], η̃ = z(F(φ_top − U_top)/RT − ψ):
    the cation released into the electrolyte by oxidation at φ_top (mol m⁻² s⁻¹)."""
    # × top_connected: an open electrode has no overpotential to overflow exp() with
    eta_top = top_connected * z * (f_RT * (top_potential - top.equilibrium_potential) - psi)
    return top_connected * top.exchange_current_density / (z * FARADAY) * (c_top / c_ex) ** (1 - top.alpha) * (
        ufl.exp((1 - top.alpha) * eta_top) - ufl.exp(-top.alpha * eta_top))


def top_electrode(fields, m, electrolyte, j_top, z, dt):
    """The counter electrode's source on the top face: +j_top of the cation (and its charge)."""
    ex = electrolyte.ion(electrolyte.exchanging)
    F = -(dt / ex.concentration * j_top * fields.v[f"u_{ex.name}"] * m.ds(TOP))
    if not electrolyte.poisson:
        F -= dt / fields.c_ref * z * j_top * fields.v["psi"] * m.ds(TOP)
    return F


def double_layer(fields, m, top, top_connected, f_RT):
    """Double-layer charging current i_dl = C_dl d(φ_top − φ_l)/dt = −C_dl (RT/F) dψ/dt from the
    electrode into the electrolyte: charge, but no species, crosses (ψ rows, × Δt/(F c_ref))."""
    dpsi = fields.bdf_increment("psi")
    return top_connected * top.capacitance / (f_RT * FARADAY * fields.c_ref) * dpsi * fields.v["psi"] * m.ds(TOP)


def manufactured_sources(sources: dict, fields, m, oxide, electrolyte, dt, e_scale):
    """Σ of the given volume and Γ sources (manufactured solutions), each in its block's scaling;
    keys: oxide, charge, electron, <ion>, and interface_<same>."""
    scale = {"oxide": (dt / oxide.c_max, "w", "+"), "charge": (dt / fields.c_ref, "psi", "-"),
             "electron": (e_scale, "phi_e", "+")}
    for ion in fields.free_ions:
        scale[ion.name] = (dt / ion.concentration, f"u_{ion.name}", "-")
    dx = {"w": m.dx(OX), "phi_e": m.dx(OX)}
    F = None
    for key, (s, name, side) in scale.items():
        terms = []
        if key in sources:
            terms.append(s * sources[key] * fields.v[name] * dx.get(name, m.dx(EL)))
        if f"interface_{key}" in sources and not (key == "charge" and electrolyte.poisson):
            terms.append(s * sources[f"interface_{key}"] * m.side(fields.v[name], side) * m.dS(GAMMA))
        for t in terms:
            F = t if F is None else F + t
    return F
