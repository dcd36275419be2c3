"""Tests of femion.magnetic.biot_savart: B of thin current sheets (analytic panels, FMM far field)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.constants import mu_0

from femion.magnetic.biot_savart import (
    ACCURACY_LEVELS,
    DEFAULT_TOLERANCE,
    Accuracy,
    SheetCurrent,
    accuracy_for,
    check_tolerance,
    magnetic_flux_density,
    panel_field_exact,
)

W = 20e-3  # strip width (y), m
L = 50e-3  # strip length (x), m
I0 = 0.2  # A


def strip_quads(width=W, length=L, h=0.5e-3, current=I0, z=0.0, clockwise=False):
    """Regular quad grid of the strip [-L/2, L/2] x [-W/2, W/2], uniform K = I/W along +x."""
    nx, ny = int(round(length / h)), int(round(width / h))
    xs = np.linspace(-length / 2, length / 2, nx + 1)
    ys = np.linspace(-width / 2, width / 2, ny + 1)
    X0, Y0 = np.meshgrid(xs[:-1], ys[:-1], indexing="ij")
    X1, Y1 = np.meshgrid(xs[1:], ys[1:], indexing="ij")
    X0, Y0, X1, Y1 = X0.ravel(), Y0.ravel(), X1.ravel(), Y1.ravel()
    v = np.stack([np.c_[X0, Y0], np.c_[X1, Y0], np.c_[X1, Y1], np.c_[X0, Y1]], axis=1)
    if clockwise:
        v = v[:, ::-1]
    K = np.tile([current / width, 0.0], (v.shape[0], 1))
    return SheetCurrent(v, K, z)


def quads_to_triangles(sheet: SheetCurrent) -> SheetCurrent:
    """Split each quad in two triangles (alternating diagonals, mixed orientation)."""
    v = sheet.vertices
    n = v.shape[0]
    alt = (np.arange(n) % 2).astype(bool)
    t1 = np.where(alt[:, None, None], v[:, [0, 1, 2]], v[:, [0, 1, 3]])
    t2 = np.where(alt[:, None, None], v[:, [0, 2, 3]], v[:, [1, 2, 3]])
    t2 = t2[:, ::-1]  # clockwise on purpose: orientation must not matter
    tri = np.concatenate([t1, t2])
    K = np.concatenate([sheet.sheet_current, sheet.sheet_current])
    return SheetCurrent(tri, K, sheet.z)


def thin_strip_By(z, current=I0, width=W):
    """Infinitely long thin strip, above its centre line (z > 0)."""
    return -mu_0 * current / (2 * width) * (2 / np.pi) * np.arctan(width / (2 * z))


def rectangle_By(z, current=I0, width=W, length=L):
    """Exact B_y above the centre of a finite uniform rectangle carrying K x̂ (solid angle)."""
    a, b = length / 2, width / 2
    omega = 4 * np.arctan(a * b / (z * np.sqrt(a * a + b * b + z * z)))
    return -mu_0 / (4 * np.pi) * (current / width) * omega


STRIP = strip_quads()


@pytest.mark.parametrize("z", [0.5e-6, 50e-6, 1e-3])
def test_strip_centre_matches_thin_strip_formula(z):
    """B above the strip centre equals the thin-strip formula μ0I/(2W)(2/π)atan(W/2z) within 1 %."""
    B = magnetic_flux_density([STRIP], np.array([[0.0, 0.0, z]]), method="direct")[0]
    # Finite-length effect of the 50 mm strip (exact rectangle vs infinite strip):
    # 2.5e-6 at 0.5 µm, 2.5e-4 at 50 µm, 5.2e-3 at 1 mm -- below the 1 % tolerance.
    finite = rectangle_By(z) / thin_strip_By(z) - 1
    assert abs(finite) < 6e-3
    assert B[1] == pytest.approx(thin_strip_By(z), rel=1e-2)
    # and the exact finite-rectangle value to round-off
    assert B[1] == pytest.approx(rectangle_By(z), rel=1e-10)
    assert abs(B[0]) < 1e-12 * abs(B[1]) and abs(B[2]) < 1e-10 * abs(B[1])


def test_strip_gives_6_28_microtesla_near_sheet():
    """0.2 A in a 20 mm strip gives |B| = μ0K/2 = 6.28 µT just above the sheet (pointing −y)."""
    B = magnetic_flux_density([STRIP], np.array([[0.0, 0.0, 0.2e-6]]))[0]
    assert B[1] == pytest.approx(-6.2832e-6, rel=1e-4)
    assert mu_0 * I0 / W / 2 == pytest.approx(6.2832e-6, rel=1e-4)


def test_field_linear_in_current_and_reverses():
    """B is linear in the current: doubling I doubles B, reversing I reverses B."""
    x = np.array([[1e-3, 2e-3, 0.6e-6], [-5e-3, 9.9e-3, 20e-6], [0.0, 12e-3, 1e-3]])
    B1 = magnetic_flux_density([STRIP], x)
    B2 = magnetic_flux_density([strip_quads(current=2 * I0)], x)
    Bm = magnetic_flux_density([strip_quads(current=-I0)], x)
    np.testing.assert_allclose(B2, 2 * B1, rtol=1e-12, atol=1e-20)
    np.testing.assert_allclose(Bm, -B1, rtol=1e-12, atol=1e-20)


def test_tangential_field_flips_across_sheet():
    """Mirror z → −z: the tangential B flips sign, the normal B_z is unchanged."""
    pts = np.array([[0.0, 0.0, 0.6e-6], [3e-3, 9.8e-3, 5e-6], [-7e-3, -11e-3, 0.3e-3]])
    mir = pts * np.array([1, 1, -1])
    Bu = magnetic_flux_density([STRIP], pts)
    Bd = magnetic_flux_density([STRIP], mir)
    np.testing.assert_allclose(Bd[:, :2], -Bu[:, :2], rtol=1e-12, atol=1e-22)
    np.testing.assert_allclose(Bd[:, 2], Bu[:, 2], rtol=1e-12, atol=1e-22)
    # jump across the sheet = μ0 K × n̂ (n̂ = ẑ): ΔB_y = −μ0 K
    assert Bu[0, 1] - Bd[0, 1] == pytest.approx(-mu_0 * I0 / W, rel=1e-4)


LONG = strip_quads(length=400e-3, h=1e-3)


@pytest.mark.parametrize("z", [0.6e-6, 50e-6])
@pytest.mark.parametrize("dy", [-2e-3, -0.1e-3, 0.1e-3, 1e-3])
def test_normal_component_near_edge_matches_2d_strip(z, dy):
    """B_z near a strip edge equals the 2-D infinite-strip value μ0K/(2π)·ln(ρ1/ρ2) within 1 %."""
    # The 2-D formula needs L/2 >> W: the far edge (ρ1 ≈ W) of a strip of half-length a is
    # shortened by ≈ ρ1²/(2a²) in ∫dl/R, which is 3-5 % of B_z for the 50 mm strip. So use a
    # 400 mm strip here (≤ 0.1 %), and check the 50 mm strip against its exact 3-D closed form.
    y = W / 2 + dy
    B = magnetic_flux_density([LONG], np.array([[0.0, y, z]]), method="direct")[0]
    K = I0 / W
    rho1 = np.hypot(y + W / 2, z)  # distance to edge y = −W/2
    rho2 = np.hypot(y - W / 2, z)  # distance to edge y = +W/2
    ref = mu_0 * K / (2 * np.pi) * np.log(rho1 / rho2)
    assert B[2] == pytest.approx(ref, rel=1e-2)
    # ... and the tangential part: B_y = −μ0K/(2π)·(angle subtended by the strip)
    ang = np.arctan2(z, y - W / 2) - np.arctan2(z, y + W / 2)
    assert B[1] == pytest.approx(-mu_0 * K / (2 * np.pi) * ang, rel=1e-2)
    # finite 50 mm strip: B_z = μ0K/4π·Σ_(long edges) ±[asinh((a−x)/d) + asinh((a+x)/d)]
    a = L / 2
    d_top, d_bot = rho2, rho1
    Gy = 2 * np.arcsinh(a / d_top) - 2 * np.arcsinh(a / d_bot)
    B50 = magnetic_flux_density([STRIP], np.array([[0.0, y, z]]), method="direct")[0]
    assert B50[2] == pytest.approx(mu_0 / (4 * np.pi) * K * Gy, rel=1e-9)


def test_triangles_and_quads_give_same_field():
    """Splitting every quad into two triangles (any orientation) leaves B unchanged."""
    quads = strip_quads(h=1e-3)
    quads_cw = strip_quads(h=1e-3, clockwise=True)
    tris = quads_to_triangles(quads)
    rng = np.random.default_rng(1)
    x = np.c_[rng.uniform(-30e-3, 30e-3, 300), rng.uniform(-15e-3, 15e-3, 300),
              rng.choice([0.6e-6, -3e-6, 40e-6, 1e-3], 300)]
    Bq = panel_field_exact(quads, x)
    Bc = panel_field_exact(quads_cw, x)
    Bt = panel_field_exact(tris, x)
    scale = np.abs(Bq).max()
    assert np.abs(Bt - Bq).max() < 1e-11 * scale
    assert np.abs(Bc - Bq).max() < 1e-13 * scale


def test_fmm_matches_direct():
    """FMM far field + analytic near field equals all-pairs analytic B of each sheet (quads of
    1 mm; triangles of 5 mm 0.3 mm below) to each tolerance at 1e4 targets 0.6 µm up and 1e4
    at 1 mm: |ΔB| < tol·|B| wherever |B| ≥ 0.3 max|B| (where the FMM's absolute error, ~ tol·max|B|,
    is not larger than the field), and |ΔB| < tol·max|B| everywhere."""
    top = strip_quads(h=1e-3)
    ret = quads_to_triangles(strip_quads(h=5e-3, current=-I0, z=-0.3e-3))
    rng = np.random.default_rng(2)
    n = 10_000
    xy = np.c_[rng.uniform(-30e-3, 30e-3, 2 * n), rng.uniform(-15e-3, 15e-3, 2 * n)]
    x = np.c_[xy, np.r_[np.full(n, 0.6e-6), np.full(n, 1e-3)]]
    for sheet in (top, ret):
        Bd = magnetic_flux_density([sheet], x, method="direct")
        size = np.linalg.norm(Bd, axis=1)
        strong = size >= 0.3 * size.max()
        for tol in (1e-2, 1e-4, 1e-6):
            err = np.linalg.norm(magnetic_flux_density([sheet], x, method="fmm", tolerance=tol) - Bd, axis=1)
            assert err.max() < tol * size.max()
            assert (err[strong] / size[strong]).max() < tol


def whole_strip(width=W, length=L, current=I0):
    """The strip as ONE panel: its field is the exact field of the uniform rectangle."""
    v = np.array([[[-length / 2, -width / 2], [length / 2, -width / 2], [length / 2, width / 2],
                   [-length / 2, width / 2]]])
    return SheetCurrent(v, np.array([[current / width, 0.0]]), 0.0)


def strip_targets(h, n_random=1000, seed=0):
    """Every corner of the strip's h-grid 0.6 µm above it (as the run's interface nodes) and, at
    each height 0.6 µm, h/3, h, 3h and 1 mm, ``n_random`` random points over the strip (heights near
    the panel size are where the point sources of the far field are least accurate; at 0.6 µm, the
    points inside panels, unlike the corners, see no symmetric cancellation of the neighbours' error)."""
    nx, ny = int(round(L / h)), int(round(W / h))
    X, Y = np.meshgrid(np.linspace(-L / 2, L / 2, nx + 1), np.linspace(-W / 2, W / 2, ny + 1), indexing="ij")
    rng = np.random.default_rng(seed)
    above = [np.c_[rng.uniform(-L / 2, L / 2, n_random), rng.uniform(-W / 2, W / 2, n_random),
                   np.full(n_random, z)] for z in (0.6e-6, h / 3, h, 3 * h, 1e-3)]
    return np.concatenate([np.c_[X.ravel(), Y.ravel(), np.full(X.size, 0.6e-6)], *above])


def pointwise_error(B, exact):
    """max over the targets of |B − B_exact| / |B_exact| (the meaning of magnetic.tolerance)."""
    return float(np.max(np.linalg.norm(B - exact, axis=1) / np.linalg.norm(exact, axis=1)))


def _strip_error(sheet, h, tolerance=DEFAULT_TOLERANCE, accuracy=None):
    x = strip_targets(h, n_random=300)
    B = magnetic_flux_density([sheet], x, method="fmm", tolerance=tolerance, accuracy=accuracy)
    return pointwise_error(B, panel_field_exact(whole_strip(), x))


STRIP_1MM = strip_quads(h=1e-3)


@pytest.mark.parametrize("sheet", [STRIP_1MM, quads_to_triangles(STRIP_1MM)], ids=["quads", "triangles"])
@pytest.mark.parametrize("tolerance", sorted(ACCURACY_LEVELS))
def test_each_tolerance_level_meets_its_tolerance(tolerance, sheet):
    """At every magnetic.tolerance level, B of the 1 mm strip (quads, or split in triangles) is
    within the tolerance of the exact strip field at every target: |B − B_exact| < tol·|B_exact|."""
    assert _strip_error(sheet, 1e-3, tolerance) < tolerance


def test_strip_error_check_can_fail():
    """The check above sees too coarse settings: the default (loosest) level misses the next
    tighter one, and one point source per panel with a near radius of one panel misses 1 %."""
    assert _strip_error(STRIP_1MM, 1e-3) > 1e-3
    assert _strip_error(STRIP_1MM, 1e-3, accuracy=Accuracy(1e-3, 1, 1.0)) > 1e-2


def test_tolerance_outside_the_measured_levels_is_refused():
    """A tolerance tighter than the tightest measured level, or looser than 1 %, is a ValueError."""
    with pytest.raises(ValueError, match="measured accuracy levels"):
        magnetic_flux_density([STRIP], np.array([[0.0, 0.0, 1e-3]]), tolerance=1e-9)
    with pytest.raises(ValueError, match="measured accuracy levels"):
        accuracy_for(0.05)
    assert accuracy_for(5e-3) == ACCURACY_LEVELS[1e-3] and accuracy_for(1e-2) == ACCURACY_LEVELS[1e-2]
    assert check_tolerance(1e-6) == 1e-6


def test_external_field_adds():
    """A uniform external field adds to the sheet field unchanged."""
    x = np.array([[0.0, 0.0, 0.6e-6], [2e-3, 12e-3, 0.1e-3]])
    ext = (1e-5, -2e-5, 4.5e-5)
    B0 = magnetic_flux_density([STRIP], x)
    B1 = magnetic_flux_density([STRIP], x, external_field=ext)
    np.testing.assert_allclose(B1 - B0, np.tile(ext, (2, 1)), rtol=1e-12, atol=1e-20)
    np.testing.assert_allclose(magnetic_flux_density([], x, external_field=ext), np.tile(ext, (2, 1)))


def ring_track(A=40e-3, H=30e-3, w=6e-3, h=1e-3, current=I0):
    """Closed rectangular track [0,A]x[0,H] of width w, counter-clockwise current I.

    Legs are quads with K along the leg; each w×w corner square is cut along the diagonal not
    touching its inner corner: the inner triangle carries K_in + K_out, the outer none. K is then
    divergence-free (normal flux continuous across every panel edge), a closed circuit.
    """
    K = current / w
    legs_dir = {"b": (K, 0.0), "r": (0.0, K), "t": (-K, 0.0), "l": (0.0, -K)}
    corners = [  # (inner corner, outer corner, K = K_in + K_out)
        ((A - w, w), (A, 0.0), (K, K)),  # bottom-right: +x in, +y out
        ((A - w, H - w), (A, H), (-K, K)),  # top-right: +y in, −x out
        ((w, H - w), (0.0, H), (-K, -K)),  # top-left: −x in, −y out
        ((w, w), (0.0, 0.0), (K, -K)),  # bottom-left: −y in, +x out
    ]
    verts, Ks = [], []
    nx, ny = int(round(A / h)), int(round(H / h))
    for i in range(nx):
        for j in range(ny):
            x0, y0 = i * h, j * h
            cx, cy = x0 + h / 2, y0 + h / 2
            inb, inr = cy < w, cx > A - w
            int_, inl = cy > H - w, cx < w
            if not (inb or inr or int_ or inl):
                continue
            quad = np.array([[x0, y0], [x0 + h, y0], [x0 + h, y0 + h], [x0, y0 + h]])
            ncorner = inb + inr + int_ + inl
            if ncorner == 1:
                leg = "b" if inb else "r" if inr else "t" if int_ else "l"
                verts.append(quad)
                Ks.append(legs_dir[leg])
                continue
            # corner square: which one?
            k = 0 if (inb and inr) else 1 if (int_ and inr) else 2 if (int_ and inl) else 3
            cin, cout, Kc = corners[k]
            cin, cout = np.array(cin), np.array(cout)
            # the cut runs through the square's centre, perpendicular to cin − cout
            f = (quad - 0.5 * (cin + cout)) @ (cin - cout) / w
            if np.all(f >= -1e-12):
                verts.append(quad)
                Ks.append(Kc)
            elif np.all(f <= 1e-12):
                continue
            else:
                on = np.abs(f) < 1e-12
                pos = f > 1e-12
                tri = np.array([quad[np.flatnonzero(on)[0]], quad[np.flatnonzero(pos)[0]],
                                quad[np.flatnonzero(on)[1]]])
                verts.append(tri)
                Ks.append(Kc)
    # mixed nv not allowed in one sheet: return quads and triangles as two sheets
    q = [(v, k) for v, k in zip(verts, Ks, strict=True) if v.shape[0] == 4]
    t = [(v, k) for v, k in zip(verts, Ks, strict=True) if v.shape[0] == 3]
    return [SheetCurrent(np.array([a for a, _ in q]), np.array([b for _, b in q]), 0.0),
            SheetCurrent(np.array([a for a, _ in t]), np.array([b for _, b in t]), 0.0)]


def _edge_fluxes(sheets):
    """Net outward flux of K through each edge (keyed by edge midpoint), summed over panels."""
    flux = {}
    for s in sheets:
        for v, K in zip(s.vertices, s.sheet_current, strict=True):
            a2 = np.sum(v[:, 0] * np.roll(v[:, 1], -1) - np.roll(v[:, 0], -1) * v[:, 1])
            vv = v if a2 > 0 else v[::-1]
            for i in range(len(vv)):
                p, q = vv[i], vv[(i + 1) % len(vv)]
                e = q - p
                m = np.array([e[1], -e[0]])  # outward, length = edge length
                key = tuple(np.round((p + q) / 2 / 1e-6).astype(int))
                flux[key] = flux.get(key, 0.0) + float(K @ m)
    return flux


def test_ampere_loop_around_closed_track():
    """Ampère: ∮B·dl around one leg of a closed sheet circuit equals μ0·I (the FMM path to its
    tolerance: the default 1 %, and 1e-6)."""
    sheets = ring_track()
    A, w = 40e-3, 6e-3  # ring_track: 40 mm x 30 mm, 6 mm wide
    # loop in the y–z plane at x = A/2 around the bottom leg (current +x): CCW in (y, z)
    y0, y1, z0, z1 = -4e-3, w + 4e-3, -2e-3, 2e-3
    g, wg = np.polynomial.legendre.leggauss(64)
    total = {}
    runs = (("direct", "direct", 1e-6), ("fmm", "fmm", DEFAULT_TOLERANCE), ("fmm-1e-6", "fmm", 1e-6))
    for label, method, tol in runs:
        s = 0.0
        sides = [((y0, z0), (y1, z0)), ((y1, z0), (y1, z1)), ((y1, z1), (y0, z1)), ((y0, z1), (y0, z0))]
        for (ya, za), (yb, zb) in sides:
            t = 0.5 * (g + 1)
            pts = np.c_[np.full_like(t, A / 2), ya + t * (yb - ya), za + t * (zb - za)]
            B = magnetic_flux_density(sheets, pts, method=method, tolerance=tol)
            dl = np.array([0.0, yb - ya, zb - za])
            s += np.sum(0.5 * wg * (B @ dl))
        total[label] = s
    assert total["direct"] == pytest.approx(mu_0 * I0, rel=1e-6)
    assert total["fmm"] == pytest.approx(mu_0 * I0, rel=DEFAULT_TOLERANCE)
    assert total["fmm-1e-6"] == pytest.approx(mu_0 * I0, rel=1e-6)


def test_closed_track_is_divergence_free_and_field_follows_current():
    """The test circuit is closed, and near the sheet B ≈ μ0/2·K×ẑ follows the local current."""
    sheets = ring_track()
    # closed circuit: the flux of K cancels on every interior edge, vanishes on the boundary
    flux = _edge_fluxes(sheets)
    assert max(abs(f) for f in flux.values()) < 1e-12
    K = I0 / 6e-3
    # centre of each leg, 0.6 µm above: B ≈ (μ0/2) K × ẑ = (μ0/2)(Ky, −Kx, 0)
    pts = np.array([[20e-3, 3e-3, 0.6e-6], [37e-3, 15e-3, 0.6e-6], [20e-3, 27e-3, 0.6e-6],
                    [3e-3, 15e-3, 0.6e-6]])
    Kl = np.array([[K, 0], [0, K], [-K, 0], [0, -K]])
    B = magnetic_flux_density(sheets, pts)
    expect = 0.5 * mu_0 * np.c_[Kl[:, 1], -Kl[:, 0]]
    np.testing.assert_allclose(B[:, :2], expect, rtol=2e-3, atol=2e-3 * np.abs(expect).max())


def test_target_in_sheet_plane_raises():
    """A target lying in the sheet plane (field discontinuous there) raises ValueError, no NaN."""
    with pytest.raises(ValueError, match="sheet plane"):
        magnetic_flux_density([STRIP], np.array([[0.0, 0.0, 1e-3], [1e-3, 2e-3, 0.0]]))
    with pytest.raises(ValueError, match="sheet plane"):
        panel_field_exact(STRIP, np.array([[0.0, 0.0, 0.0]]))
    # just off the plane (1 nm) is fine and finite, even exactly above an edge or vertex
    B = magnetic_flux_density([STRIP], np.array([[0.0, W / 2, 1e-9], [0.0, 0.0, -1e-9],
                                                 [L / 2, W / 2, 1e-9]]))
    assert np.all(np.isfinite(B))


def test_near_field_in_blocks_of_targets_gives_the_same_B(monkeypatch):
    """The near field goes in blocks of targets (memory bounded by the block): blocks of 7 targets
    give the B of one block holding all 1471, to round-off."""
    from femion.magnetic import biot_savart

    x = strip_targets(1e-3, n_random=100)
    one = magnetic_flux_density([STRIP_1MM], x, method="fmm", tolerance=1e-4)
    monkeypatch.setattr(biot_savart, "_NEAR_BLOCK_TARGETS", 7)
    blocks = magnetic_flux_density([STRIP_1MM], x, method="fmm", tolerance=1e-4)
    assert x.shape[0] > 7 * 100
    np.testing.assert_allclose(blocks, one, rtol=1e-12, atol=1e-12 * np.abs(one).max())


def test_fmm_in_calls_of_few_sources_gives_the_same_B(monkeypatch):
    """The FMM runs in calls of at most _FMM_MAX_SOURCES sources (memory): calls of 300 of the
    1000 panels give B within the tolerance of the all-pairs B, as one call does."""
    from femion.magnetic import biot_savart

    x = strip_targets(1e-3, n_random=100)
    exact = magnetic_flux_density([STRIP_1MM], x, method="direct")
    monkeypatch.setattr(biot_savart, "_FMM_MAX_SOURCES", 300)
    assert STRIP_1MM.n_panels * 4 > 3 * 300  # quad order 2 at 1e-4: 4 sources per panel, > 3 calls
    B = magnetic_flux_density([STRIP_1MM], x, method="fmm", tolerance=1e-4)
    assert pointwise_error(B, exact) < 1e-4
