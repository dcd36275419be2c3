"""Coupled ion transport: oxide intercalation, electrolyte Nernst–Planck, interfacial exchange.

Unknowns (all P1, each on its own submesh of the stack's oxide or electrolyte):

* oxide filling fraction θ = c_s/c_max through its logit w = ln(θ/(1−θ)), so 0 < θ < 1 always:
      ∂c_s/∂t = ∇·(D_s(θ)∇c_s),   ∇c_s = c_max θ(1−θ)∇w
* electrolyte ions i through u_i = ln(c_i/c_ref), so c_i > 0 always (dilute Nernst–Planck):
      ∂c_i/∂t + ∇·N_i = 0,   N_i = −D_i c_i ∇(u_i + z_i ψ),   ψ = Fφ_l/(RT)
  electroneutral: the ``eliminated`` ion has c_e = −Σ_{i≠e} z_i c_i / z_e, and ψ solves
      ∇·(Σ_k z_k N_k) = 0
* electron potential φ_e of the oxide, carried by the conductor beneath it (sheet conductance
  G(x) = G_conductor + G_oxide spread over the oxide thickness t: σ = G/t), with the faradaic
  current as its source:  −∇·(σ∇φ_e) = 0 in the oxide,  σ∇φ_e·n = zF j on Γ.

Exchange on Γ = oxide|electrolyte of the cation of valence z (molar flux into the oxide,
mol m⁻² s⁻¹; a z-valent ion takes z electrons, its rate sees z times the driving force):
      j = (i0/(zF))·[r_red(zη̃) − r_ox(zη̃)],   η̃ = F(φ_e − φ_l − U(θ))/(RT)
      i0 = i0_ref (c_l/c_ref)^α_a ((1−θ)/(1−θ_ref))^α_a (θ/θ_ref)^α_c
The oxide gains j, the exchanging cation loses j, other ions see no flux. An optional top
electrode (electrolyte|top_ito) exchanges the same cation by Butler–Volmer at a set potential.

Time: BDF1 or variable-step BDF2, every equation multiplied by Δt so all blocks have the scale
of a concentration change. Species totals are conserved to solver tolerance by construction
(the interface terms cancel between the domains).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np
from femion._dolfinx import MPI, PETSc, dolfinx, ufl
from femion.constants import FARADAY, GAS_CONSTANT


class TransportSolveError(RuntimeError):
    """Newton failed (or gave a non-finite state) for a transport step."""


# ----------------------------------------------------------------- models


@dataclass(frozen=True)
class Ion:
    """An electrolyte ion: valence z, diffusivity D (m²/s), initial concentration (mol/m³)."""

    name: str
    valence: int
    diffusivity: float
    concentration: float


@dataclass
class OxideModel:
    """Intercalation host: c_max (mol/m³), D_s(θ) (m²/s), U(θ) (V), θ at t = 0."""

    c_max: float
    diffusivity: Callable  # (theta, xp) -> D_s
    open_circuit_potential: Callable  # (theta, xp) -> U
    theta_initial: float | Callable[[np.ndarray], np.ndarray] = 0.5
    conductance: float | Callable[[np.ndarray], np.ndarray] = 0.0  # in-plane sheet conductance G(x), S
    thickness: float = 1.0  # m, to spread G into σ_in-plane = G/t
    vertical_conductivity: float = 12.5  # S/m, the oxide's own (through-thickness conduction)
    gradient_energy: float = 0.0  # Cahn–Hilliard κ (J m²/mol): μ = −F U(θ) − κ∇²θ when > 0


@dataclass
class ElectrolyteModel:
    """Ions, which one is exchanged with the oxide, and how ψ is found.

    Electroneutral (default): the ``eliminated`` ion (default the last) follows from Σ z c = 0
    and ψ from charge conservation. ``poisson=True``: every ion is an unknown and
    −∇·(ε₀ε_r ∇φ_l) = F Σ z_i c_i (needs a mesh that resolves the Debye length).
    """

    ions: Sequence[Ion]
    exchanging: str
    eliminated: str | None = None  # default: the last ion
    poisson: bool = False
    relative_permittivity: float = 65.0

    def __post_init__(self):
        names = [i.name for i in self.ions]
        if self.poisson:
            self.eliminated = None
        elif self.eliminated is None:
            self.eliminated = names[-1]
        for key in ("exchanging", "eliminated"):
            if key == "eliminated" and self.poisson:
                continue
            if getattr(self, key) not in names:
                raise ValueError(f"{key}: {getattr(self, key)!r} is not an ion (ions: {', '.join(names)})")
        if self.exchanging == self.eliminated:
            raise ValueError("the exchanged ion cannot be the one eliminated by electroneutrality")
        charge = sum(i.valence * i.concentration for i in self.ions)
        scale = sum(abs(i.valence) * i.concentration for i in self.ions)
        if abs(charge) > 1e-9 * scale:
            raise ValueError(f"initial electrolyte is not electroneutral (sum z c = {charge:g} mol/m3)")

    def ion(self, name: str) -> Ion:
        return next(i for i in self.ions if i.name == name)


@dataclass
class KineticsModel:
    """Interfacial rate law by name (see femion.laws.kinetics), i0_ref (A/m²) at c_ref and θ_ref."""

    law: str = "butler_volmer"
    exchange_current_density: float = 1.0
    alpha_a: float = 0.5
    alpha_c: float = 0.5
    theta_ref: float = 0.5
    params: dict = field(default_factory=dict)


@dataclass
class TopElectrode:
    """Counter electrode on the electrolyte's top: BV exchange of the cation at potential φ_top."""

    potential: float = 0.0  # V
    exchange_current_density: float = 10.0  # A/m²
    equilibrium_potential: float = 0.0  # U_top (V): η_top = φ_top − φ_l − U_top
    alpha: float = 0.5
    capacitance: float = 0.0  # double-layer capacitance C_dl, F/m²


@dataclass
class LorentzModel:
    """Lorentz terms (physics.md §2.6), each switchable; off by default.

    ``bulk``: magneto-migration N = [N0 + β N0×b̂ + β²(N0·b̂)b̂]/(1+β²), β = zFD|B|/RT.
    ``closure``: the paper's interfacial step, a tangential flux q = λ(|B|) r_out (n̂×B̂) on Γ
    entering the oxide balance as −∇_Γ·q (``step_law`` and ``step_params`` from femion.laws.lorentz).
    """

    bulk: bool = False
    closure: bool = False
    step_law: str = "constant"
    step_params: dict = field(default_factory=lambda: {"lam0": 0.0})


# ----------------------------------------------------------------- domain


@dataclass
class TransportDomain:
    """A parent mesh with its oxide and electrolyte cells and the oxide|electrolyte facets."""

    mesh: "dolfinx.mesh.Mesh"
    oxide_cells: np.ndarray
    electrolyte_cells: np.ndarray
    interface_facets: np.ndarray
    top_facets: np.ndarray | None = None

    @classmethod
    def from_stack(cls, stack, oxide="oxide", electrolyte="electrolyte", top="electrolyte|top_ito"):
        """Domain from a :class:`femion.geometry.mesh.StackMesh` (2D section or 3D)."""
        top_facets = stack.facets(top) if top in stack.names else None
        return cls(stack.mesh, stack.cells(oxide), stack.cells(electrolyte),
                   stack.facets(f"{oxide}|{electrolyte}"), top_facets)


def _interface_entities(msh, facets, first_cells):
    """(cell, local facet) pairs of interior facets, the ``first_cells`` side always '+'."""
    tdim = msh.topology.dim
    msh.topology.create_connectivity(tdim - 1, tdim)
    msh.topology.create_connectivity(tdim, tdim - 1)
    data = dolfinx.fem.compute_integration_domains(dolfinx.fem.IntegralType.interior_facet, msh.topology, facets)
    data = np.asarray(data, dtype=np.int32).reshape(-1, 4).copy()
    n = msh.topology.index_map(tdim).size_local + msh.topology.index_map(tdim).num_ghosts
    mark = np.zeros(n, dtype=bool)
    mark[first_cells] = True
    swap = ~mark[data[:, 0]]
    data[swap] = data[swap][:, [2, 3, 0, 1]]
    if not mark[data[:, 0]].all():
        raise ValueError("an interface facet does not touch the given side")
    return data.ravel()


def _one_sided_entities(msh, facets, cells):
    """(cell, local facet) pairs for a one-sided ("ds") integral over ``facets`` from the side of
    ``cells``: a facet between two layers (the electrolyte under the top ITO) is interior to the
    parent mesh, and which of its cells dolfinx lists first depends on the numbering."""
    tdim = msh.topology.dim
    msh.topology.create_connectivity(tdim - 1, tdim)
    facets = np.asarray(facets, dtype=np.int32)
    two = np.diff(msh.topology.connectivity(tdim - 1, tdim).offsets)[facets] == 2
    parts = []
    if (~two).any():
        parts.append(np.asarray(dolfinx.fem.compute_integration_domains(
            dolfinx.fem.IntegralType.exterior_facet, msh.topology, facets[~two]), dtype=np.int32).reshape(-1, 2))
    if two.any():
        parts.append(_interface_entities(msh, facets[two], cells).reshape(-1, 4)[:, :2])
    data = np.concatenate(parts) if parts else np.zeros((0, 2), dtype=np.int32)
    return np.ascontiguousarray(data).ravel()


# ----------------------------------------------------------------- problem

OX, EL = 1, 2  # cell-integral ids
GAMMA, TOP = 1, 2  # facet-integral ids


class TransportProblem:
    """The coupled nonlinear problem for one time step (see module doc)."""

    def __init__(
        self,
        domain: TransportDomain,
        oxide: OxideModel,
        electrolyte: ElectrolyteModel,
        kinetics: KineticsModel,
        *,
        temperature: float = 298.15,
        top: TopElectrode | None = None,
        electron_contacts: Sequence[tuple[Callable, float]] = (),
        sources: dict | Callable | None = None,
        dirichlet: dict | None = None,
        electrolyte_initial: dict[str, Callable] | None = None,
        prefix: str = "femion_transport_",
        quadrature_degree: int = 4,
        lumped_mass: bool = True,
        magnetic_field: Callable[[np.ndarray], np.ndarray] | None = None,
        lorentz: LorentzModel | None = None,
    ):
        from femion.laws.kinetics import rate, ufl_math

        self.domain, self.oxide, self.electrolyte, self.kinetics = domain, oxide, electrolyte, kinetics
        self.T = temperature
        msh = domain.mesh
        self.comm = msh.comm
        tdim = msh.topology.dim
        ncell = msh.topology.index_map(tdim).size_local + msh.topology.index_map(tdim).num_ghosts
        values = np.zeros(ncell, dtype=np.int32)
        values[domain.oxide_cells] = OX
        values[domain.electrolyte_cells] = EL
        self.cell_tags = dolfinx.mesh.meshtags(msh, tdim, np.arange(ncell, dtype=np.int32), values)
        self.ox_mesh, self.ox_map = dolfinx.mesh.create_submesh(msh, tdim, domain.oxide_cells)[:2]
        self.el_mesh, self.el_map = dolfinx.mesh.create_submesh(msh, tdim, domain.electrolyte_cells)[:2]
        self.entity_maps = [self.ox_map, self.el_map]
        facet_data = [(GAMMA, _interface_entities(msh, domain.interface_facets, domain.oxide_cells))]
        # One fixed quadrature for residual and Jacobian: UFL would otherwise estimate a higher
        # degree for the Jacobian of exp(u) terms, and Newton would lose its quadratic rate.
        md = {"quadrature_degree": quadrature_degree}
        self.dx = ufl.Measure("dx", domain=msh, subdomain_data=self.cell_tags, metadata=md)
        # Lumped mass for the time derivatives (quadrature at the vertices): no over/undershoot
        # where exchange switches on at a coating edge, and uncoated oxide is left untouched.
        if msh.topology.cell_type in (dolfinx.mesh.CellType.quadrilateral, dolfinx.mesh.CellType.hexahedron):
            lump = {"quadrature_rule": "GLL", "quadrature_degree": 1}
        else:
            lump = {"quadrature_rule": "vertex", "quadrature_degree": 1}
        self.dx_mass = ufl.Measure("dx", domain=msh, subdomain_data=self.cell_tags, metadata=lump) if lumped_mass \
            else self.dx

        # The exchange on Γ is lumped the same way (vertex quadrature): with consistent facet
        # quadrature, a floating oxide (no conductor beneath) admits node-to-node oscillating φ_e
        # whose exchange cancels against every hat function, a spurious checkerboard of θ.
        self.dS = ufl.Measure("dS", domain=msh, subdomain_data=facet_data, metadata=lump if lumped_mass else md)
        self.ds = None
        if top is not None and domain.top_facets is not None:
            top_entities = _one_sided_entities(msh, domain.top_facets, domain.electrolyte_cells)
            self.ds = ufl.Measure("ds", domain=msh, subdomain_data=[(TOP, top_entities)], metadata=md)

        # one space object per field, so Dirichlet conditions never leak between blocks
        def P1(m):
            return dolfinx.fem.functionspace(m, ("Lagrange", 1))

        self.free_ions = [i for i in electrolyte.ions if i.name != electrolyte.eliminated]
        self.c_ref = max(i.concentration for i in electrolyte.ions)
        self.spaces = {"w": P1(self.ox_mesh), "phi_e": P1(self.ox_mesh), "psi": P1(self.el_mesh)}
        for ion in self.free_ions:
            self.spaces[f"u_{ion.name}"] = P1(self.el_mesh)
        self.names = ["w"] + [f"u_{i.name}" for i in self.free_ions] + ["psi", "phi_e"]
        self.cahn_hilliard = oxide.gradient_energy > 0
        if self.cahn_hilliard:  # chemical potential μ (in units of RT) as its own field
            self.spaces["mu"] = P1(self.ox_mesh)
            self.names.append("mu")
        self.u = {n: dolfinx.fem.Function(self.spaces[n], name=n) for n in self.names}
        stored = ("w", "u_", "psi") if (top is not None and top.capacitance > 0) else ("w", "u_")
        self.u_old = {n: dolfinx.fem.Function(self.spaces[n]) for n in self.names if n.startswith(stored)}
        self.u_older = {n: dolfinx.fem.Function(self.spaces[n]) for n in self.u_old}
        W = ufl.MixedFunctionSpace(*[self.spaces[n] for n in self.names])
        self.v = dict(zip(self.names, ufl.TestFunctions(W)))

        # magnetic flux density (T) as 3-vectors on both submeshes; x → B(x) from the caller
        self.lorentz = lorentz or LorentzModel()
        self.B = {}
        for key, m in (("oxide", self.ox_mesh), ("electrolyte", self.el_mesh)):
            self.B[key] = dolfinx.fem.Function(dolfinx.fem.functionspace(m, ("Lagrange", 1, (3,))), name="B")
            if magnetic_field is not None:
                self.B[key].interpolate(lambda x: np.asarray(magnetic_field(x), dtype=float).reshape(3, -1))
        bmax = max(float(np.linalg.norm(self.B[k].x.array.reshape(-1, 3), axis=1).max(initial=0.0)) for k in self.B)
        self.max_B = self.comm.allreduce(bmax, op=MPI.MAX)
        #: largest Hall parameter |β| = |z| F D |B| / RT over the ions (reported whether or not the
        #: bulk term is switched on)
        self.max_hall_parameter = max(abs(i.valence) * i.diffusivity for i in electrolyte.ions) * FARADAY * \
            self.max_B / (GAS_CONSTANT * temperature)

        self.dt = dolfinx.fem.Constant(msh, 1.0)
        self.time = dolfinx.fem.Constant(msh, 0.0)  # t at the new level (for sources)
        # BDF coefficients: (a0 x^{n+1} + a1 x^n + a2 x^{n-1}) / dt
        self.a = [dolfinx.fem.Constant(msh, v) for v in (1.0, -1.0, 0.0)]
        self.f_RT = FARADAY / (GAS_CONSTANT * temperature)
        self._contact_values = [v for _, v in electron_contacts]
        self._top = top
        self._set_initial(electrolyte_initial or {})

        xp = ufl_math()
        w, psi, phi = self.u["w"], self.u["psi"], self.u["phi_e"]
        theta = self.theta_expr(w)
        conc = self.concentration_exprs(self.u)
        dx, dS = self.dx, self.dS
        dt, a = self.dt, self.a
        cmax, cref = oxide.c_max, self.c_ref
        if callable(sources):  # manufactured solutions: sources(x, t) with UFL x and t
            sources = sources(ufl.SpatialCoordinate(msh), self.time)
        sources = sources or {}

        def bdf(expr_new, name, scale):
            old = self._old_expr(name, self.u_old)
            older = self._old_expr(name, self.u_older)
            return (a[0] * expr_new + a[1] * old + a[2] * older) / scale

        # exchange flux j (into the oxide), evaluated on Γ: oxide '+', electrolyte '-'
        th_p = theta("+")
        ex = electrolyte.exchanging
        c_l = conc[ex]("-")
        U = oxide.open_circuit_potential(th_p, xp)
        if self.cahn_hilliard:  # the interface sees the full chemical potential, gradient term included
            U = -self.u["mu"]("+") / self.f_RT
        eta = self.f_RT * (phi("+") - U) - psi("-")
        # a z-valent ion takes z electrons: its rate sees the driving force z·η, and the exchange
        # current density i0 (A/m²) carries i0/(zF) ions per m² and second
        z_ex = self.z_ex = electrolyte.ion(ex).valence
        k = kinetics
        i0 = (k.exchange_current_density * (c_l / electrolyte.ion(ex).concentration) ** k.alpha_a
              * ((1 - th_p) / (1 - k.theta_ref)) ** k.alpha_a * (th_p / k.theta_ref) ** k.alpha_c)
        params = dict(k.params)
        if k.law == "butler_volmer":
            params.update(alpha_a=k.alpha_a, alpha_c=k.alpha_c)
        r_red, r_ox = rate(k.law, z_ex * eta, xp=xp, **params)
        # Residual occupancy ε: the exit rate vanishes as θ → ε and the entry rate as 1 − θ → ε.
        # Under volts of bipolar drive a spot of film otherwise empties completely (the exit rate
        # is first order in θ), its logit heads to −∞ and Newton stalls there; ε = 1e-12 of the
        # capacity is invisible in any total or colour, and the exchange stays conservative.
        eps = self.RESIDUAL_OCCUPANCY
        r_ox = r_ox * (1 - eps / th_p)
        r_red = r_red * (1 - eps / (1 - th_p))
        # exchange switch: 1 with electrolyte on the film, 0 once it is removed (the state is kept)
        self.exchange_on = dolfinx.fem.Constant(msh, PETSc.ScalarType(1.0))
        self.j = self.exchange_on * i0 / (z_ex * FARADAY) * (r_red - r_ox)
        self.eta = eta

        Ds = oxide.diffusivity(theta, xp)
        if self.cahn_hilliard:
            # N = −(D_s/RT) c_max θ(1−θ) ∇μ, μ/RT = −f U(θ) − (κ/RT) ∇²θ (weakly); reduces to Fick
            # for an ideal host with κ = 0
            mu = self.u["mu"]
            kappa_RT = oxide.gradient_energy / (GAS_CONSTANT * temperature)
            vmu = self.v["mu"]
            N_ox = -Ds * cmax * theta * (1 - theta) * ufl.grad(mu)
            F_mu = (mu + self.f_RT * oxide.open_circuit_potential(theta, xp)) * vmu * dx(OX) \
                - kappa_RT * ufl.inner(ufl.grad(theta), ufl.grad(vmu)) * dx(OX)
        else:
            N_ox = -Ds * cmax * theta * (1 - theta) * ufl.grad(w)
        dm = self.dx_mass
        # The through-film part of the solid flux takes the lumped (vertex) quadrature: on the
        # film's flat cells (0.5 mm x 250 nm) its consistent bilinear form couples in-plane
        # neighbours with the wrong sign (by h_x/6h_z), so an emptied node kept losing Li to its
        # neighbours and its logit ran to the bound; at the vertices it couples only the nodes
        # above and below. The in-plane part keeps the consistent quadrature.
        gv = ufl.grad(self.v["w"])
        last = msh.geometry.dim - 1
        F = bdf(theta, "w", 1.0) * self.v["w"] * dm(OX) \
            - dt / cmax * sum(N_ox[i] * gv[i] for i in range(last)) * dx(OX) \
            - dt / cmax * N_ox[last] * gv[last] * dm(OX)
        F -= dt / cmax * self.j * self.v["w"]("+") * dS(GAMMA)
        if self.lorentz.closure:
            F -= dt / cmax * self._closure_term(xp, r_ox, i0)
        if "oxide" in sources:
            F -= dt / cmax * sources["oxide"] * self.v["w"] * dx(OX)
        if "interface_oxide" in sources:
            F -= dt / cmax * sources["interface_oxide"] * self.v["w"]("+") * dS(GAMMA)

        flux = self.fluxes(conc, psi)
        charge_flux = sum(ion.valence * flux[ion.name] for ion in electrolyte.ions)
        vpsi = self.v["psi"]
        if electrolyte.poisson:
            # −∇·(ε ∇φ_l) = F Σ z c, in ψ = Fφ_l/RT and scaled by 1/(F c_ref): λ_D-like coefficient
            from scipy.constants import epsilon_0

            eps = epsilon_0 * electrolyte.relative_permittivity / (self.f_RT * FARADAY * cref)
            space_charge = sum(ion.valence * conc[ion.name] for ion in electrolyte.ions) / cref
            F += eps * ufl.inner(ufl.grad(psi), ufl.grad(vpsi)) * dx(EL) - space_charge * vpsi * dx(EL)
        else:
            F += (-dt / cref * ufl.inner(charge_flux, ufl.grad(vpsi)) * dx(EL)
                  + dt / cref * z_ex * self.j * vpsi("-") * dS(GAMMA))
        if "charge" in sources:
            F -= dt / cref * sources["charge"] * vpsi * dx(EL)
        if "interface_charge" in sources and not electrolyte.poisson:
            F -= dt / cref * sources["interface_charge"] * vpsi("-") * dS(GAMMA)
        for ion in self.free_ions:
            n = f"u_{ion.name}"
            vi = self.v[n]
            ci = ion.concentration  # each species' rows scaled by its own reference concentration
            F += bdf(conc[ion.name], n, ci) * vi * dm(EL) - dt / ci * ufl.inner(flux[ion.name], ufl.grad(vi)) * dx(EL)
            if ion.name == ex:
                F += dt / ci * self.j * vi("-") * dS(GAMMA)
            if ion.name in sources:
                F -= dt / ci * sources[ion.name] * vi * dx(EL)
            if f"interface_{ion.name}" in sources:
                F -= dt / ci * sources[f"interface_{ion.name}"] * vi("-") * dS(GAMMA)

        # electrons in the oxide: in-plane σ = G(x)/t (the conductor beneath plus the oxide's
        # own sheet), through-thickness σ_z = the oxide's conductivity (z is the last axis)
        self.sigma = dolfinx.fem.Function(dolfinx.fem.functionspace(self.ox_mesh, ("DG", 0)), name="sigma_e")
        G = oxide.conductance
        if callable(G):
            self.sigma.interpolate(lambda x: np.asarray(G(x), dtype=float) / oxide.thickness)
        else:
            self.sigma.x.array[:] = G / oxide.thickness
        gdim = msh.geometry.dim
        sig = ufl.as_matrix([[self.sigma if (i == j and i < gdim - 1) else (oxide.vertical_conductivity if i == j else 0)
                              for j in range(gdim)] for i in range(gdim)])
        # Row scale h²/σ_max makes the electron rows the size of the concentration rows
        # (cell volume x O(1)), so one residual norm measures every block fairly.
        sig_max = max(self.comm.allreduce(float(self.sigma.x.array.max(initial=0.0)), op=MPI.MAX),
                      oxide.vertical_conductivity)
        h = self.comm.allreduce(float(np.mean(msh.h(tdim, domain.oxide_cells[:1000]))) if len(domain.oxide_cells)
                                else 0.0, op=MPI.MAX)
        # a Constant, so that forms do not recompile for every mesh size
        e_scale = dolfinx.fem.Constant(msh, PETSc.ScalarType(h**2 / sig_max))
        vphi = self.v["phi_e"]
        F += e_scale * ufl.inner(sig * ufl.grad(phi), ufl.grad(vphi)) * dx(OX)
        # σ∇φ_e·n = zF j on Γ: insertion draws electrons to the interface, so conventional current
        # leaves Γ into the oxide (n out of the oxide)
        F -= e_scale * z_ex * FARADAY * self.j * vphi("+") * dS(GAMMA)
        if "electron" in sources:
            F -= e_scale * sources["electron"] * vphi * dx(OX)
        if "interface_electron" in sources:
            F -= e_scale * sources["interface_electron"] * vphi("+") * dS(GAMMA)

        # top electrode: cation released into the electrolyte by oxidation at φ_top
        self.j_top = None
        if self.ds is not None:
            c_top = conc[ex]
            #: the counter electrode's potential φ_top (V) on the electrolyte mesh: uniform, or the
            #: driven top sheet's φ_s(x) (seed 000 Model IV); a protocol sets it
            self.top_potential = dolfinx.fem.Function(self.spaces["psi"], name="phi_top")
            self.top_potential.x.array[:] = top.potential
            #: 1 while the top electrode is connected to the source, 0 when it is left open
            self.top_connected = dolfinx.fem.Constant(msh, PETSc.ScalarType(1.0))
            # × top_connected: an open electrode has no overpotential to overflow exp() with
            eta_top = self.top_connected * z_ex * (self.f_RT * (self.top_potential - top.equilibrium_potential) - psi)
            self.j_top = self.top_connected * top.exchange_current_density / (z_ex * FARADAY) * (
                c_top / electrolyte.ion(ex).concentration) ** (1 - top.alpha) * (
                ufl.exp((1 - top.alpha) * eta_top) - ufl.exp(-top.alpha * eta_top))
            F -= dt / electrolyte.ion(ex).concentration * self.j_top * self.v[f"u_{ex}"] * self.ds(TOP)
            if not electrolyte.poisson:
                F -= dt / cref * z_ex * self.j_top * vpsi * self.ds(TOP)
                if top.capacitance > 0:
                    # double-layer charging current i_dl = C_dl d(φ_top − φ_l)/dt = −C_dl (RT/F) dψ/dt
                    # from the electrode into the electrolyte: charge, but no species, crosses
                    psi_old, psi_older = self.u_old["psi"], self.u_older["psi"]
                    dpsi = a[0] * psi + a[1] * psi_old + a[2] * psi_older
                    F += self.top_connected * top.capacitance / (self.f_RT * FARADAY * cref) * dpsi * vpsi \
                        * self.ds(TOP)

        if self.cahn_hilliard:
            F += F_mu
        self.residual = F
        bcs = []
        self._bc_field = []
        #: contact potentials (V) as Constants, so a protocol can scale or reverse the drive
        self.contact_potentials = []
        for locate, value in electron_contacts:
            dofs = dolfinx.fem.locate_dofs_geometrical(self.spaces["phi_e"], locate)
            value_c = dolfinx.fem.Constant(self.ox_mesh, PETSc.ScalarType(value))
            self.contact_potentials.append(value_c)
            bcs.append(dolfinx.fem.dirichletbc(value_c, dofs, self.spaces["phi_e"]))
            self._bc_field.append((bcs[-1], "phi_e"))
        self._dirichlet_funcs = []
        for name, (locate, func) in (dirichlet or {}).items():
            V = self.spaces[name]
            g = dolfinx.fem.Function(V)
            dofs = dolfinx.fem.locate_dofs_geometrical(V, locate)
            bcs.append(dolfinx.fem.dirichletbc(g, dofs))
            self._dirichlet_funcs.append((g, func))
            self._bc_field.append((bcs[-1], name))
        # Without any exchange the potentials have no reference: pin each at one node.
        pinned = {name for _, name in self._bc_field}
        if kinetics.exchange_current_density == 0.0:
            for name, mesh_ in (("psi", self.el_mesh), ("phi_e", self.ox_mesh)):
                if name in pinned or (name == "psi" and self.ds is not None):
                    continue
                corner = [self.comm.allreduce(float(mesh_.geometry.x[:, i].min(initial=np.inf)), op=MPI.MIN)
                          for i in range(msh.geometry.dim)]
                if name == "phi_e":  # no exchange: φ_e is meaningless, and may be uncoupled column by column
                    dofs = np.arange(self.spaces[name].dofmap.index_map.size_local
                                     + self.spaces[name].dofmap.index_map.num_ghosts, dtype=np.int32)
                else:
                    dofs = dolfinx.fem.locate_dofs_geometrical(
                        self.spaces[name], lambda x, c=corner: np.all([np.isclose(x[i], c[i], rtol=0, atol=1e-9 * (
                            1 + abs(c[i]))) for i in range(len(c))], axis=0))
                value = float(self.u[name].x.array[0]) if self.u[name].x.array.size else 0.0
                value = self.comm.bcast(value, root=0)
                bcs.append(dolfinx.fem.dirichletbc(PETSc.ScalarType(value), dofs, self.spaces[name]))
                self._bc_field.append((bcs[-1], name))
        self.bcs = bcs
        self._contact_bcs = [bc for bc, _ in self._bc_field[:len(self.contact_potentials)]]
        # Once the electrolyte is removed nothing ties ψ (and, with the contacts open, φ_e) to a
        # level: each is then held at one node at the value it had (see _activate).
        self._pins = {}
        for name, mesh_ in (("psi", self.el_mesh), ("phi_e", self.ox_mesh)):
            corner = [self.comm.allreduce(float(mesh_.geometry.x[:, i].min(initial=np.inf)), op=MPI.MIN)
                      for i in range(msh.geometry.dim)]
            dofs = dolfinx.fem.locate_dofs_geometrical(
                self.spaces[name], lambda x, c=corner: np.all([np.isclose(x[i], c[i], rtol=0, atol=1e-9 * (
                    1 + abs(c[i]))) for i in range(len(c))], axis=0))
            g = dolfinx.fem.Function(self.spaces[name])
            self._pins[name] = (dolfinx.fem.dirichletbc(g, dofs), g)
        # Residual rows are (change of concentration / reference) x cell volume, so an absolute
        # tolerance has to follow the size of the domain: 1e-14 of its volume.
        self.volume = self.integrate(dolfinx.fem.Constant(msh, 1.0), "oxide") + self.integrate(
            dolfinx.fem.Constant(msh, 1.0), "electrolyte")
        self._prefix = prefix
        self._problems = {}
        self.contacts_connected = (True,) * len(self._contact_bcs)
        self._activate()
        self.t = 0.0
        self._have_older = False

    def _converged(self, snes, it, norms):
        """Newton test: 1e-13 relative or 1e-14·|Ω| absolute, or stagnation at round-off.

        Round-off in the assembled residual floors near 1e-14·|Ω|; once the residual is that
        small and no longer falls (quadratic convergence has ended), the step is done. Species
        totals then hold to ~1e-14 per step.
        """
        fnorm = norms[2]
        rtol, atol, _, max_it = snes.getTolerances()
        if it == 0:
            self._r0 = self._rprev = fnorm
            self._flat = 0
            return PETSc.SNES.ConvergedReason.CONVERGED_FNORM_ABS if fnorm <= atol else 0
        if not np.isfinite(fnorm):
            return PETSc.SNES.ConvergedReason.DIVERGED_FUNCTION_NANORINF
        if fnorm <= atol:
            return PETSc.SNES.ConvergedReason.CONVERGED_FNORM_ABS
        if fnorm <= rtol * self._r0:
            return PETSc.SNES.ConvergedReason.CONVERGED_FNORM_RELATIVE
        if fnorm <= 1e-12 * self.volume and fnorm > 0.2 * self._rprev:
            return PETSc.SNES.ConvergedReason.CONVERGED_SNORM_RELATIVE
        # a higher round-off floor (states with θ or c spanning many decades): 1e-10 of the
        # volume, no longer falling for three iterations
        self._flat = self._flat + 1 if fnorm > 0.5 * self._rprev else 0
        if fnorm <= 1e-10 * self.volume and self._flat >= 3:
            return PETSc.SNES.ConvergedReason.CONVERGED_SNORM_RELATIVE
        if it >= max_it:
            return PETSc.SNES.ConvergedReason.DIVERGED_MAX_IT
        self._rprev = fnorm
        return 0

    # ------------------------------------------------------------ fields
    @staticmethod
    def theta_expr(w):
        return 1.0 / (1.0 + ufl.exp(-w))

    def concentration_exprs(self, u: dict) -> dict:
        """c_i (mol/m³) of every ion as UFL, the eliminated one by electroneutrality."""
        el = self.electrolyte
        conc = {i.name: i.concentration * ufl.exp(u[f"u_{i.name}"]) for i in self.free_ions}
        if el.eliminated is not None:
            e = el.ion(el.eliminated)
            conc[e.name] = -sum(i.valence * conc[i.name] for i in self.free_ions) / e.valence
        return conc

    def fluxes(self, conc: dict, psi) -> dict:
        """N_i = −D_i (∇c_i + z_i c_i ∇ψ) (mol m⁻² s⁻¹), with the magneto-migration correction if on."""
        out = {i.name: -i.diffusivity * (ufl.grad(conc[i.name]) + i.valence * conc[i.name] * ufl.grad(psi))
               for i in self.electrolyte.ions}
        if self.lorentz.bulk:
            from femion.laws.kinetics import ufl_math
            from femion.laws.lorentz import hall_parameter, magneto_migration_flux, magneto_migration_flux_xz

            xp = ufl_math()
            B = self.B["electrolyte"]
            Bmag = ufl.sqrt(ufl.inner(B, B))
            gdim = self.domain.mesh.geometry.dim
            for i in self.electrolyte.ions:
                beta = hall_parameter(i.valence, i.diffusivity, Bmag, self.T)
                if gdim == 3:
                    out[i.name] = magneto_migration_flux(out[i.name], B, beta, xp)
                else:
                    out[i.name] = magneto_migration_flux_xz(out[i.name], B, beta, xp)
        return out

    def _closure_term(self, xp, r_ox, i0):
        """∫_Γ q·∇_Γ v dS with q = λ(|B|) r_out (n̂×B̂), r_out = (i0/(zF)) r_ox (the one-way exit rate)."""
        from femion.laws.lorentz import closure_surface_flux

        gdim = self.domain.mesh.geometry.dim
        n = ufl.FacetNormal(self.domain.mesh)("+")  # out of the oxide
        B = self.B["oxide"]("+")
        z = self.z_ex
        r_out = i0 / (z * FARADAY) * r_ox
        n3 = n if gdim == 3 else ufl.as_vector([n[0], 0.0, n[1]])
        q3 = closure_surface_flux(n3, B, r_out, self.lorentz.step_law, xp, z=z, **self.lorentz.step_params)
        q = q3 if gdim == 3 else ufl.as_vector([q3[0], q3[2]])
        gv = ufl.grad(self.v["w"])("+")
        grad_gamma = gv - ufl.dot(gv, n) * n
        self.closure_flux = q
        return ufl.inner(q, grad_gamma) * self.dS(GAMMA)

    def _old_expr(self, name, store):
        if name == "w":
            return self.theta_expr(store["w"])
        ion = name[2:]
        return self.electrolyte.ion(ion).concentration * ufl.exp(store[name])

    def _set_initial(self, electrolyte_initial: dict):
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
        th_mean = self.comm.allreduce(th_mean, op=MPI.SUM) / self.comm.size
        from femion.laws.kinetics import NUMPY

        U = float(self.oxide.open_circuit_potential(np.array(th_mean), NUMPY))
        if self._contact_values:
            phi0 = float(np.mean(self._contact_values))
            psi0 = self.f_RT * (phi0 - U)  # the film at rest under its contacts' mean potential
        elif self._top is not None:
            psi0 = self.f_RT * (self._top.potential - self._top.equilibrium_potential)
            phi0 = psi0 / self.f_RT + U
        else:
            phi0, psi0 = 0.0, -self.f_RT * U
        self.u["phi_e"].x.array[:] = phi0
        self.u["psi"].x.array[:] = psi0
        if "mu" in self.u:
            th = 1 / (1 + np.exp(-self.u["w"].x.array))
            self.u["mu"].x.array[:] = -self.f_RT * np.asarray(self.oxide.open_circuit_potential(th, NUMPY))
        for n in self.u_old:
            self.u_old[n].x.array[:] = self.u[n].x.array
            self.u_older[n].x.array[:] = self.u[n].x.array

    # ------------------------------------------------------------ stepping
    def step(self, dt: float, order: int = 1, dt_prev: float | None = None) -> int:
        """Advance by ``dt`` (s); BDF2 when ``order`` = 2 and a previous step exists.

        Returns Newton iterations; raises TransportSolveError (state restored) on failure.
        """
        use2 = order == 2 and self._have_older and dt_prev
        if use2:
            om = dt / dt_prev
            coeffs = ((1 + 2 * om) / (1 + om), -(1 + om), om**2 / (1 + om))
        else:
            coeffs = (1.0, -1.0, 0.0)
        for c, v in zip(self.a, coeffs):
            c.value = v
        self.dt.value = dt
        self.time.value = self.t + dt
        for g, func in self._dirichlet_funcs:
            g.interpolate(lambda x, f=func: f(x, self.t + dt))
        saved = {n: f.x.array.copy() for n, f in self.u.items()}
        # start Newton from a state that already satisfies the Dirichlet values, so the first
        # residual measures the physics, not the jump to the boundary data
        for bc, name in self._bc_field:
            if any(bc is a for a in self._active_bcs):
                bc.set(self.u[name].x.array)
        try:
            reason, its = self._newton()
            if reason <= 0:  # retry from the same start with backtracking on ‖F‖
                self._restore(saved)
                for bc, name in self._bc_field:
                    if any(bc is a for a in self._active_bcs):
                        bc.set(self.u[name].x.array)
                reason, more = self._newton(linesearch=True)
                its += more
        except (RuntimeError, PETSc.Error) as exc:  # PETSc error inside the solve
            self._restore(saved)
            raise TransportSolveError(f"PETSc error: {exc}") from None
        finite = all(np.isfinite(f.x.array).all() for f in self.u.values())
        finite = self.comm.allreduce(finite, op=MPI.LAND)
        if reason <= 0 or not finite:
            self._restore(saved)
            why = "non-finite values" if not finite else f"SNES reason {reason} after {its} iterations"
            raise TransportSolveError(f"transport step of {dt:.3g} s at t = {self.t:.6g} s failed: {why}")
        for n in self.u_old:
            self.u_older[n].x.array[:] = self.u_old[n].x.array
            self.u_old[n].x.array[:] = self.u[n].x.array
        self._have_older = True
        self.t += dt
        return its

    #: largest Newton change per iteration: log-concentrations and logit(θ) by 2 (a factor e²
    #: in c), ψ by 10 (0.26 V), φ_e by 0.5 V. Unclipped Newton on log variables overshoots
    #: when a concentration must rise by decades in a step, then creeps back one unit per step.
    MAX_UPDATE = {"w": 2.0, "psi": 10.0, "phi_e": 0.5, "mu": 10.0}
    MAX_UPDATE_LOG_C = 2.0
    STEP_TOLERANCE = 1e-10
    STALL_ITERATIONS = 6

    def _newton(self, linesearch: bool = False) -> tuple[int, int]:
        """Newton (MUMPS) with per-field update limits, optionally with backtracking on ‖F‖;
        returns (SNES-style reason, iterations)."""
        snes, prob = self.snes, self.problem
        x, b, A = prob.x, prob.b, prob.A
        funcs = [self.u[n] for n in self.names]
        dolfinx.fem.petsc.assign(funcs, x)
        x.ghostUpdate(addv=PETSc.InsertMode.INSERT, mode=PETSc.ScatterMode.FORWARD)
        ksp = snes.getKSP()
        dx = x.duplicate()
        sizes = [self.spaces[n].dofmap.index_map.size_local for n in self.names]
        offsets = np.concatenate([[0], np.cumsum(sizes)])
        limits = [self.MAX_UPDATE.get(n, self.MAX_UPDATE_LOG_C) for n in self.names]
        _, _, _, max_it = snes.getTolerances()
        reason, it = 0, 0
        snes.computeFunction(x, b)
        fnorm = b.norm()
        trial = x.duplicate()
        best, worse = fnorm, 0
        for it in range(max_it + 1):
            reason = self._converged(snes, it, (0.0, 0.0, fnorm))
            if reason != 0:
                break
            # backtracking that finds no new best residual in STALL_ITERATIONS creeps at λ = 1/64
            # and will not converge: give up early so the step is cut (plain Newton may climb
            # for a while before it converges, after a jump of the controls, so it runs on)
            best, worse = (fnorm, 0) if fnorm < best else (best, worse + 1)
            if linesearch and worse >= self.STALL_ITERATIONS:
                reason = PETSc.SNES.ConvergedReason.DIVERGED_MAX_IT
                break
            snes.computeJacobian(x, A, A)
            ksp.setOperators(A)
            ksp.solve(b, dx)
            if ksp.getConvergedReason() <= 0:
                reason = PETSc.SNES.ConvergedReason.DIVERGED_LINEAR_SOLVE
                break
            arr = dx.getArray()
            xarr = x.getArray()
            for k, lim in enumerate(limits):
                seg = arr[offsets[k]:offsets[k + 1]]
                if self.names[k] == "w":
                    seg[:] = self._logit_update(xarr[offsets[k]:offsets[k + 1]], seg, lim)
                else:
                    np.clip(seg, -lim, lim, out=seg)
            # backtracking: accept the first of 1, 1/2, ..., 1/64 of the step that lowers ‖F‖
            # (or the last one tried); near the solution the full step is always taken
            lam = 1.0
            while linesearch:
                x.copy(trial)
                trial.axpy(-lam, dx)
                self._floor(trial, offsets)
                trial.ghostUpdate(addv=PETSc.InsertMode.INSERT, mode=PETSc.ScatterMode.FORWARD)
                snes.computeFunction(trial, b)
                new = b.norm()
                if new <= (1 - 1e-4 * lam) * fnorm or lam <= 1 / 64 or new <= 1e-12 * self.volume:
                    break
                lam *= 0.5
            if not linesearch:
                x.copy(trial)
                trial.axpy(-1.0, dx)
                self._floor(trial, offsets)
                trial.ghostUpdate(addv=PETSc.InsertMode.INSERT, mode=PETSc.ScatterMode.FORWARD)
                snes.computeFunction(trial, b)
                new = b.norm()
            # the change itself below 1e-10 (in log-concentration, logit θ, ψ = Fφ/RT, φ_e in V;
            # after the bounds): converged, whatever round-off floor the residual has here
            step = self.comm.allreduce(float(np.abs(trial.getArray() - x.getArray()).max(initial=0.0)), op=MPI.MAX)
            trial.copy(x)
            fnorm = new
            if step < self.STEP_TOLERANCE:
                reason, it = PETSc.SNES.ConvergedReason.CONVERGED_SNORM_RELATIVE, it + 1
                break
        dolfinx.fem.petsc.assign(x, funcs)
        for f in funcs:
            f.x.scatter_forward()
        dx.destroy()
        trial.destroy()
        return reason, it

    #: Bounds of logit θ and of ln(c/c_ref): θ ≥ 1e-26, 1 − θ ≥ 1e-13 (1 − θ must stay
    #: representable beside θ ≈ 1 in double precision), c ≥ 1e-26 c_ref. Under a drive of volts a
    #: depleted spot empties in finite time (the exit rate is first order in θ, times
    #: exp(α_a F η/RT)) and implicit steps would carry its logit to −∞; 1e-26 of the capacity
    #: is ~1e-11 ions in a 1 mm² × 500 nm cell, so the bound changes no total measurably
    #: (the conservation error in the summary includes it).
    LOGIT_BOUNDS = (-25.0, 25.0)
    RESIDUAL_OCCUPANCY = 1e-9
    LOG_C_MIN = -60.0

    @staticmethod
    def _logit_update(w, dw, lim):
        """The Newton change of logit θ taken in θ: θ_new = θ − θ(1−θ)·dw (the same linear step),
        mapped back to w where 0 < θ_new < 1, no more than ``lim`` down; elsewhere dw clipped to
        ±``lim``. A node filling from near-empty needs Δw of tens, which clipped steps in w take
        one ``lim`` per iteration; its linear step in θ lands there at once."""
        theta = 1.0 / (1.0 + np.exp(-w))
        new = theta - theta * (1.0 - theta) * dw
        clipped = np.clip(dw, -lim, lim)
        ok = (new > 0.0) & (new < 1.0) & (dw < 0.0)  # rises only: falls keep the clipped step
        out = clipped.copy()
        w_new = np.log(new[ok]) - np.log1p(-new[ok])
        out[ok] = np.maximum(w[ok] - w_new, -30.0)
        out[ok] = np.minimum(out[ok], clipped[ok])  # never a smaller rise than the clipped step
        return out

    def _floor(self, vec, offsets) -> None:
        arr = vec.getArray()
        for k, n in enumerate(self.names):
            seg = arr[offsets[k]:offsets[k + 1]]
            if n == "w":
                np.clip(seg, *self.LOGIT_BOUNDS, out=seg)
            elif n.startswith("u_"):
                np.maximum(seg, self.LOG_C_MIN, out=seg)

    def _restore(self, saved):
        for n, arr in saved.items():
            self.u[n].x.array[:] = arr

    # ------------------------------------------------------------ state
    def snapshot(self) -> dict:
        """The full state (copies): unknowns, BDF history and time. :meth:`restore` puts it back."""
        return {"t": self.t, "have_older": self._have_older,
                "u": {n: f.x.array.copy() for n, f in self.u.items()},
                "u_old": {n: f.x.array.copy() for n, f in self.u_old.items()},
                "u_older": {n: f.x.array.copy() for n, f in self.u_older.items()}}

    def restore(self, snapshot: dict) -> None:
        """Put back a state taken by :meth:`snapshot`."""
        self.t, self._have_older = snapshot["t"], snapshot["have_older"]
        for key in ("u", "u_old", "u_older"):
            for n, f in getattr(self, key).items():
                f.x.array[:] = snapshot[key][n]

    def restart_at_first_order(self) -> None:
        """The next step is BDF1 (the controls jumped: the older level no longer applies)."""
        self._have_older = False

    def reset_history(self) -> None:
        """Make the present state the whole history (a state set by hand starts from rest)."""
        for n in self.u_old:
            self.u_old[n].x.array[:] = self.u[n].x.array
            self.u_older[n].x.array[:] = self.u[n].x.array
        self._have_older = False

    def _activate(self) -> None:
        """Use the nonlinear problem whose Dirichlet set matches the contacts' state (made once each)."""
        flags = self.contacts_connected
        exchange = float(self.exchange_on.value) > 0
        top = self.j_top is not None and float(self.top_connected.value) > 0
        if exchange:
            # a floating film under an open top electrode: φ_e and φ_l may shift together without
            # changing any η, so the electrolyte potential is referenced at one node
            held = {name for bc, name in self._bc_field if any(bc is b for b in self.bcs)}
            pinned = ("psi",) if not any(flags) and not top and "psi" not in held else ()
        else:
            pinned = tuple(n for n, skip in (("psi", top), ("phi_e", any(flags))) if not skip)
        for name in pinned:  # hold the level the field has now
            self._pins[name][1].x.array[:] = self.u[name].x.array
        key = (flags, pinned)
        if key not in self._problems:
            off = [c for c, on in zip(self._contact_bcs, flags) if not on]
            bcs = [bc for bc in self.bcs if all(bc is not c for c in off)] + [self._pins[n][0] for n in pinned]
            problem = dolfinx.fem.petsc.NonlinearProblem(
                ufl.extract_blocks(self.residual),
                [self.u[n] for n in self.names],
                bcs=bcs,
                kind="mpi",
                entity_maps=self.entity_maps,
                petsc_options_prefix=f"{self._prefix}{len(self._problems)}_",
                petsc_options={"ksp_type": "preonly", "pc_type": "lu", "pc_factor_mat_solver_type": "mumps"},
            )
            problem.solver.setTolerances(rtol=1e-13, atol=1e-14 * self.volume, stol=0.0, max_it=25)
            problem.solver.setConvergenceTest(self._converged)
            self._problems[key] = (problem, bcs)
        self.problem, self._active_bcs = self._problems[key]
        self.snes = self.problem.solver
        for name in pinned:
            if not any(b is self._pins[name][0] for b, _ in self._bc_field):
                self._bc_field.append((self._pins[name][0], name))

    # ------------------------------------------------------------ controls
    def set_contacts_connected(self, connected: bool | Sequence[bool]) -> None:
        """Connect the electron contacts (drive on) or leave the conductor floating (drive off):
        one flag for all, or one per contact in the order they were given."""
        n = len(self._contact_bcs)
        flags = (bool(connected),) * n if np.ndim(connected) == 0 else tuple(bool(c) for c in connected)
        if len(flags) != n:
            raise ValueError(f"expected {n} contact flags, got {len(flags)}")
        self.contacts_connected = flags
        self._activate()

    def set_contact_potentials(self, values: Sequence[float]) -> None:
        """New potentials (V) of the electron contacts, in the order they were given."""
        if len(values) != len(self.contact_potentials):
            raise ValueError(f"expected {len(self.contact_potentials)} contact potentials, got {len(values)}")
        for c, v in zip(self.contact_potentials, values):
            c.value = v

    def set_top_potential(self, value: float | Callable[[np.ndarray], np.ndarray]) -> None:
        """Potential φ_top (V) of the counter electrode on the electrolyte's top face: a number, or
        x → φ_top(x) (a driven top sheet). Connects the electrode."""
        if self.j_top is None:
            raise ValueError("this problem has no counter electrode")
        if callable(value):
            self.top_potential.interpolate(lambda x: np.asarray(value(x), dtype=float))
        else:
            self.top_potential.x.array[:] = value
        self.top_potential.x.scatter_forward()
        self.top_connected.value = 1.0
        self._activate()

    def set_top_connected(self, connected: bool) -> None:
        """Connect the counter electrode to its source, or leave it open (no current at all)."""
        if self.j_top is None:
            if connected:
                raise ValueError("this problem has no counter electrode")
            return
        self.top_connected.value = 1.0 if connected else 0.0
        self._activate()

    def set_magnetic_field(self, field: Callable[[np.ndarray], np.ndarray] | dict) -> None:
        """New B (T): x → B(x) ((3, N)), or {"oxide": array, "electrolyte": array} of nodal 3-vectors."""
        for key, B in self.B.items():
            if callable(field):
                B.interpolate(lambda x: np.asarray(field(x), dtype=float).reshape(3, -1))
            else:
                B.x.array[:] = field[key]
            B.x.scatter_forward()
        bmax = max(float(np.linalg.norm(self.B[k].x.array.reshape(-1, 3), axis=1).max(initial=0.0)) for k in self.B)
        self.max_B = max(self.max_B, self.comm.allreduce(bmax, op=MPI.MAX))
        self.max_hall_parameter = max(abs(i.valence) * i.diffusivity for i in self.electrolyte.ions) * FARADAY * \
            self.max_B / (GAS_CONSTANT * self.T)

    def set_exchange(self, on: bool) -> None:
        """Switch the oxide|electrolyte exchange on (electrolyte coated) or off (removed)."""
        self.exchange_on.value = 1.0 if on else 0.0
        self._activate()

    # ------------------------------------------------------------ diagnostics
    def integrate(self, expr, where: str, mass: bool = False) -> float:
        """∫ expr over the oxide ("oxide"), electrolyte ("electrolyte") or Γ ("interface");
        ``mass=True`` uses the (lumped) quadrature of the time-derivative terms, under which the
        species totals are conserved exactly."""
        dx = self.dx_mass if mass else self.dx
        measure = {"oxide": dx(OX), "electrolyte": dx(EL), "interface": self.dS(GAMMA)}[where]
        form = dolfinx.fem.form(expr * measure, entity_maps=self.entity_maps)
        return self.comm.allreduce(dolfinx.fem.assemble_scalar(form), op=MPI.SUM)

    def totals(self) -> dict[str, float]:
        """Amount (mol, or mol per metre of width in a 2D section) of each species in each domain."""
        conc = self.concentration_exprs(self.u)
        theta = self.theta_expr(self.u["w"])
        out = {"oxide": self.integrate(self.oxide.c_max * theta, "oxide", mass=True)}
        for name, c in conc.items():
            out[name] = self.integrate(c, "electrolyte", mass=True)
        return out

    def exchange_current(self) -> float:
        """Total faradaic current into the oxide, zF∫j dΓ (A, or A/m in a section)."""
        return self.integrate(self.z_ex * FARADAY * self.j, "interface")
