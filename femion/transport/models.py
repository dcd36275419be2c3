"""What the transport solves, as plain data (SI units): coupled oxide intercalation, electrolyte
Nernst–Planck and interfacial exchange.

Unknowns (all P1, each on its own submesh of the stack's oxide or electrolyte; fields.py):

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

Temperature T (K) is a dolfinx Constant in every form (RT/F, Arrhenius, host law).
Time: BDF1 or variable-step BDF2, every equation multiplied by Δt so all blocks have the scale
of a concentration change. Species totals are conserved to solver tolerance by construction
(the interface terms cancel between the domains).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from femion.laws.kinetics import arrhenius


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
    #: Arrhenius ionic diffusivities D_i(T) = D_i exp[−E_a/R (1/T − 1/T_ref)] (J/mol; 0: constant)
    activation_energy: float = 0.0
    reference_temperature: float = 298.15  # K, where the ions' D_i hold

    def diffusivity(self, ion: Ion, T, xp):
        """D_i(T) (m²/s): the ion's D at T (a number or UFL) by the Arrhenius law of the electrolyte."""
        if self.activation_energy == 0.0:
            return ion.diffusivity
        return arrhenius(ion.diffusivity, self.activation_energy, T, self.reference_temperature, xp=xp)

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
    """Interfacial rate law by name (see femion.laws.kinetics), i0_ref (A/m²) at c_ref, θ_ref and
    the reference temperature.

    Temperature enters the forms through the problem's temperature Constant T: i0_ref(T) =
    i0_ref exp[−(E_a/R)(1/T − 1/T_ref)] (``activation_energy`` E_a, J/mol), and for Marcus/MHC the
    reorganization λ̃ = λ/(k_B T) when ``reorganization_energy`` λ (J) is given (else ``params``
    holds λ̃ itself).
    """

    law: str = "butler_volmer"
    exchange_current_density: float = 1.0
    alpha_a: float = 0.5
    alpha_c: float = 0.5
    theta_ref: float = 0.5
    params: dict = field(default_factory=dict)
    activation_energy: float = 0.0  # J/mol
    reference_temperature: float = 298.15  # K
    reorganization_energy: float | None = None  # J


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
