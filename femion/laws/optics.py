"""Optics of the electrochromic film: inserted charge → optical density → transmittance.

Inserting Li⁺ (with an electron from the ITO beneath) into WO3 makes the film blue (LixWO3).
The textbook electrochromic relation (Granqvist 1995) ties the change of optical density to the
inserted charge per unit area through the coloration efficiency CE:

    Q_A = F · c_max · t · (θ̄ − θ_b)            inserted charge per area (C/m²)
    ΔOD = CE · Q_A                              optical density change (decadic, 1)
    T   = T_0 · 10^(−ΔOD)                       transmittance (Beer–Lambert, 1)

with F the Faraday constant (C/mol), c_max the host's site concentration (mol/m³), t the film
thickness (m), θ̄ the filling fraction averaged over the thickness, θ_b its bleached (reference)
value, CE in m²/C and T_0 the bleached transmittance of the stack (glass, ITO, film). Everything
here is plain numpy in SI; reading results lives in :mod:`femion.post.optics`.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import shapely

from femion.constants import FARADAY  # C/mol


def inserted_charge_per_area(theta_mean, c_max: float, thickness: float, theta_bleached: float = 0.0):
    """Q_A = F·c_max·t·(θ̄ − θ_b) (C/m²): the charge inserted per unit film area.

    ``theta_mean`` θ̄ (1) is the filling fraction averaged over the film thickness, ``c_max`` the
    site concentration (mol/m³), ``thickness`` t (m), ``theta_bleached`` θ_b (1) the reference
    (bleached) filling. Negative where the film holds less than the reference.
    """
    return FARADAY * c_max * thickness * (np.asarray(theta_mean, dtype=float) - theta_bleached)


def optical_density(charge_per_area, coloration_efficiency: float):
    """ΔOD = CE·Q_A (1, decadic): ``coloration_efficiency`` CE in m²/C, ``charge_per_area`` Q_A in C/m².

    Linear and not clipped: a negative Q_A (bleaching below the reference) gives a negative ΔOD.
    """
    return coloration_efficiency * np.asarray(charge_per_area, dtype=float)


def transmittance(delta_od, bleached_transmittance: float):
    """T = T_0·10^(−ΔOD) (1): Beer–Lambert transmittance for optical density change ``delta_od``
    from the bleached transmittance T_0 (``bleached_transmittance``)."""
    return bleached_transmittance * 10.0 ** (-np.asarray(delta_od, dtype=float))


def monitor_means(xy, values, shapes: Mapping[str, shapely.Geometry]) -> dict[str, float]:
    """Mean of ``values`` over the plan nodes ``xy`` ((N, 2), m) inside each monitor shape.

    ``shapes`` maps a monitor name to a shapely geometry (m); a node on the boundary counts as
    inside. The mean is the plain node mean (not area weighted), which is the area mean on a
    uniform mesh. Raises ValueError naming the monitor if no node lies inside it.
    """
    xy = np.asarray(xy, dtype=float)
    values = np.asarray(values, dtype=float)
    out = {}
    for name, geom in shapes.items():
        inside = shapely.intersects_xy(geom, xy[:, 0], xy[:, 1])
        if not inside.any():
            b = geom.bounds
            raise ValueError(
                f"optics monitor {name!r} (x {b[0]:g}..{b[2]:g} m, y {b[1]:g}..{b[3]:g} m) contains no film node; "
                "in a 2D x–z section it must cross the section line y = section_y")
        out[name] = float(values[inside].mean())
    return out
