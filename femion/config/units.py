"""Units at the edges: parse quantities written with units, hand out SI floats.

Case files write every dimensional value with its unit (``200 nm``, ``0.2 A``,
``8 ohm/sq``). :func:`to_si` parses such a value with pint, checks its
dimension and returns the magnitude in SI base units. Inside femion every
number is SI; units are converted only here.
"""

from __future__ import annotations

import math
from functools import cache

import pint

ureg = pint.UnitRegistry()
# "ohm/sq" (ohms per square) is how sheet resistance is quoted; a square is
# dimensionless, so ohm/sq has the dimension of a resistance.
ureg.define("square = 1 = sq")

#: The dimensions femion accepts, by name, with the SI unit each is stored in.
DIMENSIONS: dict[str, tuple[str, str]] = {
    "length": ("[length]", "m"),
    "current": ("[current]", "A"),
    "voltage": ("[electric_potential]", "V"),
    "sheet_resistance": ("[resistance]", "ohm/sq"),
    "resistivity": ("[resistance] * [length]", "ohm*m"),
    "conductivity": ("1 / [resistance] / [length]", "S/m"),
    "magnetic_flux_density": ("[magnetic_field]", "T"),
    "time": ("[time]", "s"),
    "temperature": ("[temperature]", "K"),
    "diffusivity": ("[length] ** 2 / [time]", "m**2/s"),
    "concentration": ("[substance] / [length] ** 3", "mol/m**3"),
    "density": ("[mass] / [length] ** 3", "kg/m**3"),
    "current_density": ("[current] / [length] ** 2", "A/m**2"),
    "molar_energy": ("[energy] / [substance]", "J/mol"),
    "energy": ("[energy]", "J"),
    "length_per_tesla": ("[length] / [magnetic_field]", "m/T"),
    "gradient_energy": ("[energy] * [length] ** 2 / [substance]", "J*m**2/mol"),
    "areal_capacitance": ("[capacitance] / [length] ** 2", "F/m**2"),
    "coloration_efficiency": ("[length] ** 2 / [current] / [time]", "m**2/C"),
    "heat_transfer_coefficient": ("[power] / [length] ** 2 / [temperature]", "W/(m**2*K)"),
    "dimensionless": ("", ""),
}


class UnitError(ValueError):
    """A value has no unit, an unknown unit, or the wrong dimension."""


@cache
def _dimensionality(kind: str):
    expr = DIMENSIONS[kind][0]
    return ureg.get_dimensionality(expr) if expr else ureg.dimensionless.dimensionality


def to_si(value: object, kind: str) -> float:
    """Return ``value`` (e.g. ``"200 nm"``) in the SI unit of ``kind`` as a float.

    A bare number is accepted only for dimensionless kinds: everything else
    must say its unit, since a silent default unit is how 200 nm becomes 200 m.
    NaN and infinity (also by overflow, '1e400 s') are refused.
    """
    if kind not in DIMENSIONS:  # programming error, not user input
        raise KeyError(kind)
    si_unit = DIMENSIONS[kind][1]
    if isinstance(value, bool):
        raise UnitError(f"expected a {kind.replace('_', ' ')} with a unit, got {value!r}")
    if isinstance(value, (int, float)):
        if kind == "dimensionless":
            return _finite(float(value), value)
        raise UnitError(
            f"missing unit: write e.g. '{value} {si_unit}' (a {kind.replace('_', ' ')})"
        )
    if not isinstance(value, str):
        raise UnitError(f"expected a quantity string like '1 {si_unit}', got {value!r}")
    try:
        q = ureg.Quantity(value.strip())
    except Exception as exc:  # pint raises several types for bad input
        raise UnitError(f"cannot read {value!r} as a quantity ({exc.__class__.__name__})") from None
    if not isinstance(q, pint.Quantity):
        q = ureg.Quantity(q)
    if kind != "dimensionless" and q.unitless:
        raise UnitError(f"missing unit in {value!r}: write e.g. '{value} {si_unit}'")
    if q.dimensionality != _dimensionality(kind):
        raise UnitError(
            f"{value!r} is not a {kind.replace('_', ' ')} (expected units like {si_unit or '1'}, "
            f"got dimension {q.dimensionality})"
        )
    return _finite(float(q.to(si_unit).magnitude) if si_unit else float(q.to("").magnitude), value)


def _finite(v: float, value: object) -> float:
    if not math.isfinite(v):
        raise UnitError(f"must be a finite number (got {value!r})")
    return v


def format_si(value: float, kind: str) -> str:
    """``0.0002, "length"`` → ``"0.0002 m"``: the resolved case file's spelling."""
    unit = DIMENSIONS[kind][1]
    return f"{value:.12g} {unit}".strip()
