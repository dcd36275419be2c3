"""Tests of femion.geometry: plan fragments, plan/stack/section meshes, the "2" track."""

from __future__ import annotations

import numpy as np
import pytest
from shapely.geometry import Point, box

from femion._dolfinx import MPI, dolfinx, ufl
from femion.geometry.mesh import build_plan_mesh, build_section_mesh, build_stack_mesh, plan_fragments
from femion.geometry.spec import GeometryError, LayerSpec, StackSpec, layer_z, two_track_pattern

MM = 1e-3
LX, LY = 50 * MM, 20 * MM


def _layers(coverage=None, track=None):
    return (
        LayerSpec("glass", 1.1 * MM),
        LayerSpec("sio2", 30e-9),
        LayerSpec("bottom_ito", 200e-9, pattern=track),
        LayerSpec("oxide", 500e-9),
        LayerSpec("electrolyte", 50e-6, pattern=coverage, elements=2),
        LayerSpec("top_ito", 200e-9),
        LayerSpec("top_glass", 1.1 * MM),
    )


def _integral(mesh, measure):
    one = dolfinx.fem.Constant(mesh, 1.0)
    local = dolfinx.fem.assemble_scalar(dolfinx.fem.form(one * measure))
    return mesh.comm.allreduce(local, op=MPI.SUM)


def _cells_area(pm, name, cells=None):
    """Global area of the plan cells named `name` (or of local `cells`; owned cells counted once)."""
    tdim = pm.mesh.topology.dim
    cells = pm.cells(name) if cells is None else cells
    tags = dolfinx.mesh.meshtags(pm.mesh, tdim, cells, np.ones(len(cells), dtype=np.int32))
    return _integral(pm.mesh, ufl.Measure("dx", domain=pm.mesh, subdomain_data=tags)(1))


def _volume(sm, name):
    dx = ufl.Measure("dx", domain=sm.mesh, subdomain_data=sm.cell_tags)
    return _integral(sm.mesh, dx(sm.names[name]))


def _facet_area(sm, name, interior=True):
    kind = "dS" if interior else "ds"
    m = ufl.Measure(kind, domain=sm.mesh, subdomain_data=sm.facet_tags)
    return _integral(sm.mesh, m(sm.names[name]))


def _strip_spec(coverage=None, cell=2 * MM, regions=None):
    return StackSpec(LX, LY, _layers(coverage), regions or {}, cell)


def test_strip_volumes_and_interfaces():
    """Full-layer strip: each layer's volume is thickness x plate area, oxide|electrolyte is the plate, all quads."""
    spec = _strip_spec()
    pm = build_plan_mesh(spec, MPI.COMM_WORLD)
    assert pm.mesh.topology.cell_type == dolfinx.mesh.CellType.quadrilateral
    assert abs(_cells_area(pm, "oxide") - LX * LY) < 1e-12 * LX * LY
    sm = build_stack_mesh(spec, MPI.COMM_WORLD)
    assert sm.mesh.topology.cell_type == dolfinx.mesh.CellType.hexahedron
    assert not any(n.endswith("_absent") for n in sm.names)
    for layer in spec.layers:
        v = _volume(sm, layer.name)
        assert abs(v - layer.thickness * LX * LY) <= 1e-10 * layer.thickness * LX * LY, layer.name
    assert abs(_facet_area(sm, "oxide|electrolyte") - LX * LY) < 1e-10 * LX * LY
    assert abs(_facet_area(sm, "bottom", interior=False) - LX * LY) < 1e-10 * LX * LY
    z = layer_z(spec)
    assert z["glass"] == (0.0, 1.1 * MM) and sm.layer_z == z
    # the stack's top is the top glass's top surface (the highest node over all ranks)
    x = sm.mesh.geometry.x
    top = sm.mesh.comm.allreduce(x[:, 2].max() if len(x) else -np.inf, op=MPI.MAX)
    assert top == pytest.approx(z["top_glass"][1], rel=1e-12)


@pytest.mark.parametrize(
    "shape, rel",
    [(box(10 * MM, 4 * MM, 30 * MM, 16 * MM), 1e-10), (Point(25 * MM, 10 * MM).buffer(6 * MM, quad_segs=16), 1e-2)],
    ids=["rectangle", "circle"],
)
def test_coverage_area(shape, rel):
    """Electrolyte coverage: plan cells and the 3D oxide|electrolyte interface have the shapely area."""
    spec = _strip_spec(shape)
    exact = np.pi * (6 * MM) ** 2 if rel > 1e-9 else shape.area
    layout = plan_fragments(spec)
    meshed = layout.shapes["electrolyte"].area
    assert abs(meshed - exact) < rel * exact
    pm = build_plan_mesh(spec, MPI.COMM_WORLD)
    assert abs(_cells_area(pm, "electrolyte") - meshed) < 1e-10 * meshed
    assert abs(_cells_area(pm, "oxide") - LX * LY) < 1e-10 * LX * LY
    sm = build_stack_mesh(spec, MPI.COMM_WORLD)
    assert abs(_facet_area(sm, "oxide|electrolyte") - meshed) < 1e-10 * meshed
    t = 50e-6
    assert abs(_volume(sm, "electrolyte") - t * meshed) < 1e-10 * t * meshed
    assert abs(_volume(sm, "electrolyte_absent") - t * (LX * LY - meshed)) < 1e-10 * t * LX * LY
    assert "electrolyte|top_ito" in sm.names and "oxide|electrolyte_absent" not in sm.names


def test_section_layers_and_intervals(tmp_path):
    """2D section: each layer (present + absent) has area thickness x Lx; the coverage interval is right."""
    cov = box(10 * MM, 4 * MM, 30 * MM, 16 * MM)
    spec = _strip_spec(cov, regions={"contact": box(-5 * MM, 0, 3 * MM, LY)})
    msh = tmp_path / "section.msh"
    se = build_section_mesh(spec, MPI.COMM_SELF, msh_path=msh)
    assert msh.stat().st_size > 0
    assert se.mesh.topology.cell_type == dolfinx.mesh.CellType.quadrilateral
    assert se.mesh.geometry.dim == 2
    for layer in spec.layers:
        a = _volume(se, layer.name)
        if layer.name + "_absent" in se.names:
            a += _volume(se, layer.name + "_absent")
        assert abs(a - layer.thickness * LX) < 1e-10 * layer.thickness * LX, layer.name
    assert abs(_volume(se, "electrolyte") - 50e-6 * 20 * MM) < 1e-10 * 50e-6 * 20 * MM
    assert abs(_facet_area(se, "oxide|electrolyte") - 20 * MM) < 1e-10 * 20 * MM
    xs = [(round(a / MM, 9), round(b / MM, 9), n) for a, b, n in se.intervals]
    assert xs == [
        (0.0, 3.0, frozenset({"contact"})),
        (3.0, 10.0, frozenset()),
        (10.0, 30.0, frozenset({"electrolyte"})),
        (30.0, 50.0, frozenset()),
    ]


def test_two_track():
    """The "2" track: one connected polygon, pads overlap its ends, plan cells have its area to 1e-8."""
    cell = 1 * MM
    tt = two_track_pattern(LX, LY, 3 * MM, cell_size=cell)
    poly = tt.polygon
    assert poly.geom_type == "Polygon" and poly.is_valid and len(poly.interiors) == 0
    assert box(0, 0, LX, LY).contains(poly)
    tw = 3 * MM
    ends = tt.centreline.coords[0], tt.centreline.coords[-1]
    for pad, end in zip((tt.start_pad, tt.end_pad), ends, strict=True):
        assert pad.contains(Point(end))
        assert 0.7 * tw * tw < pad.intersection(poly).area < 1.3 * tw * tw
    assert tt.start_pad.intersection(tt.end_pad).is_empty
    spec = StackSpec(LX, LY, _layers(track=poly), {"c_start": tt.start_pad, "c_end": tt.end_pad}, cell)
    pm = build_plan_mesh(spec, MPI.COMM_WORLD)
    area = _cells_area(pm, "bottom_ito")
    assert abs(area - poly.area) < 1e-8 * poly.area
    assert abs(_cells_area(pm, "c_end") - tt.end_pad.area) < 1e-8 * tt.end_pad.area
    # the end pad is meshed where it overlaps the track: those cells have the overlap's area (> 0.7 tw²)
    both = np.intersect1d(pm.cells("c_end"), pm.cells("bottom_ito"))
    overlap = pm.layout.shapes["c_end"].intersection(pm.layout.shapes["bottom_ito"]).area
    assert overlap > 0.7 * tw * tw
    assert abs(_cells_area(pm, "c_end", both) - overlap) < 1e-8 * overlap


def test_invalid_inputs():
    """Invalid input raises GeometryError naming the culprit (pattern outside plate, thickness <= 0, cell size)."""
    outside = box(60 * MM, 0, 70 * MM, 5 * MM)
    layers = list(_layers())
    layers[4] = LayerSpec("electrolyte", 50e-6, pattern=outside)
    with pytest.raises(GeometryError, match="electrolyte"):
        plan_fragments(StackSpec(LX, LY, tuple(layers), {}, 2 * MM))
    layers = list(_layers())
    layers[3] = LayerSpec("oxide", -1e-7)
    with pytest.raises(GeometryError, match="oxide"):
        plan_fragments(StackSpec(LX, LY, tuple(layers), {}, 2 * MM))
    with pytest.raises(GeometryError, match="pad"):
        plan_fragments(StackSpec(LX, LY, _layers(), {"pad": box(80 * MM, 0, 90 * MM, 1 * MM)}, 2 * MM))
    with pytest.raises(GeometryError, match="cell_size"):
        plan_fragments(StackSpec(LX, LY, _layers(), {}, 30 * MM))
    # a region touching the plate only along an edge adds nothing
    layout = plan_fragments(StackSpec(LX, LY, _layers(), {"edge": box(-5 * MM, 0, 0, LY)}, 2 * MM))
    assert "edge" not in layout.shapes and len(layout.fragments) == 1


def _patterned_spec(cell):
    """The strip stack with a "2" track under a round electrolyte patch, and the track's two pads."""
    tt = two_track_pattern(LX, LY, 3 * MM, cell_size=cell)
    cov = Point(25 * MM, 10 * MM).buffer(6 * MM, quad_segs=16)
    return StackSpec(LX, LY, _layers(cov, tt.polygon), {"c_start": tt.start_pad, "c_end": tt.end_pad}, cell)


def _measures(spec, comm):
    """Global layer volumes, interface areas and plan areas of the stack and plan meshes built on ``comm``."""
    sm = build_stack_mesh(spec, comm)
    layers = {layer.name for layer in spec.layers}
    vols = {n: _volume(sm, n) for n in sm.names if n in layers or n.endswith("_absent")}
    areas = {n: _facet_area(sm, n) for n in sm.names if "|" in n}
    pm = build_plan_mesh(spec, comm)
    plan = {n: _cells_area(pm, n) for n in ("bottom_ito", "electrolyte", "c_start", "c_end")}
    return vols, areas, plan


@pytest.mark.mpi
def test_parallel_volumes_match_serial():
    """Global layer volumes and interface areas on 2 ranks equal those on one rank to 1e-12."""
    if MPI.COMM_WORLD.size == 1:
        pytest.skip("compares COMM_WORLD with one rank: run under mpiexec -n 2 (./dev.sh test does)")
    spec = _patterned_spec(2 * MM)
    (v1, a1, p1), (v2, a2, p2) = _measures(spec, MPI.COMM_WORLD), _measures(spec, MPI.COMM_SELF)
    assert v1.keys() == v2.keys() and a1.keys() == a2.keys()
    for d1, d2 in ((v1, v2), (a1, a2), (p1, p2)):
        for k in d1:
            assert abs(d1[k] - d2[k]) <= 1e-12 * abs(d2[k]), k


@pytest.mark.mpi
def test_patterned_stack_interface_is_the_coverage():
    """On any number of ranks, oxide|electrolyte of the patterned stack has the electrolyte's plan area
    (1e-10), and a pattern off the plate raises GeometryError on every rank (no deadlock)."""
    _, areas, plan = _measures(_patterned_spec(2 * MM), MPI.COMM_WORLD)
    assert abs(areas["oxide|electrolyte"] - plan["electrolyte"]) < 1e-10 * plan["electrolyte"]
    bad = StackSpec(LX, LY, _layers(box(60 * MM, 0, 70 * MM, 5 * MM)), {}, 2 * MM)
    with pytest.raises(GeometryError, match="electrolyte"):
        build_stack_mesh(bad, MPI.COMM_WORLD)  # raised on every rank, no deadlock


def _mesh_summary(pm):
    """Global cell count, coordinate sum, cell and facet tag sums: equal for the same mesh."""
    comm = pm.mesh.comm
    n = pm.mesh.topology.index_map(pm.mesh.topology.dim).size_local
    return (pm.mesh.topology.index_map(pm.mesh.topology.dim).size_global,
            round(comm.allreduce(float(pm.mesh.geometry.x[: pm.mesh.geometry.index_map().size_local].sum()),
                                 op=MPI.SUM), 9),
            comm.allreduce(int(pm.cell_tags.values[pm.cell_tags.indices < n].sum()), op=MPI.SUM),
            sorted(pm.names.items()))


@pytest.mark.mpi
def test_mesh_cache_meshes_once_and_gives_the_same_mesh(shared_tmp, monkeypatch):
    """With FEMION_MESH_CACHE, the second plan and stack mesh of the same spec come from the cache
    (gmsh's mesher is not called again) and equal the first; another cell size meshes anew; an
    unwritable cache directory only means no cache (on 1 and 2 ranks)."""
    from femion.geometry import mesh as geometry

    monkeypatch.setenv("FEMION_MESH_CACHE", str(shared_tmp / "cache"))
    spec = StackSpec(LX, LY, _layers(coverage=box(3 * MM, 0, 47 * MM, LY)), {}, 2 * MM)
    first_plan, first_stack = build_plan_mesh(spec, MPI.COMM_WORLD), build_stack_mesh(spec, MPI.COMM_WORLD)
    cached = sorted(p.name.split("_")[0] + p.suffix for p in (shared_tmp / "cache").iterdir())
    assert cached == ["plan.info", "plan.msh", "stack.pkl"]  # the stack's plan arrays: it is extruded on every rank

    def no_meshing(*args):
        raise AssertionError("meshed although cached")

    monkeypatch.setattr(geometry, "_mesh_plan_quads", no_meshing)
    assert _mesh_summary(build_plan_mesh(spec, MPI.COMM_WORLD)) == _mesh_summary(first_plan)
    assert _mesh_summary(build_stack_mesh(spec, MPI.COMM_WORLD)) == _mesh_summary(first_stack)
    finer = StackSpec(LX, LY, spec.layers, {}, 1.5 * MM)
    with pytest.raises(GeometryError, match="meshed although cached"):
        build_plan_mesh(finer, MPI.COMM_WORLD)
    monkeypatch.undo()
    monkeypatch.setenv("FEMION_MESH_CACHE", "/proc/no-cache-here")
    assert _mesh_summary(build_plan_mesh(finer, MPI.COMM_WORLD))[0] > _mesh_summary(first_plan)[0]


def test_mesh_cache_keeps_to_its_size_cap(tmp_path, monkeypatch):
    """Beyond $FEMION_MESH_CACHE_MB the least recently used entries go: with room for about one
    plan entry, meshing a second spec evicts the first (and a loaded entry counts as used)."""
    from femion.geometry import mesh as geometry

    cache = tmp_path / "cache"
    monkeypatch.setenv("FEMION_MESH_CACHE", str(cache))
    spec = StackSpec(LX, LY, _layers(), {}, 2 * MM)
    build_plan_mesh(spec, MPI.COMM_SELF)
    one = sum(f.stat().st_size for f in cache.iterdir())
    monkeypatch.setenv("FEMION_MESH_CACHE_MB", str(1.5 * one / 1e6))
    first = set(cache.iterdir())
    other = StackSpec(LX, LY, _layers(), {}, 2.5 * MM)
    build_plan_mesh(other, MPI.COMM_SELF)
    left = set(cache.iterdir())
    assert not first & left and len(left) == 2  # the older entry went, the new one (.msh, .info) stays
    assert sum(f.stat().st_size for f in left) <= 1.5 * one
    geometry._prune(cache)  # under the cap: nothing goes
    assert set(cache.iterdir()) == left
