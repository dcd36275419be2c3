"""Plan-view shapes of a case (x along the plate, y across) as shapely geometry in metres.

The case schema describes shapes; this module turns them into polygons and
checks that they make sense on the plate (inside it, touching what they must
touch). Nothing is clipped silently: a shape that leaves the plate is an error.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import shapely
import shapely.validation
from shapely.geometry import LineString, Point, Polygon, box
from shapely.geometry.base import BaseGeometry

from femion.geometry.spec import LayerSpec, StackSpec, two_track_pattern

if TYPE_CHECKING:  # pragma: no cover
    from femion.config.schema import Case, Contact, Layer, Pattern, Plate, Shape

#: relative tolerance on areas/lengths when checking containment (1e-9 of the plate size)
_REL_TOL = 1e-9
#: segments per quarter circle for circles
QUAD_SEGS = 16


def plate_polygon(plate: Plate) -> Polygon:
    return box(0.0, 0.0, plate.length, plate.width)


def shape_geometry(shape: Shape, plate: Plate) -> BaseGeometry:
    """The shapely polygon (m) of one case shape."""
    # exactly one of these is given (checked by the schema)
    if shape.rectangle is not None:
        (x0, y0), (x1, y1) = shape.rectangle
        return box(x0, y0, x1, y1)
    if shape.polygon is not None:
        poly = Polygon(shape.polygon)
        if not poly.is_valid:
            raise ValueError(f"polygon is not simple ({shapely.validation.explain_validity(poly)})")
        return poly
    if shape.circle is not None:
        return Point(*shape.circle.centre).buffer(shape.circle.radius, quad_segs=QUAD_SEGS)
    if shape.strip is not None:
        yc = shape.strip.centre_y if shape.strip.centre_y is not None else plate.width / 2
        w = shape.strip.width
        return box(0.0, yc - w / 2, plate.length, yc + w / 2)
    if shape.two_track is not None:
        t = shape.two_track
        track = two_track_pattern(plate.length, plate.width, t.track_width, margin=t.margin)
        return {None: track.polygon, "start": track.start_pad, "end": track.end_pad}[t.pad]
    raise AssertionError(shape)


def pattern_geometry(pattern: Pattern | None, plate: Plate) -> BaseGeometry:
    """Union of ``include`` minus union of ``exclude``; the whole plate for ``None``."""
    if pattern is None:
        return plate_polygon(plate)
    inc = shapely.union_all([shape_geometry(s, plate) for s in pattern.include])
    if pattern.exclude:
        inc = inc.difference(shapely.union_all([shape_geometry(s, plate) for s in pattern.exclude]))
    return inc


def driven_track(pattern: Pattern | None, plate: Plate):
    """The first "2"-shaped track in ``pattern`` (its ``polygon`` and ``centreline`` from the start
    pad to the end pad, m), None if it has none."""
    for shape in pattern.include if pattern is not None else []:
        if shape.two_track is not None and shape.two_track.pad is None:
            t = shape.two_track
            return two_track_pattern(plate.length, plate.width, t.track_width, margin=t.margin)
    return None


def track_centreline(pattern: Pattern | None, plate: Plate):
    """The centreline (a shapely LineString, m, from its start pad to its end pad) of the first
    "2"-shaped track in ``pattern``; None if it has none."""
    track = driven_track(pattern, plate)
    return None if track is None else track.centreline


def _outside_message(where: str, plate: Plate) -> str:
    return (
        f"{where}: extends outside the plate (allowed: x in [0, {plate.length:g}] m, "
        f"y in [0, {plate.width:g}] m); femion does not clip shapes silently"
    )


def check_shape_inside(shape: Shape, plate: Plate, where: str) -> BaseGeometry:
    try:
        geom = shape_geometry(shape, plate)
    except ValueError as exc:
        raise ValueError(f"{where}: {exc}") from None
    plate_poly = plate_polygon(plate)
    tol = _REL_TOL * plate_poly.area
    if geom.difference(plate_poly).area > tol:
        raise ValueError(_outside_message(where, plate))
    if geom.area <= tol:
        raise ValueError(f"{where}: has no area")
    return geom


def check_pattern_inside(pattern: Pattern, plate: Plate, where: str) -> BaseGeometry:
    for key in ("include", "exclude"):
        for i, s in enumerate(getattr(pattern, key)):
            check_shape_inside(s, plate, f"{where}.{key}[{i}]")
    geom = pattern_geometry(pattern, plate)
    if geom.area <= _REL_TOL * plate_polygon(plate).area:
        raise ValueError(f"{where}: the pattern is empty (exclude removes everything)")
    return geom


def edge_line(edge: str, plate: Plate) -> LineString:
    L, W = plate.length, plate.width
    return {
        "x_min": LineString([(0, 0), (0, W)]),
        "x_max": LineString([(L, 0), (L, W)]),
        "y_min": LineString([(0, 0), (L, 0)]),
        "y_max": LineString([(0, W), (L, W)]),
    }[edge]


def contact_geometry(contact: Contact, plate: Plate) -> BaseGeometry:
    """A contact's plan region; an edge contact is a thin band just outside that edge.

    The band only touches the plate, so it adds no cells to the mesh, yet every
    conductor node on that edge lies in it (see :func:`points_in`).
    """
    if contact.region is not None:
        return shape_geometry(contact.region, plate)
    assert contact.at is not None  # a contact has 'at' or 'region' (checked by the schema)
    band = 1e-3 * max(plate.length, plate.width)
    return edge_line(contact.at, plate).buffer(band, cap_style="flat").difference(plate_polygon(plate))


def check_contact_touches(contact: Contact, conductor: Layer, plate: Plate, where: str) -> None:
    track = pattern_geometry(conductor.pattern, plate)
    if contact.at is not None:
        if track.intersection(edge_line(contact.at, plate)).length <= _REL_TOL * plate.length:
            raise ValueError(f"{where}.at: conductor {conductor.name} does not reach the plate edge {contact.at}")
        return
    assert contact.region is not None  # a contact has 'at' or 'region' (checked by the schema)
    try:
        geom = shape_geometry(contact.region, plate)
    except ValueError as exc:
        raise ValueError(f"{where}.region: {exc}") from None
    if geom.intersection(track).area <= _REL_TOL * plate_polygon(plate).area:
        raise ValueError(f"{where}.region: does not overlap conductor {conductor.name}")


def points_in(geom: BaseGeometry, x, y, tol: float) -> shapely.typing.NDArray:
    """Boolean mask of points (x, y) inside ``geom`` or within ``tol`` of it."""
    return shapely.contains_xy(geom.buffer(tol), x, y)


def stack_spec(case: Case) -> StackSpec:
    """The SI stack description of a case (:mod:`femion.geometry.spec`), what the meshes are built from."""
    g = case.geometry
    layers = tuple(
        LayerSpec(
            name=layer.name,
            thickness=layer.thickness,
            pattern=None if layer.pattern is None else pattern_geometry(layer.pattern, g.plate),
            elements=layer.elements,
        )
        for layer in g.layers
    )
    regions = {name: shape_geometry(shape, g.plate) for name, shape in g.regions.items()}
    for c in g.contacts:
        if c.region is not None:
            regions[f"contact_{c.name}"] = contact_geometry(c, g.plate)
    return StackSpec(
        length=g.plate.length,
        width=g.plate.width,
        layers=layers,
        regions=regions,
        cell_size=case.mesh.cell_size,
        section_y=case.mesh.section_y,
    )
