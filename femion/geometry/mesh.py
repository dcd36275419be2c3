"""Layer stack of a thin-film device: plan layout, plan/stack/section meshes.

The stack description itself (:class:`StackSpec`, :class:`LayerSpec`, the "2" track) is plain
data in :mod:`femion.geometry.spec`, re-exported here.

The device is a plate ``[0, Lx] x [0, Ly]`` (metres) with layers stacked in z
(bottom to top, ``z = 0`` at the bottom of the first layer).  A layer may be
*patterned*: it exists only inside a plan region; outside, its slot is still
meshed and tagged ``<layer>_absent`` so the stack stays a box.  Extra named
plan regions (contacts, monitors) are regions the mesh conforms to.

Meshes are built with gmsh on rank 0 in **millimetres** (OCC's absolute
tolerance is ~1e-7 model units, the size of a 200 nm film in metres),
imported with :func:`dolfinx.io.gmsh.model_to_mesh` with shared-facet
ghosting, and scaled to metres; the 3D stack instead is extruded from the
plan on every rank (each its share) and partitioned by DOLFINx.

* plan mesh: 2D, all quadrilaterals, one physical surface per atomic plan
  fragment (overlay of all patterns and regions);
* stack mesh: 3D hexahedra, the quad plan mesh extruded layer by layer;
* section mesh: 2D x-z cross-section at ``y = section_y``, structured quads.

Physical-group names (stack and section meshes): cells ``<layer>`` and
``<layer>_absent``; facets ``<lower>|<upper>`` (only where both layers are
present), ``bottom``, ``top``, ``x_min``, ``x_max`` (and ``y_min``, ``y_max``
in 3D).  Plan mesh: cells ``fragment_<k>``; facets ``x_min``, ``x_max``,
``y_min``, ``y_max`` on the plate edges and ``fragment_<a>|fragment_<b>`` on
the curves between two fragments.
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import os
import pickle
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import shapely
import shapely.affinity
import shapely.geometry
import shapely.ops
import shapely.validation
from shapely.geometry.base import BaseGeometry

from femion._dolfinx import MPI, dolfinx
from femion.geometry.spec import GeometryError, LayerSpec, StackSpec, TwoTrack, layer_z, two_track_pattern

__all__ = [
    "GeometryError",
    "LayerSpec",
    "PlanLayout",
    "PlanMesh",
    "StackMesh",
    "StackSpec",
    "TwoTrack",
    "build_plan_mesh",
    "build_section_mesh",
    "build_stack_mesh",
    "layer_z",
    "plan_fragments",
    "two_track_pattern",
]

MM = 1e3  # metres -> millimetres (gmsh model units)

# Physical tags of the plate edges (facets of the plan mesh / section sides).
_EDGE_TAGS = {"x_min": 1, "x_max": 2, "y_min": 3, "y_max": 4}


@dataclass(frozen=True)
class Fragment:
    """One atomic plan fragment: gmsh surface tag, names containing it, area (m^2)."""

    tag: int
    names: frozenset[str]
    area: float


@dataclass(frozen=True)
class PlanLayout:
    """Validated plan: clipped/simplified shapes (m) and the atomic fragments."""

    length: float
    width: float
    shapes: dict[str, BaseGeometry]  # name -> clipped, simplified plan region (m)
    patterned: tuple[str, ...]  # names of patterned layers (subset of shapes)
    unpatterned: tuple[str, ...]  # names of layers present everywhere
    fragments: tuple[Fragment, ...]

    def area(self, name: str) -> float:
        """Plan area (m^2) of a named pattern/region, summed over its fragments."""
        if name in self.unpatterned:
            return self.length * self.width
        return sum(f.area for f in self.fragments if name in f.names)


@dataclass
class PlanMesh:
    """2D quadrilateral plan mesh (metres) with one cell tag per plan fragment."""

    mesh: object
    cell_tags: object
    facet_tags: object
    fragment_regions: dict[int, frozenset[str]]
    names: dict[str, int] = field(default_factory=dict)  # physical name -> tag
    layout: PlanLayout | None = None

    def cells(self, name: str) -> np.ndarray:
        """Local cell indices (owned + ghost) inside the named pattern/region."""
        assert self.layout is not None
        if name in self.layout.unpatterned:
            imap = self.mesh.topology.index_map(self.mesh.topology.dim)
            return np.arange(imap.size_local + imap.num_ghosts, dtype=np.int32)
        if name not in self.layout.shapes:
            known = sorted(set(self.layout.shapes) | set(self.layout.unpatterned))
            raise KeyError(f"unknown plan name {name!r}; known: {known}")
        tags = [t for t, names in self.fragment_regions.items() if name in names]
        sel = np.isin(self.cell_tags.values, tags)
        return np.sort(self.cell_tags.indices[sel]).astype(np.int32)


@dataclass
class StackMesh:
    """3D stack mesh (x, y, z) or 2D section mesh (x, z), in metres."""

    mesh: object
    cell_tags: object
    facet_tags: object
    names: dict[str, int]
    layer_z: dict[str, tuple[float, float]]
    layout: PlanLayout | None = None
    # section only: (x0, x1, names containing the interval) along the section line
    intervals: tuple[tuple[float, float, frozenset[str]], ...] = ()

    def cells(self, name: str) -> np.ndarray:
        """Local cell indices (owned + ghost) of a physical cell group, e.g. "oxide"."""
        if name not in self.names:
            raise KeyError(f"unknown group {name!r}; known: {sorted(self.names)}")
        return np.sort(self.cell_tags.find(self.names[name])).astype(np.int32)

    def facets(self, name: str) -> np.ndarray:
        """Local facet indices of a physical facet group, e.g. "oxide|electrolyte"."""
        if name not in self.names:
            raise KeyError(f"unknown group {name!r}; known: {sorted(self.names)}")
        return np.sort(self.facet_tags.find(self.names[name])).astype(np.int32)


# --------------------------------------------------------------- validation


def _polygons(geom: BaseGeometry) -> list[shapely.geometry.Polygon]:
    """The polygons (positive area) in a geometry, dropping lines and points."""
    if geom.is_empty:
        return []
    if isinstance(geom, shapely.geometry.Polygon):
        return [geom] if geom.area > 0 else []
    if hasattr(geom, "geoms"):
        return [p for g in geom.geoms for p in _polygons(g)]
    return []


def _validate(spec: StackSpec) -> None:
    if not (spec.length > 0 and spec.width > 0):
        raise GeometryError(f"plate size must be > 0, got {spec.length} x {spec.width} m")
    if not spec.cell_size > 0:
        raise GeometryError(f"cell_size must be > 0, got {spec.cell_size}")
    if spec.cell_size > min(spec.length, spec.width):
        raise GeometryError(
            f"cell_size {spec.cell_size} m is larger than the plate "
            f"({spec.length} x {spec.width} m)"
        )
    if not spec.layers:
        raise GeometryError("the stack has no layers")
    seen: set[str] = set()
    for layer in spec.layers:
        if layer.name in seen:
            raise GeometryError(f"layer {layer.name!r} appears twice")
        seen.add(layer.name)
        if not layer.name or "|" in layer.name or layer.name.endswith("_absent"):
            raise GeometryError(f"layer name {layer.name!r} is not allowed")
        if not layer.thickness > 0:
            raise GeometryError(f"layer {layer.name!r}: thickness must be > 0, got {layer.thickness}")
        if int(layer.elements) < 1:
            raise GeometryError(f"layer {layer.name!r}: elements must be >= 1, got {layer.elements}")
    for name in spec.regions:
        if name in seen:
            raise GeometryError(f"region {name!r} has the name of a layer")
    if spec.section_y is not None and not (0 <= spec.section_y <= spec.width):
        raise GeometryError(f"section_y {spec.section_y} is outside the plate [0, {spec.width}]")


def _clip(kind: str, name: str, geom: BaseGeometry, plate, tol: float, required: bool):
    """Clip a plan shape to the plate and simplify; None if it adds nothing."""
    if not isinstance(geom, BaseGeometry):
        raise GeometryError(f"{kind} {name!r}: expected a shapely geometry, got {type(geom).__name__}")
    if geom.is_empty:
        raise GeometryError(f"{kind} {name!r}: the shape is empty")
    if not geom.is_valid:
        raise GeometryError(f"{kind} {name!r}: invalid polygon ({shapely.validation.explain_validity(geom)})")
    if not _polygons(geom):
        raise GeometryError(f"{kind} {name!r}: the shape has no area")
    if not geom.intersects(plate):
        raise GeometryError(f"{kind} {name!r}: the shape lies entirely outside the plate")
    clipped = geom if geom.within(plate) else shapely.unary_union(_polygons(geom.intersection(plate)))
    if clipped.is_empty or clipped.area <= 0:
        if required:
            raise GeometryError(f"{kind} {name!r}: zero area inside the plate")
        return None
    simple = shapely.unary_union(_polygons(clipped.simplify(tol, preserve_topology=True)))
    if simple.is_empty or not simple.is_valid:
        simple = clipped
    return simple


def _dedupe_ring(coords: np.ndarray, eps: float) -> np.ndarray:
    keep = [coords[0]]
    for c in coords[1:]:
        if np.hypot(*(c - keep[-1])) > eps:
            keep.append(c)
    if np.hypot(*(keep[-1] - keep[0])) > eps:
        keep.append(keep[0])
    keep[-1] = keep[0]
    return np.asarray(keep)


def _snap_shape(geom: BaseGeometry, ref_lines, ref_points, tol: float, eps: float):
    """Make ``geom`` meet earlier shapes cleanly (no edges shorter than ~tol).

    Vertices closer than ``tol`` to an earlier boundary move onto it, then
    vertices/segments snap to earlier vertices within ``tol`` (GEOS snap).
    Returns ``geom`` unchanged if the result would be invalid or empty.
    """

    def ring(coords):
        c = np.asarray(coords)[:, :2].copy()
        for i, (x, y) in enumerate(c):
            pt = shapely.geometry.Point(x, y)
            d = ref_lines.distance(pt)
            if 0 < d < tol:
                q = ref_lines.interpolate(ref_lines.project(pt)) if ref_lines.geom_type == "LineString" \
                    else shapely.ops.nearest_points(ref_lines, pt)[0]
                c[i] = (q.x, q.y)
        c[-1] = c[0]
        return c

    polys = []
    for poly in _polygons(geom):
        polys.append(shapely.geometry.Polygon(ring(poly.exterior.coords), [ring(r.coords) for r in poly.interiors]))
    moved = shapely.unary_union([p.buffer(0) if not p.is_valid else p for p in polys])
    snapped = shapely.snap(moved, ref_points, tol)
    out = []
    for poly in _polygons(snapped):
        ext = _dedupe_ring(np.asarray(poly.exterior.coords), eps)
        holes = [_dedupe_ring(np.asarray(r.coords), eps) for r in poly.interiors]
        if len(ext) >= 4:
            out.append(shapely.geometry.Polygon(ext, [h for h in holes if len(h) >= 4]))
    res = shapely.unary_union(out) if out else shapely.geometry.Polygon()
    if res.is_empty or not res.is_valid or res.area <= 0:
        return geom
    return res


def _prepare(spec: StackSpec) -> tuple[dict[str, BaseGeometry], list[str], list[str]]:
    """Validate, clip to the plate, simplify, and snap shapes to each other.

    Shapes are processed in order (layers bottom to top, then regions); each
    is snapped to the plate and the earlier shapes within ``cell_size/8`` so
    that the overlay has no curve shorter than that (earlier shapes win).
    """
    _validate(spec)
    plate = shapely.geometry.box(0.0, 0.0, spec.length, spec.width)
    tol = spec.cell_size / 20.0
    snap_tol = spec.cell_size / 8.0
    eps = 1e-9 * max(spec.length, spec.width)
    shapes: dict[str, BaseGeometry] = {}
    patterned, unpatterned = [], []
    ref_lines = plate.boundary
    ref_points = shapely.geometry.MultiPoint(np.asarray(plate.exterior.coords))

    def add(kind, name, geom, required):
        nonlocal ref_lines, ref_points
        s = _clip(kind, name, geom, plate, tol, required)
        if s is None:
            return False
        s = _snap_shape(s, ref_lines, ref_points, snap_tol, eps)
        shapes[name] = s
        ref_lines = shapely.unary_union([ref_lines, s.boundary])
        pts = [np.asarray(r.coords) for p in _polygons(s) for r in (p.exterior, *p.interiors)]
        ref_points = shapely.unary_union([ref_points, shapely.geometry.MultiPoint(np.vstack(pts))])
        return True

    for layer in spec.layers:
        if layer.pattern is None:
            unpatterned.append(layer.name)
            continue
        add("layer", layer.name, layer.pattern, True)
        patterned.append(layer.name)
    for name, geom in spec.regions.items():
        add("region", name, geom, False)
    return shapes, patterned, unpatterned


# ------------------------------------------------------------------- gmsh


class _Gmsh:
    """Context: a fresh gmsh model (initialising gmsh if needed)."""

    def __init__(self, name: str):
        self.name = name

    def __enter__(self):
        import gmsh

        self.gmsh = gmsh
        self.owner = not gmsh.isInitialized()
        if self.owner:
            import signal

            # gmsh's initialisation resets every signal handler to the default; keep the caller's
            # (femion's stop-at-the-next-step handlers for SIGINT/SIGTERM)
            handlers = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
            gmsh.initialize(interruptible=False)
            for s, h in handlers.items():
                if h is not None:
                    signal.signal(s, h)
        gmsh.option.setNumber("General.Terminal", 0)
        gmsh.model.add(self.name)
        gmsh.model.setCurrent(self.name)
        return gmsh

    def __exit__(self, *exc):
        self.gmsh.model.remove()
        if self.owner:
            self.gmsh.finalize()
        return False


def _occ_ring(gmsh, coords) -> int:
    occ = gmsh.model.occ
    pts = np.asarray(coords, dtype=float)[:-1] * MM  # drop the closing point
    ptags = [occ.addPoint(x, y, 0.0) for x, y in pts[:, :2]]
    ltags = [occ.addLine(ptags[i], ptags[(i + 1) % len(ptags)]) for i in range(len(ptags))]
    return occ.addCurveLoop(ltags)


def _occ_polygon(gmsh, poly) -> int:
    poly = shapely.geometry.polygon.orient(poly)
    loops = [_occ_ring(gmsh, poly.exterior.coords)]
    loops += [_occ_ring(gmsh, ring.coords) for ring in poly.interiors]
    return gmsh.model.occ.addPlaneSurface(loops)


def _occ_plan(gmsh, length: float, width: float, shapes: dict[str, BaseGeometry]):
    """Build the plate and fragment it by all shapes; returns {surface: names}."""
    occ = gmsh.model.occ
    plate = occ.addRectangle(0.0, 0.0, 0.0, length * MM, width * MM)
    tools, owner = [], []
    for name, geom in shapes.items():
        for poly in _polygons(geom):
            tools.append((2, _occ_polygon(gmsh, poly)))
            owner.append(name)
    names: dict[int, set[str]] = {}
    if tools:
        _, out_map = occ.fragment([(2, plate)], tools)
        occ.synchronize()
        for dt in out_map[0]:
            names.setdefault(dt[1], set())
        for name, children in zip(owner, out_map[1:], strict=True):
            for dt in children:
                names.setdefault(dt[1], set()).add(name)
    else:
        occ.synchronize()
        names[plate] = set()
    surfaces = {t for _, t in gmsh.model.getEntities(2)}
    if surfaces != set(names):
        raise GeometryError(f"OCC fragment gave surfaces {sorted(surfaces)} but mapped {sorted(names)}")
    return {t: frozenset(names[t]) for t in sorted(names)}


def plan_fragments(spec: StackSpec) -> PlanLayout:
    """Validate the spec, clip its shapes to the plate and compute the plan fragments."""
    shapes, patterned, unpatterned = _prepare(spec)
    frags = []
    with _Gmsh("femion_plan_fragments") as gmsh:
        regions = _occ_plan(gmsh, spec.length, spec.width, shapes)
        for tag, names in regions.items():
            area = gmsh.model.occ.getMass(2, tag) / MM**2
            frags.append(Fragment(tag, names, area))
    return PlanLayout(
        spec.length, spec.width, shapes, tuple(patterned), tuple(unpatterned), tuple(frags)
    )


def _plan_mesh_options(gmsh, cell_size: float, subdivide: bool) -> None:
    h = cell_size * MM
    opt = gmsh.option.setNumber
    opt("Mesh.MeshSizeMax", 2 * h if subdivide else h)
    opt("Mesh.MeshSizeMin", 0.0)
    opt("Mesh.MeshSizeFromPoints", 0)
    opt("Mesh.MeshSizeFromCurvature", 0)
    opt("Mesh.MeshSizeExtendFromBoundary", 1)
    opt("Mesh.Algorithm", 8)
    opt("Mesh.RecombineAll", 1)
    opt("Mesh.RecombinationAlgorithm", 1)
    opt("Mesh.SubdivisionAlgorithm", 1 if subdivide else 0)
    opt("Mesh.ElementOrder", 1)


def _count_triangles(gmsh) -> int:
    types, tags, _ = gmsh.model.mesh.getElements(2)
    return sum(len(t) for typ, t in zip(types, tags, strict=True) if typ == 2)


def _mesh_plan_quads(gmsh, cell_size: float) -> None:
    """2D mesh of all surfaces, all quads.

    Frontal-Delaunay for quads + blossom recombination at size ``h``; if
    triangles remain, remesh at ``2h`` and split every cell into quads
    (``Mesh.SubdivisionAlgorithm = 1``).
    """
    _plan_mesh_options(gmsh, cell_size, subdivide=False)
    gmsh.model.mesh.generate(2)
    if _count_triangles(gmsh):
        gmsh.model.mesh.clear()
        _plan_mesh_options(gmsh, cell_size, subdivide=True)
        gmsh.model.mesh.generate(2)
    ntri = _count_triangles(gmsh)
    if ntri:
        raise GeometryError(f"plan mesh still has {ntri} triangles after subdivision")
    gmsh.model.mesh.renumberNodes()
    gmsh.model.mesh.renumberElements()


def _edge_name(bbox, length_mm: float, width_mm: float, eps: float) -> str | None:
    x0, y0, _, x1, y1, _ = bbox
    if abs(x0) < eps and abs(x1) < eps:
        return "x_min"
    if abs(x0 - length_mm) < eps and abs(x1 - length_mm) < eps:
        return "x_max"
    if abs(y0) < eps and abs(y1) < eps:
        return "y_min"
    if abs(y0 - width_mm) < eps and abs(y1 - width_mm) < eps:
        return "y_max"
    return None


def _import(gmsh_model, comm, gdim: int, names: dict[str, int] | None):
    """model_to_mesh on rank 0 with shared-facet ghosting; scale mm -> m."""
    partitioner = dolfinx.mesh.create_cell_partitioner(dolfinx.mesh.GhostMode.shared_facet, 2)
    data = dolfinx.io.gmsh.model_to_mesh(gmsh_model, comm, 0, gdim=gdim, partitioner=partitioner)
    data.mesh.geometry.x[:] *= 1.0 / MM
    tdim = data.mesh.topology.dim
    data.mesh.topology.create_connectivity(tdim - 1, tdim)
    return data


def _run_on_root(comm, gdim: int, build, cache: Path | None = None):
    """Build a gmsh model on rank 0 with ``build(gmsh) -> info`` and import it everywhere.

    With ``cache`` (a file from :func:`_cache_file`), rank 0 merges the mesh stored there instead
    of building it, or stores what it built (see :func:`_store`). Errors on rank 0 are broadcast
    and raised on every rank (no deadlock). Returns ``(MeshData, info)``.
    """
    if comm.rank == 0:
        with _Gmsh(f"femion_{time.monotonic_ns()}") as gmsh:
            try:
                info = _load(gmsh, cache) if cache is not None else None
                if info is None:
                    info = build(gmsh)
                    if cache is not None:
                        _store(gmsh, cache, info)
                err = None
            except Exception as e:  # any failure: re-raised on every rank below
                info, err = None, f"{type(e).__name__}: {e}"
            comm.bcast((info, err), root=0)
            if err is not None:
                raise GeometryError(err)
            return _import(gmsh.model, comm, gdim, info), info
    info, err = comm.bcast(None, root=0)
    if err is not None:
        raise GeometryError(err)
    return _import(None, comm, gdim, info), info


# ------------------------------------------------------------------- mesh cache
#
# A finished gmsh mesh (binary .msh) and its physical-group info (pickle) under a key hashing
# the mesh kind, everything of the StackSpec (plate, layers with their patterns as WKB, regions,
# cell size, section), the gmsh version and this module's source: a sweep over drives, laws or
# protocols meshes once. Directory: $FEMION_MESH_CACHE, else $XDG_CACHE_HOME/femion/meshes
# (~/.cache/...); FEMION_MESH_CACHE=off turns it off. Writes are atomic (temp file + rename, the
# info first), so a concurrent run sees a whole mesh or none. The stack's entry is its plan
# arrays (a pickle; the stack is extruded on every rank). After each write the least recently used
# entries go until the cache holds at most $FEMION_MESH_CACHE_MB (2048 MB).

MESH_CACHE_ENV = "FEMION_MESH_CACHE"
MESH_CACHE_SIZE_ENV = "FEMION_MESH_CACHE_MB"  # the cache's size cap, MB (default 2048)


def _prune(directory: Path) -> None:
    """Delete the least recently used cache files until the directory holds at most its cap
    ($FEMION_MESH_CACHE_MB, default 2048 MB). A file's use is its mtime: a load touches it. A
    plan entry's .msh and .info may part; the loader then meshes again."""
    try:
        cap = float(os.environ.get(MESH_CACHE_SIZE_ENV, "2048")) * 1e6
        files = [(f.stat().st_mtime, f.stat().st_size, f) for f in directory.iterdir()
                 if f.suffix in (".msh", ".info", ".pkl")]
    except (OSError, ValueError):
        return
    total = sum(size for _, size, _ in files)
    for _, size, f in sorted(files, key=lambda e: e[0]):
        if total <= cap:
            break
        with contextlib.suppress(OSError):
            f.unlink()
            total -= size


def _touch(*paths: Path) -> None:
    """Mark cache files as used (their mtime), for :func:`_prune`."""
    for path in paths:
        with contextlib.suppress(OSError):
            os.utime(path)


def _cache_file(kind: str, spec: StackSpec, msh_path) -> Path | None:
    """The cache's .msh file for a ``kind`` mesh of ``spec`` (None: cache off, or the caller wants
    the .msh written itself)."""
    root = os.environ.get(MESH_CACHE_ENV)
    if msh_path is not None or root == "off":
        return None
    import gmsh

    if root is None:
        root = str(Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "femion" / "meshes")

    def wkb(g):
        return None if g is None else g.wkb_hex

    key = (kind, spec.length, spec.width, spec.cell_size, spec.section_y,
           tuple((ly.name, ly.thickness, wkb(ly.pattern), ly.elements) for ly in spec.layers),
           tuple(sorted((k, wkb(g)) for k, g in spec.regions.items())),
           gmsh.__version__, hashlib.sha256(Path(__file__).read_bytes()).hexdigest())
    return Path(root) / f"{kind}_{hashlib.sha256(repr(key).encode()).hexdigest()[:32]}.msh"


def _load(gmsh, cache: Path):
    """Merge the cached mesh into the current (empty) model; its info, or None if not cached or
    unreadable (then the model is left empty and the mesh is built)."""
    if not cache.exists():
        return None
    try:
        with open(cache.with_suffix(".info"), "rb") as f:
            info = pickle.load(f)
        gmsh.merge(str(cache))
        _touch(cache, cache.with_suffix(".info"))
        return info
    except Exception:  # a damaged cache entry: build the mesh (and store it again)
        name = gmsh.model.getCurrent()
        gmsh.model.remove()
        gmsh.model.add(name)
        return None


def _write_entry(files) -> None:
    """Write cache files atomically: each ``(path, write)`` is written by ``write(tmp)`` to a temp
    file beside it, then all are renamed into place in the given order (a reader that finds the
    last finds the others), and the cache is pruned. A cache that cannot be written (read-only,
    full) is skipped: the run goes on with the mesh it built."""
    tmps = []
    try:
        for path, write in files:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp" + path.suffix)  # gmsh: format by suffix
            tmps.append(tmp)
            os.close(fd)
            write(tmp)
            if os.path.getsize(tmp) == 0:
                raise OSError(f"{tmp}: empty after writing")
        for (path, _), tmp in zip(files, tmps, strict=True):
            os.replace(tmp, path)
        _prune(files[0][0].parent)
    except Exception:
        for t in tmps:
            with contextlib.suppress(OSError):
                os.remove(t)


def _pickle_to(obj):
    def write(path):
        with open(path, "wb") as f:
            pickle.dump(obj, f, protocol=pickle.HIGHEST_PROTOCOL)

    return write


def _store(gmsh, cache: Path, info) -> None:
    """Write the current model's mesh (binary .msh) and ``info`` to the cache, the info first."""

    def write_msh(path):
        binary = gmsh.option.getNumber("Mesh.Binary")
        gmsh.option.setNumber("Mesh.Binary", 1)
        try:
            gmsh.write(path)
        finally:
            gmsh.option.setNumber("Mesh.Binary", binary)

    _write_entry([(cache.with_suffix(".info"), _pickle_to(info)), (cache, write_msh)])


def _layout_everywhere(spec: StackSpec, comm) -> PlanLayout:
    """plan_fragments on rank 0, broadcast (errors re-raised on every rank)."""
    layout, err = None, None
    if comm.rank == 0:
        try:
            layout = plan_fragments(spec)
        except GeometryError as e:
            err = str(e)
    layout, err = comm.bcast((layout, err), root=0)
    if err is not None:
        raise GeometryError(err)
    return layout


def build_plan_mesh(spec: StackSpec, comm=MPI.COMM_WORLD, msh_path=None) -> PlanMesh:
    """2D all-quadrilateral plan mesh of the plate (metres), one cell tag per fragment."""
    layout = _layout_everywhere(spec, comm)

    def build(gmsh):
        L, W = spec.length * MM, spec.width * MM
        regions = _occ_plan(gmsh, spec.length, spec.width, layout.shapes)
        model = gmsh.model
        _mesh_plan_quads(gmsh, spec.cell_size)
        names: dict[str, int] = {}
        frag_regions: dict[int, frozenset[str]] = {}
        for k, (surf, nm) in enumerate(regions.items(), start=1):
            model.addPhysicalGroup(2, [surf], k, name=f"fragment_{k}")
            names[f"fragment_{k}"] = k
            frag_regions[k] = nm
        surf_to_k = {s: k for k, s in enumerate(regions, start=1)}
        eps = 1e-6 * max(L, W)
        edges: dict[str, list[int]] = {}
        pairs: dict[tuple[int, int], list[int]] = {}
        for _, c in model.getEntities(1):
            up, _ = model.getAdjacencies(1, c)
            if len(up) == 1:
                nm = _edge_name(model.getBoundingBox(1, c), L, W, eps)
                if nm is None:
                    raise GeometryError(f"boundary curve {c} is not on a plate edge")
                edges.setdefault(nm, []).append(c)
            elif len(up) == 2:
                a, b = sorted(surf_to_k[s] for s in up)
                pairs.setdefault((a, b), []).append(c)
        for nm, tag in _EDGE_TAGS.items():
            if nm in edges:
                model.addPhysicalGroup(1, edges[nm], tag, name=nm)
                names[nm] = tag
        for i, ((a, b), curves) in enumerate(sorted(pairs.items())):
            nm = f"fragment_{a}|fragment_{b}"
            model.addPhysicalGroup(1, curves, 100 + i, name=nm)
            names[nm] = 100 + i
        if msh_path is not None:
            gmsh.write(str(msh_path))
        info = (names, frag_regions)
        return info

    data, (names, frag_regions) = _run_on_root(comm, 2, build, _cache_file("plan", spec, msh_path))
    return PlanMesh(data.mesh, data.cell_tags, data.facet_tags, frag_regions, names, layout)


def _present(layout: PlanLayout, layer: str, names: frozenset[str]) -> bool:
    return layer in layout.unpatterned or layer in names


def _plan_arrays(gmsh, spec: StackSpec, layout: PlanLayout):
    """Mesh the plan (current gmsh model) and return it as arrays (mm).

    Returns ``(x, quads, regions, sides)``: node coordinates ``(N, 2)``,
    per fragment surface the quads as ``(m, 4)`` node indices, the
    fragment names, and per plate edge the boundary segments ``(m, 2)``.
    """
    L, W = spec.length * MM, spec.width * MM
    regions = _occ_plan(gmsh, spec.length, spec.width, layout.shapes)
    _mesh_plan_quads(gmsh, spec.cell_size)
    model = gmsh.model
    tags, coords, _ = model.mesh.getNodes()
    order = np.argsort(tags)
    tags = tags[order]
    x = coords.reshape(-1, 3)[order, :2]
    index = np.full(int(tags.max()) + 1, -1, dtype=np.int64)
    index[tags] = np.arange(len(tags))
    quads = {}
    for surf in regions:
        _, ntags = model.mesh.getElementsByType(3, surf)
        quads[surf] = index[np.asarray(ntags, dtype=np.int64)].reshape(-1, 4)
    eps = 1e-6 * max(L, W)
    sides: dict[str, list[np.ndarray]] = {}
    for _, c in model.getEntities(1):
        up, _ = model.getAdjacencies(1, c)
        if len(up) != 1:
            continue
        nm = _edge_name(model.getBoundingBox(1, c), L, W, eps)
        if nm is None:
            raise GeometryError(f"boundary curve {c} is not on a plate edge")
        _, ntags = model.mesh.getElementsByType(1, c)
        sides.setdefault(nm, []).append(index[np.asarray(ntags, dtype=np.int64)].reshape(-1, 2))
    return x, quads, regions, {k: np.vstack(v) for k, v in sides.items()}


def _levels(spec: StackSpec, zs) -> tuple[np.ndarray, list[int]]:
    """The z levels (mm) of the stack's element boundaries through every layer, and the index of
    each layer's top level."""
    levels = [0.0]
    layer_top_level = []
    for layer in spec.layers:
        z0, z1 = zs[layer.name]
        n = int(layer.elements)
        levels += [(z0 + (z1 - z0) * (k + 1) / n) * MM for k in range(n)]
        layer_top_level.append(len(levels) - 1)
    out = np.asarray(levels)
    out[[0, *layer_top_level]] = [0.0, *(zs[layer.name][1] * MM for layer in spec.layers)]
    return out, layer_top_level


class _Stack:
    """The hexahedral stack as arrays: the plan quads extruded through the z levels, its physical
    groups (the same names and numbers on every rank) and, for a share of the plan, its cells and
    facets with their tags. Node n = level·nn + plan node (nn plan nodes); plan arrays in mm."""

    def __init__(self, spec: StackSpec, layout: PlanLayout, arrays):
        self.x2, quads, regions, self.sides = arrays
        self.frag = list(regions)
        self.nn = len(self.x2)
        self.levels, self.top_level = _levels(spec, layer_z(spec))
        self.quads = np.vstack([quads[f] for f in self.frag])
        self.quad_frag = np.repeat(np.arange(len(self.frag)), [len(quads[f]) for f in self.frag])
        # present[l, f]: layer l exists over fragment f
        self.present = np.array([[_present(layout, ly.name, regions[f]) for f in self.frag] for ly in spec.layers])
        self.layers = [ly.name for ly in spec.layers]
        names: dict[str, int] = {}
        tag = 1
        for li, name in enumerate(self.layers):  # cells: <layer>, <layer>_absent, where they exist
            for nm, any_ in ((name, self.present[li].any()), (f"{name}_absent", (~self.present[li]).any())):
                if any_:
                    names[nm] = tag
                    tag += 1
        facets = ["bottom", "top"] + [f"{lo}|{up}" for li, (lo, up) in enumerate(itertools.pairwise(self.layers))
                                      if (self.present[li] & self.present[li + 1]).any()]
        facets += [nm for nm in _EDGE_TAGS if nm in self.sides]
        for ftag, nm in enumerate(facets, start=1):
            names[nm] = ftag
        self.names = names
        self.facet_names = facets

    def level_layer(self) -> np.ndarray:
        """The layer index of each slab between level k and k + 1."""
        bounds = np.asarray([0, *self.top_level])
        return np.repeat(np.arange(len(self.layers)), np.diff(bounds))

    def cell_tags(self, level: np.ndarray, quad: np.ndarray) -> np.ndarray:
        """The tag of the hexahedra over plan quads ``quad`` in slabs ``level``: ``<layer>`` where
        the slab's layer covers the quad's fragment, else ``<layer>_absent``."""
        layer = self.level_layer()[level]
        names = np.array([[self.names.get(nm, -1) for nm in (ly, f"{ly}_absent")] for ly in self.layers])
        present = self.present[layer, self.quad_frag[quad]]
        return np.where(present, names[layer, 0], names[layer, 1]).astype(np.int32)

    def cells(self, q: slice):
        """Hexahedra (gmsh node order) of the plan quads ``q`` through every slab, slab by slab."""
        quads = self.quads[q]
        return np.concatenate([np.hstack([k * self.nn + quads, (k + 1) * self.nn + quads])
                               for k in range(len(self.levels) - 1)])

    def facets(self, q: slice, share):
        """Tagged quadrilateral facets: the bottom, top and interfaces under the plan quads ``q``,
        and the plate's sides of ``share(m)`` (a slice of m boundary segments) through every slab."""
        quads, frag = self.quads[q], self.quad_frag[q]
        nl = len(self.levels)
        ents, vals = [], []

        def add(nm, conn):
            if nm in self.names and len(conn):
                ents.append(conn)
                vals.append(np.full(len(conn), self.names[nm], dtype=np.int32))

        add("bottom", quads)
        add("top", (nl - 1) * self.nn + quads)
        for li, (lo, up) in enumerate(itertools.pairwise(self.layers)):
            both = self.present[li, frag] & self.present[li + 1, frag]
            add(f"{lo}|{up}", self.top_level[li] * self.nn + quads[both])
        for nm in _EDGE_TAGS:
            if nm in self.sides:
                e = self.sides[nm][share(len(self.sides[nm]))]
                add(nm, np.concatenate([np.column_stack([k * self.nn + e[:, 0], k * self.nn + e[:, 1],
                                                         (k + 1) * self.nn + e[:, 1], (k + 1) * self.nn + e[:, 0]])
                                        for k in range(nl - 1)]))
        if not ents:
            return np.zeros((0, 4), dtype=np.int64), np.zeros(0, dtype=np.int32)
        return np.concatenate(ents).astype(np.int64), np.concatenate(vals)

    def nodes(self, ids: np.ndarray) -> np.ndarray:
        """Coordinates (m) of the nodes ``ids``."""
        k, j = np.divmod(ids, self.nn)
        return np.column_stack([self.x2[j] / MM, self.levels[k] / MM])

    def write_msh(self, gmsh, path) -> None:
        """The whole stack as a discrete gmsh model with its physical groups, written to ``path``
        (cells group by group, fragment by fragment, slab by slab: the files shipped in meshes/)."""
        gmsh.model.remove()
        gmsh.model.add(f"femion_stack_{time.monotonic_ns()}")
        model = gmsh.model
        nn, nl = self.nn, len(self.levels)
        X = np.empty((nl * nn, 3))
        for k, z in enumerate(self.levels):
            X[k * nn:(k + 1) * nn, :2] = self.x2
            X[k * nn:(k + 1) * nn, 2] = z
        starts = np.concatenate([[0], np.cumsum(np.bincount(self.quad_frag, minlength=len(self.frag)))])
        quads = [self.quads[starts[f]:starts[f + 1]] for f in range(len(self.frag))]
        entity = 0

        def add_group(dim, elem_type, conns, name):
            nonlocal entity
            entity += 1
            ent = model.addDiscreteEntity(dim, entity)
            if entity == 1 and dim == 3:
                model.mesh.addNodes(3, ent, np.arange(1, nl * nn + 1), X.ravel())
            model.mesh.addElementsByType(ent, elem_type, [], (np.vstack(conns) + 1).ravel())
            model.addPhysicalGroup(dim, [ent], self.names[name], name=name)

        lev = 0
        for li, name in enumerate(self.layers):
            for key, present in ((name, True), (f"{name}_absent", False)):
                conns = [np.hstack([k * nn + quads[f], (k + 1) * nn + quads[f]])
                         for f in range(len(self.frag)) if self.present[li, f] == present
                         for k in range(lev, self.top_level[li])]
                if conns:
                    add_group(3, 5, conns, key)
            lev = self.top_level[li]
        facets, ftags = self.facets(slice(None), lambda m: slice(None))
        for nm in self.facet_names:
            add_group(2, 3, [facets[ftags == self.names[nm]]], nm)
        gmsh.write(str(path))


def _stack_tags(msh, stack: _Stack, quad_shares: list[slice]):
    """Cell and facet tags of the extruded stack ``msh``, found locally on each rank: a cell's tag
    from its input index (rank r gave the hexahedra of its plan quads ``quad_shares[r]``, slab by
    slab), the facets from their place: bottom, top and the plate's sides on the boundary planes,
    an interface at its level between cells of the two present layers."""
    tdim = msh.topology.dim
    n_cells = msh.topology.index_map(tdim).size_local + msh.topology.index_map(tdim).num_ghosts
    nl = len(stack.levels)
    sizes = np.array([(sh.stop - sh.start) * (nl - 1) for sh in quad_shares])
    starts = np.array([sh.start for sh in quad_shares])
    original = np.asarray(msh.topology.original_cell_index, dtype=np.int64)[:n_cells]
    rank = np.searchsorted(np.cumsum(sizes), original, side="right")
    pos = original - (np.cumsum(sizes) - sizes)[rank]
    nq = sizes[rank] // (nl - 1)
    level, quad = np.divmod(pos, nq)
    values = stack.cell_tags(level, quad + starts[rank])
    cells = np.arange(n_cells, dtype=np.int32)
    cell_tags = dolfinx.mesh.meshtags(msh, tdim, cells, values)

    msh.topology.create_connectivity(tdim - 1, tdim)
    z = stack.levels / MM
    tol = 1e-3 * float(np.min(np.diff(z)))
    L, W = (stack.x2.max(axis=0) - stack.x2.min(axis=0)) / MM
    x0 = stack.x2.min(axis=0) / MM
    f_ents, f_vals = [], []

    def add(nm, facets):
        if nm in stack.names and len(facets):
            f_ents.append(facets)
            f_vals.append(np.full(len(facets), stack.names[nm], dtype=np.int32))

    def on_plane(axis, value):
        return lambda x: np.abs(x[axis] - value) < tol

    add("bottom", dolfinx.mesh.locate_entities_boundary(msh, tdim - 1, on_plane(2, z[0])))
    add("top", dolfinx.mesh.locate_entities_boundary(msh, tdim - 1, on_plane(2, z[-1])))
    f_to_c = msh.topology.connectivity(tdim - 1, tdim)
    for li, (lo, up) in enumerate(itertools.pairwise(stack.layers)):
        if f"{lo}|{up}" not in stack.names:
            continue
        facets = dolfinx.mesh.locate_entities(msh, tdim - 1, on_plane(2, z[stack.top_level[li]]))
        off = f_to_c.offsets
        two = off[facets + 1] - off[facets] == 2  # interior (the interface's facets on a rank's edge too)
        facets = facets[two]
        pairs = f_to_c.array[off[facets][:, None] + np.arange(2)]
        tags = np.sort(values[pairs], axis=1)
        want = np.sort([stack.names[lo], stack.names[up]])
        add(f"{lo}|{up}", facets[np.all(tags == want, axis=1)])
    for nm, (axis, value) in {"x_min": (0, x0[0]), "x_max": (0, x0[0] + L),
                              "y_min": (1, x0[1]), "y_max": (1, x0[1] + W)}.items():
        if nm in stack.sides:
            add(nm, dolfinx.mesh.locate_entities_boundary(msh, tdim - 1, on_plane(axis, value)))
    ents = np.concatenate(f_ents).astype(np.int32) if f_ents else np.zeros(0, np.int32)
    vals = np.concatenate(f_vals) if f_vals else np.zeros(0, np.int32)
    order = np.argsort(ents)
    return cell_tags, dolfinx.mesh.meshtags(msh, tdim - 1, ents[order], vals[order])


def _stack_arrays_everywhere(spec: StackSpec, layout: PlanLayout, comm, cache: Path | None):
    """The plan arrays of the stack (:func:`_plan_arrays`, mm) meshed by gmsh on rank 0 or read from
    the cache, broadcast to every rank (errors raised on every rank, no deadlock)."""
    arrays, err = None, None
    if comm.rank == 0:
        try:
            arrays = _load_arrays(cache)
            if arrays is None:
                with _Gmsh(f"femion_{time.monotonic_ns()}") as gmsh:
                    arrays = _plan_arrays(gmsh, spec, layout)
                _store_arrays(cache, arrays)
        except Exception as e:  # any failure: re-raised on every rank below
            arrays, err = None, f"{type(e).__name__}: {e}"
    arrays, err = comm.bcast((arrays, err), root=0)
    if err is not None:
        raise GeometryError(err)
    return arrays


def _load_arrays(cache: Path | None):
    if cache is None or not cache.exists():
        return None
    try:
        with open(cache, "rb") as f:
            arrays = pickle.load(f)
        _touch(cache)
        return arrays
    except Exception:  # a damaged cache entry: mesh again (and store it again)
        return None


def _store_arrays(cache: Path | None, arrays) -> None:
    """Write the stack's plan ``arrays`` to the cache (atomically; skipped if it cannot be written)."""
    if cache is not None:
        _write_entry([(cache, _pickle_to(arrays))])


def build_stack_mesh(spec: StackSpec, comm=MPI.COMM_WORLD, msh_path=None) -> StackMesh:
    """3D hexahedral stack mesh: the quad plan mesh extruded layer by layer (metres).

    gmsh meshes the plan on rank 0 (or the mesh cache holds it); every rank receives the plan and
    extrudes its share of the plan quads through the ``layer.elements`` hexahedra of each layer,
    with its share of the nodes, and DOLFINx partitions the cells of all ranks: no rank holds the
    whole 3D mesh. ``msh_path``: rank 0 also writes the whole stack there as a gmsh model.
    """
    import basix.ufl
    import ufl

    layout = _layout_everywhere(spec, comm)
    cache = _cache_file("stack", spec, msh_path)
    stack = _Stack(spec, layout, _stack_arrays_everywhere(spec, layout, comm, cache and cache.with_suffix(".pkl")))
    if msh_path is not None and comm.rank == 0:
        with _Gmsh(f"femion_{time.monotonic_ns()}") as gmsh:
            stack.write_msh(gmsh, msh_path)

    def share(m: int, rank: int = comm.rank) -> slice:
        return slice(m * rank // comm.size, m * (rank + 1) // comm.size)

    def share_of(rank: int) -> slice:
        return share(len(stack.quads), rank)

    q = share(len(stack.quads))
    hexes = stack.cells(q)
    perm = dolfinx.io.gmsh.cell_perm_array(dolfinx.mesh.CellType.hexahedron, 8)
    n_all = len(stack.levels) * stack.nn
    own = share(n_all)
    x = stack.nodes(np.arange(own.start, own.stop, dtype=np.int64))
    domain = ufl.Mesh(basix.ufl.element("Lagrange", "hexahedron", 1, shape=(3,)))
    partitioner = dolfinx.mesh.create_cell_partitioner(dolfinx.mesh.GhostMode.shared_facet, 2)
    msh = dolfinx.mesh.create_mesh(comm, np.ascontiguousarray(hexes[:, perm]), domain, x, partitioner)
    cell_tags, facet_tags = _stack_tags(msh, stack, [share_of(r) for r in range(comm.size)])
    return StackMesh(msh, cell_tags, facet_tags, stack.names, layer_z(spec), layout)


# ----------------------------------------------------------------- section


def _section_intervals(spec: StackSpec, layout: PlanLayout, y: float):
    """x-intervals of the section line and the names containing each one."""
    line = shapely.geometry.LineString([(0.0, y), (spec.length, y)])
    xs = {0.0, spec.length}
    for geom in layout.shapes.values():
        inter = line.intersection(geom)
        for g in getattr(inter, "geoms", [inter]):
            if g.is_empty:
                continue
            for xx, _ in np.asarray(g.coords) if g.geom_type != "Point" else [(g.x, g.y)]:
                xs.add(min(max(float(xx), 0.0), spec.length))
    xs = sorted(xs)
    merge = 1e-6 * spec.cell_size
    pts = [xs[0]]
    for x in xs[1:]:
        if x - pts[-1] > merge:
            pts.append(x)
    pts[-1] = spec.length
    out = []
    for a, b in itertools.pairwise(pts):
        mid = shapely.geometry.Point(0.5 * (a + b), y)
        names = frozenset(n for n, g in layout.shapes.items() if g.contains(mid))
        out.append((a, b, names))
    return tuple(out)


def build_section_mesh(spec: StackSpec, comm=MPI.COMM_WORLD, msh_path=None) -> StackMesh:
    """2D structured quad mesh of the x-z cross-section at ``y = section_y`` (metres).

    The mesh's coordinates are ``(x, z)``.
    """
    layout = _layout_everywhere(spec, comm)
    y = spec.width / 2 if spec.section_y is None else spec.section_y
    intervals = _section_intervals(spec, layout, y)
    zs = layer_z(spec)

    def build(gmsh):
        geo, model = gmsh.model.geo, gmsh.model
        xb = [a for a, _, _ in intervals] + [intervals[-1][1]]
        zb = [0.0, *(zs[layer.name][1] for layer in spec.layers)]
        nx, nz = len(xb), len(zb)
        P = [[geo.addPoint(x * MM, z * MM, 0.0) for z in zb] for x in xb]
        # horizontal lines h[i][j]: (x_i, z_j) -> (x_i+1, z_j); vertical v[i][j]: z_j -> z_j+1
        h = [[geo.addLine(P[i][j], P[i + 1][j]) for j in range(nz)] for i in range(nx - 1)]
        v = [[geo.addLine(P[i][j], P[i][j + 1]) for j in range(nz - 1)] for i in range(nx)]
        S = []
        for i in range(nx - 1):
            col = []
            for j in range(nz - 1):
                loop = geo.addCurveLoop([h[i][j], v[i + 1][j], -h[i][j + 1], -v[i][j]])
                col.append(geo.addPlaneSurface([loop]))
            S.append(col)
        geo.synchronize()
        hmm = spec.cell_size * MM
        for i in range(nx - 1):
            n = max(1, int(round((xb[i + 1] - xb[i]) * MM / hmm)))
            for j in range(nz):
                model.mesh.setTransfiniteCurve(h[i][j], n + 1)
        for j, layer in enumerate(spec.layers):
            for i in range(nx):
                model.mesh.setTransfiniteCurve(v[i][j], int(layer.elements) + 1)
        for col in S:
            for s in col:
                model.mesh.setTransfiniteSurface(s)
                model.mesh.setRecombine(2, s)
        model.mesh.generate(2)
        if _count_triangles(gmsh):
            raise GeometryError("section mesh has triangles")
        names: dict[str, int] = {}
        tag = 1
        for j, layer in enumerate(spec.layers):
            pres = [S[i][j] for i in range(nx - 1) if _present(layout, layer.name, intervals[i][2])]
            absn = [S[i][j] for i in range(nx - 1) if not _present(layout, layer.name, intervals[i][2])]
            for nm, group in ((layer.name, pres), (f"{layer.name}_absent", absn)):
                if group:
                    model.addPhysicalGroup(2, group, tag, name=nm)
                    names[nm] = tag
                    tag += 1
        groups = {
            "bottom": [h[i][0] for i in range(nx - 1)],
            "top": [h[i][nz - 1] for i in range(nx - 1)],
            "x_min": list(v[0]),
            "x_max": list(v[nx - 1]),
        }
        for j in range(len(spec.layers) - 1):
            lo, up = spec.layers[j].name, spec.layers[j + 1].name
            groups[f"{lo}|{up}"] = [
                h[i][j + 1] for i in range(nx - 1)
                if _present(layout, lo, intervals[i][2]) and _present(layout, up, intervals[i][2])
            ]
        ftag = 1
        for nm, curves in groups.items():
            if curves:
                model.addPhysicalGroup(1, curves, ftag, name=nm)
                names[nm] = ftag
                ftag += 1
        if msh_path is not None:
            gmsh.write(str(msh_path))
        info = names
        return info

    data, names = _run_on_root(comm, 2, build, _cache_file("section", spec, msh_path))
    return StackMesh(data.mesh, data.cell_tags, data.facet_tags, names, zs, layout, intervals)
