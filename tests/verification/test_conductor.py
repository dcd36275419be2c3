"""Conductor sheets: strip resistance, uniform current, conservation, the "2" track, B over the track."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.constants import mu_0
from shapely.geometry import Point

from femion.config import load_case
from femion.geometry import mesh as geometry
from femion.geometry import plan
from femion.geometry.spec import two_track_pattern
from femion.magnetic.biot_savart import SheetCurrent, magnetic_flux_density, panel_field_exact
from femion.runner.sheets import interface_field, interface_of, solve_conductors

from ..conftest import CASES


def solve(case_name: str, comm, *overrides: str):
    case = load_case(CASES / f"{case_name}.yaml", list(overrides))
    plan_mesh = geometry.build_plan_mesh(plan.stack_spec(case), comm)
    return case, plan_mesh, solve_conductors(case, plan_mesh)


@pytest.mark.mpi
@pytest.mark.parametrize("solver", ["direct", "iterative"])
def test_strip_resistance_is_20_ohm(comm, solver):
    """R = R_s·L/W = 8·50/20 = 20 Ω within 0.1 % (on 1 and 2 ranks, direct and CG+GAMG)."""
    _, _, (sol,) = solve("strip_drive", comm, "mesh.cell_size=1 mm", f"mesh.solver={solver}")
    assert sol.resistance == pytest.approx(20.0, rel=1e-3)
    assert sol.voltage == pytest.approx(0.2 * 20.0, rel=1e-3)


@pytest.mark.mpi
def test_strip_sheet_current_is_uniform(comm):
    """K = I/W along x in every cell of the strip; Joule power = I²R."""
    _, _, (sol,) = solve("strip_drive", comm, "mesh.cell_size=1 mm")
    K = sol.sheet_current.x.array.reshape(-1, 2)
    assert np.allclose(K[:, 0], 0.2 / 0.02, rtol=1e-8)
    assert np.allclose(K[:, 1], 0.0, atol=1e-8 * 10.0)
    assert sol.joule_power == pytest.approx(0.2**2 * sol.resistance, rel=1e-9)


@pytest.mark.mpi
def test_strip_current_reverses_and_voltage_control(comm):
    """A negative current reverses φ_s and K; a 4 V drive gives 0.2 A."""
    _, _, (neg,) = solve("strip_drive", comm, "mesh.cell_size=1 mm", "drives[0].current=-0.2 A")
    assert neg.voltage == pytest.approx(-4.0, rel=1e-3)
    assert np.allclose(neg.sheet_current.x.array.reshape(-1, 2)[:, 0], -10.0, rtol=1e-8)
    _, _, (v,) = solve("strip_drive", comm, "mesh.cell_size=1 mm", "drives[0]={conductor: bottom_ito, from: left, "
                       "to: right, voltage: 4 V}")
    assert v.current == pytest.approx(0.2, rel=1e-3)


@pytest.mark.mpi
def test_two_track_current_conserved_across_cuts(comm):
    """The drive current crosses every cut of the "2" track (arc-length cuts) within 0.1 %."""
    _, _, (sol,) = solve("two_track_drive", comm, "mesh.cell_size=0.5 mm")
    track = two_track_pattern(0.05, 0.02, 3e-3, margin=2e-3)
    line = track.centreline
    for frac in (0.15, 0.35, 0.5, 0.65, 0.85):
        s_cut = frac * line.length

        def downstream(x, s_cut=s_cut):
            return np.array([line.project(Point(px, py)) > s_cut for px, py in zip(x[0], x[1], strict=True)])

        assert sol.current_into(downstream) == pytest.approx(0.02, rel=1e-3), frac


def test_two_track_resistance_converges(comm):
    """The "2" track's resistance at 0.5 mm cells agrees with a 4x refined mesh within 1 %, and converges."""
    R = {}
    for h in ("0.5 mm", "0.25 mm", "0.125 mm"):
        _, _, (sol,) = solve("two_track_drive", comm, f"mesh.cell_size={h}")
        R[h] = sol.resistance
    fine = R["0.125 mm"]
    assert abs(R["0.5 mm"] - fine) / fine < 1e-2
    assert abs(R["0.25 mm"] - fine) < abs(R["0.5 mm"] - fine) + 1e-12 * fine
    # squares of track: R / R_s is a geometric property, of order length/width (~10-20 squares)
    assert 5 < fine / 8.0 < 30


@pytest.mark.mpi
def test_B_over_two_track_is_perpendicular_to_current(comm):
    """0.6 µm above the "2" track, B_t = (µ0/2) K × ẑ: perpendicular to the local current, within 2 %."""
    _, _, (sol,) = solve("two_track_drive", comm, "mesh.cell_size=0.5 mm")
    panels = sol.panels()
    centroids = panels.vertices.mean(axis=1)
    track = two_track_pattern(0.05, 0.02, 3e-3, margin=2e-3).polygon
    pads = two_track_pattern(0.05, 0.02, 3e-3, margin=2e-3)
    inner = track.buffer(-0.75e-3).difference(pads.start_pad.buffer(1e-3)).difference(pads.end_pad.buffer(1e-3))
    keep = plan.points_in(inner, centroids[:, 0], centroids[:, 1], 0.0)
    # keep well inside, away from the pads, where the current is along the track
    assert keep.sum() > 50
    pts = np.c_[centroids[keep], np.full(keep.sum(), sol.z + 0.6e-6)]
    B = magnetic_flux_density([panels], pts)
    K = panels.sheet_current[keep]
    expected = 0.5 * mu_0 * np.c_[K[:, 1], -K[:, 0]]  # (µ0/2) K × ẑ
    err = np.linalg.norm(B[:, :2] - expected, axis=1) / np.linalg.norm(expected, axis=1)
    assert err.max() < 2e-2
    cosang = np.abs(np.sum(B[:, :2] * K, axis=1)) / (np.linalg.norm(B[:, :2], axis=1) * np.linalg.norm(K, axis=1))
    assert cosang.max() < 2e-2


@pytest.mark.mpi
@pytest.mark.parametrize("method", ["fmm", "grid"])
@pytest.mark.parametrize("tolerance", [1e-2, 1e-4])
def test_interface_B_split_across_ranks(comm, tolerance, method):
    """B on the interface, each rank evaluating its own nodes from the panels of all ranks (the
    FMM's sources split across the ranks; or the grid's spreading split and its grids summed),
    equals B of all nodes at once (what one rank computes) and the exact field of the uniform strip,
    within the tolerance, on 1 and 2 ranks; every rank has its share of the nodes."""
    case, plan_mesh, (sol,) = solve("strip_drive", comm, "mesh.cell_size=0.5 mm", f"magnetic.method={method}",
                                    f"magnetic.tolerance={tolerance}")
    sheets = [sol.panels()]
    assert sheets[0].n_panels == plan_mesh.mesh.topology.index_map(2).size_global  # gathered on every rank
    itf = interface_of(case)
    B, _, n_total = interface_field(case, plan_mesh, sheets, itf)
    n_owned = B.function_space.dofmap.index_map.size_local
    assert n_owned > 0.3 * n_total / comm.size
    mine = B.x.array[: 3 * n_owned].reshape(-1, 3)
    xy = B.function_space.tabulate_dof_coordinates()[:n_owned, :2]
    x_all = np.vstack(comm.allgather(np.c_[xy, np.full(n_owned, itf.z)]))
    offset = sum(comm.allgather(n_owned)[: comm.rank])
    at_once = magnetic_flux_density(sheets, x_all, method=method, tolerance=tolerance)[offset : offset + n_owned]
    size = np.linalg.norm(at_once, axis=1)
    assert np.max(np.linalg.norm(mine - at_once, axis=1) / size) < tolerance
    plate = case.geometry.plate
    whole = SheetCurrent(np.array([[[0, 0], [plate.length, 0], [plate.length, plate.width], [0, plate.width]]]),
                         np.array([[sol.current / plate.width, 0.0]]), sol.z)
    exact = panel_field_exact(whole, x_all[offset : offset + n_owned])
    assert np.max(np.linalg.norm(mine - exact, axis=1) / np.linalg.norm(exact, axis=1)) < tolerance
