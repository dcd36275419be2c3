"""Lorentz terms (physics.md §2.6): switchable, each returns its numpy or UFL term.

a. Bulk magneto-migration. Each ion's drift obeys (RT/D_i) v_i = −∇μ̃_i + z_i F v_i × B.
   With N⁰ = c_i v⁰ the flux at B = 0 and β = z_i F D_i |B|/(RT), b̂ = B/|B|, this is
   N − β N × b̂ = N⁰, solved by
       N = [N⁰ + β N⁰ × b̂ + β² (N⁰·b̂) b̂] / (1 + β²)
   (insert N = a N⁰ + b N⁰×b̂ + c (N⁰·b̂)b̂ and use (N⁰×b̂)×b̂ = (N⁰·b̂)b̂ − N⁰:
   a = 1/(1+β²), b = βa, c = β²a). Here β ~ 1e-14: a diagnostic.
b. The paper's "current-driving" closure: an ion leaving the oxide along n̂ is bent
   along t̂ = n̂ × B̂ before re-entering: a tangential surface flux on Γ
       q = sign(z) λ(|B|) r_out t̂      (mol m⁻¹ s⁻¹),
   entering the oxide balance as −∇_Γ·q (implemented by the transport module).

Vectors are 3-vectors: numpy arrays of shape (..., 3) or UFL vectors; ``xp`` is
:data:`femion.laws.kinetics.NUMPY` or :func:`femion.laws.kinetics.ufl_math`.
"""

from __future__ import annotations

from femion.constants import FARADAY as F
from femion.constants import GAS_CONSTANT as R
from femion.laws.kinetics import NUMPY
from femion.laws.registry import Law, choose, registry

__all__ = [
    "STEP_LAWS",
    "closure_surface_flux",
    "constant",
    "hall_parameter",
    "magneto_migration_flux",
    "magneto_migration_flux_xz",
    "proportional",
    "saturating",
    "step_length",
]

#: |B| floor (T) in b̂ = B/√(|B|² + B_floor²): keeps UFL finite where B = 0 (then the
#: terms vanish anyway); negligible beside any field of interest (~1e-6 T).
B_FLOOR = 1e-30


def hall_parameter(z, D, B_magnitude, T):
    """β = z F D |B| / (RT)   (dimensionless, signed with the valence z).

    D in m² s⁻¹, |B| in T, T in K; |β| = |z| F D |B|/(RT) is the ratio of Lorentz to
    friction force on a drifting ion. For D ~ 1e-10 m²/s, |B| ~ 6 µT at 298 K:
    β ~ 2e-14.
    """
    return z * F * D * B_magnitude / (R * T)


def _unit(B, xp):
    return xp.scale(1.0 / xp.sqrt(xp.dot(B, B) + B_FLOOR**2), B)


def magneto_migration_flux(N0, B, beta, xp=NUMPY):
    """N = [N⁰ + β N⁰ × b̂ + β² (N⁰·b̂) b̂] / (1 + β²)   (units of N⁰).

    N0: flux without field (3-vector), B: magnetic flux density (3-vector, T; only its
    direction b̂ is used), beta: signed Hall parameter (:func:`hall_parameter`).
    """
    b = _unit(B, xp)
    num = N0 + xp.scale(beta, xp.cross(N0, b)) + xp.scale(beta * beta * xp.dot(N0, b), b)
    return xp.scale(1.0 / (1.0 + beta * beta), num)


def magneto_migration_flux_xz(N0_xz, B, beta, xp=NUMPY):
    """In-plane (x, z) part of :func:`magneto_migration_flux` for a 2D x–z section.

    The section is taken invariant along y, so the flux is (N_x, 0, N_z) before the
    field; B stays a full 3-vector (B_y is the in-section field of a current along x).
    The corrected flux gains a y component (e.g. β N⁰ × b̂ for B in the plane), which
    has zero divergence under ∂/∂y = 0 and so is dropped: returns (N_x, N_z).
    """
    nx, nz = xp.component(N0_xz, 0), xp.component(N0_xz, 1)
    N0 = xp.vector([nx, 0.0 * nx, nz])
    N = magneto_migration_flux(N0, B, beta, xp=xp)
    return xp.vector([xp.component(N, 0), xp.component(N, 2)])


# --------------------------------------------------------------------------- step laws


def constant(B_magnitude, *, xp=NUMPY, lam0: float):
    """λ = λ0   (m): step length independent of the field."""
    return lam0 + 0.0 * B_magnitude


def proportional(B_magnitude, *, xp=NUMPY, lam_per_tesla: float):
    """λ = c |B|   (m); c = lam_per_tesla in m T⁻¹."""
    return lam_per_tesla * B_magnitude


def saturating(B_magnitude, *, xp=NUMPY, lam_max: float, B_half: float):
    """λ = λ_max |B| / (|B| + B_half)   (m); λ_max in m, B_half (T) gives λ = λ_max/2."""
    return lam_max * B_magnitude / (B_magnitude + B_half)


#: the closure's step-length laws by name, each with its parameters (lengths in m, fields in T)
STEP_LAWS = registry(
    Law("constant", constant, ("lam0",)),
    Law("proportional", proportional, ("lam_per_tesla",)),
    Law("saturating", saturating, ("lam_max", "B_half")),
)


def step_length(law: str, B_magnitude, *, xp=NUMPY, **params):
    """λ(|B|) (m) of the step law named ``law`` (one of :data:`STEP_LAWS`)."""
    return choose(STEP_LAWS, law, "step law")(B_magnitude, xp=xp, **params)


def closure_surface_flux(n, B, r_out, law: str, xp=NUMPY, *, z: int = 1, **params):
    """Tangential surface flux of the current-driving closure on Γ (3-vector).

    q = sign(z) λ(|B|) r_out (n̂ × B̂)      (mol m⁻¹ s⁻¹)

    n: unit normal out of the oxide (into the electrolyte); B: field on Γ (T);
    r_out: one-way exit flux density (mol m⁻² s⁻¹); law/params: step law
    (:data:`STEP_LAWS`); z: valence (a cation is bent along +n̂ × B̂, an anion
    against). |n̂ × B̂| = sin∠(n, B): only the tangential field bends an exiting ion.
    q·n̂ = 0 and q·B = 0. The oxide balance gains −∇_Γ·q; with q tangential and
    q = 0 on ∂Γ, ∫_Γ ∇_Γ·q dΓ = ∮_∂Γ q·m ds = 0, so Li is conserved.
    Sign check (seed 000 Fig. 1): n̂ = +z, B̂ = +y (into an x–z page) → t̂ = −x, left.
    """
    Bmag = xp.sqrt(xp.dot(B, B))
    lam = step_length(law, Bmag, xp=xp, **params)
    sign = 1.0 if z > 0 else -1.0
    return xp.scale(sign * lam * r_out, xp.cross(n, _unit(B, xp)))
