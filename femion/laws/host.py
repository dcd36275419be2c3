"""Host (oxide) thermodynamics and solid diffusivity (physics.md §2.3).

Filling fraction θ = c_s/c_max ∈ (0, 1). Chemical potential μ(θ) (J/mol) of the inserted
ion of valence z (Li⁺: 1, Zn²⁺: 2), relative to the reference state fixed by U0, and
open-circuit potential

    U(θ) = U0 − μ(θ)/(zF)      (V, per electron),

so U falls as the film fills. Models, chosen by name:

- ``ideal``:            μ = RT ln(θ/(1 − θ))
- ``regular_solution``: μ = RT ln(θ/(1 − θ)) + Ω(1 − 2θ)   (Ω in J/mol; spinodal iff Ω > 2RT)
- ``tabulated``:        U(θ) piecewise linear through (θ_k, U_k), μ = F(U0 − U)

Functions take ``xp`` (:data:`femion.laws.kinetics.NUMPY` or :func:`femion.laws.kinetics.ufl_math`),
so the same code gives numbers and UFL expressions.
"""

from __future__ import annotations

import numpy as np

from femion.constants import FARADAY as F
from femion.constants import GAS_CONSTANT as R
from femion.laws.kinetics import NUMPY
from femion.laws.registry import Law, choose, registry

__all__ = [
    "DIFFUSIVITY_LAWS",
    "MODELS",
    "HostThermodynamics",
    "constant",
    "diffusivity",
    "lattice_gas",
    "tabulated_potential",
    "thermodynamic_factor",
    "thickness_change",
    "validate_table",
]

MODELS = ("ideal", "regular_solution", "tabulated")


def validate_table(theta_points, U_points) -> tuple[np.ndarray, np.ndarray]:
    """Return the table as float arrays, or raise ValueError naming what is wrong.

    Requires ≥ 2 points, equal lengths, finite values, θ strictly increasing in (0, 1).
    """
    th = np.asarray(theta_points, dtype=float).ravel()
    U = np.asarray(U_points, dtype=float).ravel()
    if th.size != U.size:
        raise ValueError(f"table lengths differ: {th.size} theta points, {U.size} U points")
    if th.size < 2:
        raise ValueError(f"table needs at least 2 points, got {th.size}")
    if not (np.all(np.isfinite(th)) and np.all(np.isfinite(U))):
        raise ValueError("table contains non-finite values")
    if np.any(th <= 0.0) or np.any(th >= 1.0):
        bad = th[(th <= 0.0) | (th >= 1.0)]
        raise ValueError(f"table theta must lie in (0, 1), got {bad.tolist()}")
    if np.any(np.diff(th) <= 0.0):
        i = int(np.argmax(np.diff(th) <= 0.0))
        raise ValueError(
            f"table theta must be strictly increasing: theta[{i}]={th[i]} >= theta[{i + 1}]={th[i + 1]}"
        )
    return th, U


def tabulated_potential(theta, theta_points, U_points, xp=NUMPY):
    """U(θ) piecewise linear through the table (V); constant U_0 / U_{n−1} beyond the ends.

    numpy: np.interp. UFL: nested conditionals, segment k (θ_k ≤ θ < θ_{k+1}) gives
    U_k + (U_{k+1} − U_k)(θ − θ_k)/(θ_{k+1} − θ_k); exact at the nodes.
    """
    th, U = validate_table(theta_points, U_points)
    if xp is NUMPY:
        return np.interp(theta, th, U)
    out = float(U[-1]) + 0.0 * theta
    for k in range(th.size - 2, -1, -1):
        slope = float((U[k + 1] - U[k]) / (th[k + 1] - th[k]))
        seg = float(U[k]) + slope * (theta - float(th[k]))
        out = xp.where(theta < float(th[k + 1]), seg, out)
    return xp.where(theta < float(th[0]), float(U[0]) + 0.0 * theta, out)


class HostThermodynamics:
    """μ(θ), U(θ) and chemical capacitance of the oxide.

    model: one of :data:`MODELS`; U0: potential at μ = 0 (V; θ = 0.5 for ideal and
    regular solution); T: temperature (K), a number or a uniform UFL value with a ``value``
    (a dolfinx Constant: UFL forms then follow it, numpy calls read its value); omega:
    regular-solution Ω (J/mol); table: (theta_points, U_points) for ``tabulated`` (U0 then only
    offsets μ); valence: z of the inserted ion (each takes z electrons from the host).
    """

    def __init__(self, model: str, U0: float, T, omega: float = 0.0, table=None, valence: int = 1):
        if model not in MODELS:
            raise ValueError(f"unknown host model {model!r}; allowed: {', '.join(MODELS)}")
        if valence < 1:
            raise ValueError(f"valence of the inserted ion must be a positive integer, got {valence}")
        self.model, self.U0, self.omega = model, float(U0), float(omega)
        self.T = T if hasattr(T, "value") else float(T)
        if self.temperature(NUMPY) <= 0:
            raise ValueError(f"temperature must be positive, got T={self.temperature(NUMPY)}")
        self.valence = int(valence)
        self.table = None
        if model == "tabulated":
            if table is None:
                raise ValueError("model 'tabulated' needs table=(theta_points, U_points)")
            self.table = validate_table(*table)
        elif model == "ideal" and omega != 0.0:
            raise ValueError(f"model 'ideal' takes no omega (got {omega}); use 'regular_solution'")

    def _points(self) -> tuple[np.ndarray, np.ndarray]:
        """The (θ, U) table of a ``tabulated`` host."""
        if self.table is None:
            raise ValueError(f"model {self.model!r} has no table")
        return self.table

    def temperature(self, xp=NUMPY):
        """T (K): the number, or in UFL (``xp`` not numpy) the Constant itself."""
        if xp is NUMPY and hasattr(self.T, "value"):
            return float(self.T.value)
        return self.T

    def chemical_potential(self, theta, xp=NUMPY):
        """μ(θ) (J/mol)."""
        if self.model == "tabulated":
            return self.valence * F * (self.U0 - tabulated_potential(theta, *self._points(), xp=xp))
        mu = R * self.temperature(xp) * xp.log(theta / (1.0 - theta))
        if self.model == "regular_solution":
            mu = mu + self.omega * (1.0 - 2.0 * theta)
        return mu

    def open_circuit_potential(self, theta, xp=NUMPY):
        """U(θ) = U0 − μ(θ)/(zF) (V)."""
        if self.model == "tabulated":
            return tabulated_potential(theta, *self._points(), xp=xp)
        return self.U0 - self.chemical_potential(theta, xp=xp) / (self.valence * F)

    def dmu_dtheta(self, theta):
        """dμ/dθ (J/mol), numpy: RT/(θ(1−θ)) − 2Ω, or −zF × the table's segment slope."""
        return -self.valence * F * self.dU_dtheta(theta)

    def dU_dtheta(self, theta):
        """dU/dθ (V), numpy. Tabulated: slope of the segment holding θ (0 beyond the ends;
        at a node, the segment to its right)."""
        theta = np.asarray(theta, dtype=float)
        if self.model == "tabulated":
            th, U = self._points()
            slopes = np.concatenate([[0.0], np.diff(U) / np.diff(th), [0.0]])
            return slopes[np.searchsorted(th, theta, side="right")]
        dmu = R * self.temperature() / (theta * (1.0 - theta)) - 2.0 * self.omega
        return -dmu / (self.valence * F)

    def chemical_capacitance_per_volume(self, theta, c_max):
        """C_V = zF c_max dθ/d(−U) = z²F² c_max/(dμ/dθ)   (F m⁻³); c_max in mol m⁻³ of ions.

        Ideal: z²F² c_max θ(1−θ)/(RT). Negative inside a spinodal (dμ/dθ < 0).
        Areal capacitance of a film of thickness t: C_A = C_V·t (F m⁻²).
        """
        z = self.valence
        return z * z * F * F * c_max / self.dmu_dtheta(theta)

    def chemical_capacitance_per_area(self, theta, c_max, thickness):
        """C_A = C_V · t   (F m⁻²); thickness t in m."""
        return self.chemical_capacitance_per_volume(theta, c_max) * thickness


# --------------------------------------------------------------------------- diffusivity


def constant(theta, *, xp=NUMPY, D0: float):
    """D_s = D0   (m² s⁻¹)."""
    return D0 + 0.0 * theta


def lattice_gas(theta, *, xp=NUMPY, D0: float):
    """D_s = D0 (1 − θ)   (m² s⁻¹): hops blocked by occupied sites."""
    return D0 * (1.0 - theta)


def thermodynamic_factor(theta, *, xp=NUMPY, D0: float, omega: float, T: float):
    """D_s = D0 (1 − θ) θ/(RT) · dμ/dθ = D0 [1 − 2Ωθ(1 − θ)/(RT)]   (m² s⁻¹).

    Regular-solution μ (Ω in J/mol, T in K); negative inside the spinodal (uphill
    diffusion: needs a gradient-energy term to be well posed).
    """
    return D0 * (1.0 - 2.0 * omega * theta * (1.0 - theta) / (R * T))


#: the solid diffusivity laws by name, each with its parameters (D0 in m² s⁻¹, omega in J/mol, T in K)
DIFFUSIVITY_LAWS = registry(
    Law("constant", constant, ("D0",)),
    Law("lattice_gas", lattice_gas, ("D0",)),
    Law("thermodynamic_factor", thermodynamic_factor, ("D0", "omega", "T")),
)


def diffusivity(law: str, theta, *, xp=NUMPY, **params):
    """D_s(θ) (m² s⁻¹) of the law named ``law`` (one of :data:`DIFFUSIVITY_LAWS`)."""
    return choose(DIFFUSIVITY_LAWS, law, "diffusivity law")(theta, xp=xp, **params)


# --------------------------------------------------------------------------- chemical expansion


def thickness_change(theta_mean, *, thickness: float, c_max: float, molar_volume: float,
                     chemical_expansion: float):
    """Δh = β·x·h (m): a film's thickness change on taking up ions (Vegard-type expansion).

    x = θ̄·c_max·V_m is the number of inserted ions per formula unit of the host (θ̄ the filling
    averaged over the thickness, c_max in mol m⁻³ of ions, V_m = M/ρ the host's molar volume in
    m³ mol⁻¹), β (``chemical_expansion``, 1) the relative thickness change per ion per formula unit
    and h (``thickness``, m) the as-deposited thickness. A film clamped in-plane by its substrate
    takes its whole volume change in its thickness, so β is the relative volume change per x.
    """
    x = np.asarray(theta_mean, dtype=float) * c_max * molar_volume
    return chemical_expansion * x * thickness
