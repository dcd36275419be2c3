"""Tests of the "grid" path of B (femion.magnetic.p3m): screened point sources convolved on a
uniform grid by FFT, exact panels near each target."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.constants import mu_0

from femion.magnetic import p3m
from femion.magnetic.biot_savart import (
    GRID_LEVELS,
    GridAccuracy,
    SheetCurrent,
    chosen_method,
    grid_accuracy_for,
    magnetic_flux_density,
    panel_field_exact,
)
from femion.magnetic.p3m import screen

from .test_magnetic import (
    I0,
    STRIP_1MM,
    pointwise_error,
    quads_to_triangles,
    ring_track,
    strip_quads,
    strip_targets,
    whole_strip,
)


def _grid_error(sheet, h, tolerance=None, accuracy=None, n_random=300):
    x = strip_targets(h, n_random=n_random)
    B = magnetic_flux_density([sheet], x, method="grid", tolerance=tolerance or 1e-2, accuracy=accuracy)
    return pointwise_error(B, panel_field_exact(whole_strip(), x))


@pytest.mark.parametrize("sheet", [STRIP_1MM, quads_to_triangles(STRIP_1MM)], ids=["quads", "triangles"])
@pytest.mark.parametrize("tolerance", sorted(GRID_LEVELS))
def test_each_grid_level_meets_its_tolerance(tolerance, sheet):
    """At each grid level, B of the 1 mm strip (quads, or split in triangles) is within the
    tolerance of the exact strip field at every target (0.6 µm up at every corner; h/3 … 1 mm up)."""
    assert _grid_error(sheet, 1e-3, tolerance) < tolerance


def test_grid_error_check_can_fail():
    """The check above sees too coarse settings: the 1 % level misses 1e-3, and a screen as
    narrow as the grid spacing misses 1 %."""
    assert _grid_error(STRIP_1MM, 1e-3, 1e-2) > 1e-3
    assert _grid_error(STRIP_1MM, 1e-3, accuracy=GridAccuracy(0.5, 0.75, 2, 1.0, 0.1)) > 1e-2


def test_grid_interpolation_converges_at_fourth_order():
    """The grid part alone (same screen, sources and near pairs): B at spacing H against B at
    H/2 falls as H⁴ (cubic Lagrange spreading and reading of a kernel smooth on the scale b),
    once H ≤ b/10 (measured: order 1.3 from H = b/2.5, 4.25 from b/10)."""
    x = strip_targets(1e-3, n_random=200)
    B = {s: magnetic_flux_density([STRIP_1MM], x, method="grid", accuracy=GridAccuracy(s, 2.0, 2, 1.0, 0.1))
         for s in (0.4, 0.2, 0.1)}
    d1 = np.abs(B[0.4] - B[0.2]).max()
    d2 = np.abs(B[0.2] - B[0.1]).max()
    rate = np.log2(d1 / d2)
    assert rate > 3.0, f"observed order {rate:.2f}"


def test_screen_is_smooth_and_cuts_the_singularity():
    """S(0) = 0 with S ~ 21t⁵, S = 1 from t = 1 on, S' and S'' continuous at 1, 0 ≤ S ≤ 1 rising."""
    t = np.linspace(0.0, 1.5, 3001)
    S = screen(t)
    assert S[0] == 0.0 and np.all(S[t >= 1.0] == 1.0) and np.all(np.diff(S) >= 0.0) and S.max() == 1.0
    assert screen(np.array([1e-3]))[0] / 1e-15 == pytest.approx(21.0, rel=1e-2)
    eps = 1e-5
    left = screen(np.array([1 - 2 * eps, 1 - eps, 1.0]))
    assert abs(left[2] - left[1]) / eps < 1e-6  # S'(1) = 0
    assert abs(left[2] - 2 * left[1] + left[0]) / eps**2 < 1e-2  # S''(1) = 0: the difference is ~210·ε


def test_grid_matches_direct_for_two_sheets_and_two_planes():
    """Two sheets (1 mm quads at z = 0; 5 mm triangles 0.3 mm below carrying the return current)
    and targets in two planes (0.6 µm above the top sheet, and between the sheets, 0.2 mm over the
    5 mm panels): each sheet's B by the grid path equals its all-pairs exact B to the tolerance
    wherever |B| ≥ 0.3 max|B|, to tol·max|B| elsewhere (the tolerance's meaning: per sheet); B of
    both is the sum of the two, each sheet on its own grid."""
    top = strip_quads(h=1e-3)
    ret = quads_to_triangles(strip_quads(h=5e-3, current=-I0, z=-0.3e-3))
    rng = np.random.default_rng(3)
    n = 5000
    xy = np.c_[rng.uniform(-30e-3, 30e-3, 2 * n), rng.uniform(-15e-3, 15e-3, 2 * n)]
    x = np.c_[xy, np.r_[np.full(n, 0.6e-6), np.full(n, -0.1e-3)]]
    for tol in sorted(GRID_LEVELS):
        each = []
        for sheet in (top, ret):
            Bd = magnetic_flux_density([sheet], x, method="direct")
            size = np.linalg.norm(Bd, axis=1)
            strong = size >= 0.3 * size.max()
            B = magnetic_flux_density([sheet], x, method="grid", tolerance=tol)
            err = np.linalg.norm(B - Bd, axis=1)
            assert err.max() < tol * size.max()
            assert (err[strong] / size[strong]).max() < tol
            each.append(B)
        both = magnetic_flux_density([top, ret], x, method="grid", tolerance=tol)
        np.testing.assert_allclose(both, each[0] + each[1], rtol=0, atol=1e-12 * np.abs(both).max())


def test_ampere_loop_on_the_grid_path():
    """Ampère: ∮B·dl = μ0·I around one leg of a closed sheet circuit, with B by the grid path
    (the loop's horizontal sides in two planes; its vertical sides many heights, each its own
    FFT convolution)."""
    sheets = ring_track()
    A, w = 40e-3, 6e-3
    y0, y1, z0, z1 = -4e-3, w + 4e-3, -2e-3, 2e-3
    g, wg = np.polynomial.legendre.leggauss(32)
    total = 0.0
    for (ya, za), (yb, zb) in [((y0, z0), (y1, z0)), ((y1, z0), (y1, z1)), ((y1, z1), (y0, z1)), ((y0, z1), (y0, z0))]:
        t = 0.5 * (g + 1)
        pts = np.c_[np.full_like(t, A / 2), ya + t * (yb - ya), za + t * (zb - za)]
        B = magnetic_flux_density(sheets, pts, method="grid")
        total += np.sum(0.5 * wg * (B @ np.array([0.0, yb - ya, zb - za])))
    assert total == pytest.approx(mu_0 * I0, rel=1e-2)


def test_blocks_give_the_same_B(monkeypatch):
    """Spreading and reading in blocks of points, the near field in blocks of targets: blocks of 7
    give the B of one block, to the float32 round-off of the FFT."""
    x = strip_targets(1e-3, n_random=100)
    one = magnetic_flux_density([STRIP_1MM], x, method="grid")
    monkeypatch.setattr(p3m, "_POINT_BLOCK", 7)
    monkeypatch.setattr(p3m, "_NEAR_BLOCK_TARGETS", 7)
    blocks = magnetic_flux_density([STRIP_1MM], x, method="grid")
    np.testing.assert_allclose(blocks, one, rtol=0, atol=1e-6 * np.abs(one).max())


def test_auto_takes_the_grid_for_a_few_planes_and_the_fmm_otherwise():
    """"auto": direct for few pairs; the grid for ≥ 2e6 pairs in ≤ 4 planes over the sheets at a
    tolerance with a grid level; the fmm for many heights, far targets, or a tolerance of 1e-5."""
    sheet = strip_quads(h=0.5e-3)  # 4000 panels
    x = strip_targets(0.5e-3, n_random=0)  # 4221 corners, one plane
    assert chosen_method([sheet], x[:10]) == "direct"
    assert chosen_method([sheet], x) == "grid"
    assert chosen_method([sheet], x, tolerance=1e-4) == "grid" and grid_accuracy_for(1e-4) == GRID_LEVELS[1e-4]
    assert chosen_method([sheet], x, tolerance=1e-5) == "fmm" and grid_accuracy_for(1e-5) is None
    many = x.copy()
    many[:, 2] = np.linspace(1e-6, 1e-3, x.shape[0])
    assert chosen_method([sheet], many) == "fmm"
    far = x.copy()
    far[0, :2] = [10.0, 10.0]  # 10 m away: a grid over it would hold ~1e10 nodes
    assert chosen_method([sheet], far) == "fmm"


def test_grid_level_refused_where_none_is_measured():
    """Asking the grid path for a tolerance tighter than its levels is a ValueError naming them."""
    with pytest.raises(ValueError, match="no grid level"):
        magnetic_flux_density([STRIP_1MM], np.array([[0.0, 0.0, 1e-3]]), method="grid", tolerance=1e-6)


def test_grid_of_a_single_panel_is_its_exact_field():
    """One panel, near and far targets: B within the tolerance of the exact panel field."""
    square = np.array([[[0.0, 0.0], [1e-3, 0.0], [1e-3, 1e-3], [0.0, 1e-3]]])
    sheet = SheetCurrent(square, np.array([[100.0, 30.0]]), 0.0)
    x = np.array([[0.5e-3, 0.5e-3, 0.6e-6], [0.0, 0.0, 1e-6], [1.2e-3, 0.4e-3, 0.3e-3], [5e-3, 5e-3, 1e-3]])
    B = magnetic_flux_density([sheet], x, method="grid")
    exact = panel_field_exact(sheet, x)
    assert pointwise_error(B, exact) < 1e-2


@pytest.mark.mpi
def test_degenerate_panel_raises_on_every_rank(comm):
    """A zero-length edge in one rank's share of the panels stops every rank with the same
    ValueError (no rank is left waiting in the grid's collectives); the panels split across the
    ranks give the B of one rank otherwise."""
    x = strip_targets(1e-3, n_random=0)
    mine = x[comm.rank :: comm.size]
    whole = magnetic_flux_density([STRIP_1MM], x, method="grid")[comm.rank :: comm.size]
    split = magnetic_flux_density([STRIP_1MM], mine, method="grid", comm=comm)
    np.testing.assert_allclose(split, whole, rtol=0, atol=1e-6 * np.abs(whole).max())
    v = STRIP_1MM.vertices.copy()
    v[-1, 1] = v[-1, 0]  # the last panel (the last rank's share): a zero-length edge
    bad = SheetCurrent(v, STRIP_1MM.sheet_current, 0.0)
    with pytest.raises(ValueError, match="zero-length edge"):
        magnetic_flux_density([bad], mine, method="grid", comm=comm)
