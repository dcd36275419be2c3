"""The electrolyte's conductivity in the dilute-solution (Nernst–Planck) model, and the effective
ionic diffusivities that make it equal the measured one (physics.md §4).

Nernst–Planck with Nernst–Einstein mobilities gives a uniform electrolyte the conductivity
κ_NE = F²/(RT) Σ z_i² D_i c_i. With the ions' tracer diffusivities this overshoots a concentrated
salt's measured κ (1 M LiClO4/PC: 2.5 S/m against 0.56 S/m) because ion pairs carry no current.
femion keeps the ions' concentrations (paired Li is still there to insert: pairs exchange in
nanoseconds) and uses effective diffusivities D_i,eff = D_i κ/κ_NE: the measured κ, the
transference numbers t_i = z_i² D_i c_i/Σ of the tracer values. The price is the salt's diffusion,
D_amb,eff = D_amb κ/κ_NE, lower than measured by the same factor (neutral pairs also carry salt);
the ohmic drop that drives the paper's mechanism is what it gets right.
"""

from __future__ import annotations

from collections.abc import Sequence

from femion.constants import FARADAY as F
from femion.constants import GAS_CONSTANT as R

#: the temperature at which the library's conductivities are stated (25 °C)
REFERENCE_TEMPERATURE = 298.15


def ionic_conductivity(valences: Sequence[int], diffusivities: Sequence[float], concentrations: Sequence[float],
                       T: float = REFERENCE_TEMPERATURE) -> float:
    """κ = F²/(RT) Σ z_i² D_i c_i   (S/m): the conductivity Nernst–Planck transport gives a uniform
    electrolyte (D_i in m²/s, c_i in mol/m³, T in K)."""
    return F * F / (R * T) * sum(z * z * D * c for z, D, c in zip(valences, diffusivities, concentrations, strict=True))


def effective_diffusivities(valences: Sequence[int], diffusivities: Sequence[float], concentrations: Sequence[float],
                            conductivity: float, T: float = REFERENCE_TEMPERATURE) -> list[float]:
    """D_i,eff = D_i κ/κ_NE (m²/s): the diffusivities scaled by one factor so that
    :func:`ionic_conductivity` equals ``conductivity`` κ (S/m) at T, the ratios (transference
    numbers) kept."""
    if conductivity <= 0:
        raise ValueError(f"conductivity must be positive, got {conductivity} S/m")
    factor = conductivity / ionic_conductivity(valences, diffusivities, concentrations, T)
    return [D * factor for D in diffusivities]
