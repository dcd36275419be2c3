"""The layer stack as plain SI data, and the "2"-shaped track: shapely and dataclasses only.

:class:`StackSpec` (plate, layers bottom to top, extra plan regions) is what
:mod:`femion.geometry.mesh` meshes and what :func:`femion.geometry.plan.stack_spec`
makes of a case. Nothing here imports gmsh or DOLFINx, so checking a case
(``femion validate``) does not load them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import shapely
import shapely.geometry
from shapely.geometry.base import BaseGeometry

__all__ = ["GeometryError", "LayerSpec", "StackSpec", "TwoTrack", "layer_z", "two_track_pattern"]


class GeometryError(ValueError):
    """Invalid geometry input (the message names the offending layer/region)."""


@dataclass(frozen=True)
class LayerSpec:
    """One layer of the stack (SI units)."""

    name: str
    thickness: float
    pattern: BaseGeometry | None = None
    elements: int = 1


@dataclass(frozen=True)
class StackSpec:
    """Plate, layers (bottom -> top) and extra plan regions (SI units)."""

    length: float
    width: float
    layers: tuple[LayerSpec, ...]
    regions: dict[str, BaseGeometry]
    cell_size: float
    section_y: float | None = None


@dataclass(frozen=True)
class TwoTrack:
    """A "2"-shaped conductor track and the pads covering its two ends (m)."""

    polygon: shapely.geometry.Polygon
    start_pad: shapely.geometry.Polygon
    end_pad: shapely.geometry.Polygon
    centreline: shapely.geometry.LineString


def layer_z(spec: StackSpec) -> dict[str, tuple[float, float]]:
    """Each layer's ``(z_bottom, z_top)`` in metres, ``z = 0`` at the stack bottom."""
    out: dict[str, tuple[float, float]] = {}
    z = 0.0
    for layer in spec.layers:
        out[layer.name] = (z, z + layer.thickness)
        z += layer.thickness
    return out


# ---------------------------------------------------------------- "2" track


def two_track_pattern(
    length: float,
    width: float,
    track_width: float,
    cell_size: float | None = None,
    margin: float | None = None,
    height: float | None = None,
) -> TwoTrack:
    """The digit "2" as a conductor track of width ``track_width`` (metres).

    Centreline: a top arc (from the left, over the top, clockwise) leaving
    tangentially into a diagonal down to the bottom-left corner, then a
    bottom bar to the right.  The digit reads upright with x horizontal,
    spans ``height`` in y (default: the plate width minus margins) and is
    centred in x.  ``start_pad``/``end_pad`` are rectangles covering the
    start (left end of the arc) and the end (right end of the bar),
    overlapping the track by one track width.
    """
    tw = float(track_width)
    if not tw > 0:
        raise GeometryError(f"two_track_pattern: track_width must be > 0, got {tw}")
    margin = 0.1 * width if margin is None else float(margin)
    hc = (width - 2 * margin - tw) if height is None else float(height) - tw  # centreline height
    if hc <= 2 * tw:
        raise GeometryError(
            f"two_track_pattern: the plate width {width} m leaves no room for a track "
            f"{tw} m wide with margin {margin} m"
        )
    seg = (cell_size if cell_size is not None else tw / 2) / 2  # target segment length
    r = 0.3 * hc
    wc = 2 * r  # centreline width
    x0 = 0.5 * (length - wc)
    y0 = 0.5 * (width - hc)
    if x0 - 0.75 * tw < 0 or x0 + wc + 0.5 * tw + tw > length:
        raise GeometryError(f"two_track_pattern: a {wc + tw} m wide digit does not fit in length {length} m")
    cx, cy = x0 + r, y0 + hc - r
    # tangent point from the bottom-left corner (x0, y0) to the circle, right side
    dx, dy = x0 - cx, y0 - cy
    d = math.hypot(dx, dy)
    phi = math.atan2(dy, dx)
    theta_end = phi + math.acos(r / d)
    theta_start = math.pi
    sweep = theta_start - theta_end  # clockwise sweep (positive)
    n_arc = max(8, int(math.ceil(sweep * r / seg)))
    th = np.linspace(theta_start, theta_end, n_arc + 1)
    arc = np.column_stack([cx + r * np.cos(th), cy + r * np.sin(th)])
    bar_end = (x0 + wc, y0)
    centre = shapely.geometry.LineString(np.vstack([arc, [(x0, y0)], [bar_end]]))
    quad_segs = max(2, int(math.ceil((math.pi / 2) * (tw / 2) / seg)))
    poly = centre.buffer(tw / 2, quad_segs=quad_segs, cap_style="flat", join_style="round")
    tol = (cell_size if cell_size is not None else tw / 2) / 20
    poly = poly.simplify(tol, preserve_topology=True)
    poly = poly.simplify(tol, preserve_topology=True)  # DP is not always idempotent
    if poly.geom_type != "Polygon":
        raise GeometryError("two_track_pattern: the track is not one connected polygon")

    def pad(end, outward):
        ux, uy = outward
        vx, vy = -uy, ux
        a0, a1, c = -1.0 * tw, 0.5 * tw, 0.75 * tw
        ex, ey = end
        corners = [
            (ex + a * ux + s * vx, ey + a * uy + s * vy)
            for a, s in ((a0, -c), (a1, -c), (a1, c), (a0, c))
        ]
        return shapely.geometry.Polygon(corners)

    start_pad = pad(tuple(arc[0]), (0.0, -1.0))  # the arc starts going up: outward is -y
    end_pad = pad(bar_end, (1.0, 0.0))
    return TwoTrack(poly, start_pad, end_pad, centre)
