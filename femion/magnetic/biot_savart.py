"""Magnetic flux density of thin conducting sheets (Biot–Savart, analytic panels + FMM).

Conductors are zero-thickness sheets in horizontal planes ``z = z_sheet`` carrying a sheet
current density K (A/m), constant on each flat polygonal panel (triangle or quadrilateral of a
plan mesh). For one panel P with constant K = (Kx, Ky, 0)

    B(r) = μ0/4π · K × G(r),      G(r) = ∫_P (r − r') / |r − r'|³ dA'.

* G_z is the signed solid angle Ω of P seen from r (Ω > 0 for z > z_sheet), computed with the
  Van Oosterom–Strackee formula on a fan of triangles (exact for any simple polygon, signed).
* The in-plane part follows from (ρ − ρ')/R³ = ∇_ρ'(1/R) and the divergence theorem:
  G_∥ = Σ_edges m_e ∫_e dl'/R = Σ_e m_e · ln((s2 + R2)/(s1 + R1)), m_e the in-plane outward
  unit normal, s1, s2 = (vertex − r)·t_e the end-point coordinates along the edge tangent.
  (This is ln((R1+R2+l)/(R1+R2−l)); ``s + R`` is evaluated as d²/(R − s) when s < 0, with
  d the distance from r to the edge line, so no cancellation occurs near the sheet.)

Hence Bx = μ0/4π·Ky·Ω, By = −μ0/4π·Kx·Ω, Bz = μ0/4π·(Kx·G_y − Ky·G_x). Infinite sheet check:
Ω → 2π above a sheet carrying K x̂ gives B = −μ0K/2 ŷ.

Far field for many panels and targets: fmm3dpy Laplace FMM on Gauss points of every panel
(B = μ0 ∇×Σ_g J_g/(4π|r − r_g|), J_g = K·w_g), with the point-source contribution of the
panels near each target replaced by the exact panel field (near pairs from a cKDTree).

Pure numpy/scipy (+ fmm3dpy for large problems); no DOLFINx.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy.spatial import cKDTree

from femion.constants import VACUUM_PERMEABILITY as mu_0
from femion.magnetic.p3m import (
    KD_TREE_OPTIONS,
    GridAccuracy,
    box,
    far_field,
    near_field,
    panel_size,
    scatter_add,
    subtract_point_sources,
)

__all__ = [
    "ACCURACY_LEVELS",
    "DEFAULT_TOLERANCE",
    "GRID_LEVELS",
    "Accuracy",
    "GridAccuracy",
    "SheetCurrent",
    "accuracy_for",
    "check_tolerance",
    "chosen_method",
    "grid_accuracy_for",
    "magnetic_flux_density",
    "panel_field_exact",
    "point_source_field",
]

MU0_4PI = mu_0 / (4.0 * np.pi)
IN_PLANE_TOL = 1e-15  # m: targets closer than this to a sheet plane are rejected
_DIRECT_PAIR_LIMIT = 2e6  # "auto": direct evaluation below this many panel-target pairs
_CHUNK_ELEMENTS = 1_000_000  # panel-target pairs per numpy block (memory ~ 100 MB peak)
_FMM_MAX_SOURCES = 250_000  # sources per fmm3dpy call (memory ~ 1.3 GB at eps 1e-3)
PLANE_BAND = 0.2  # targets within PLANE_BAND·diam of a panel's plane use Accuracy.plane_near_factor
_NEAR_BLOCK_TARGETS = 16_384  # targets per near-field block (pairs ~ 130 per target at near_factor 4)


@dataclass(frozen=True)
class SheetCurrent:
    """Piecewise-constant sheet current on flat panels in the plane z = z (m)."""

    vertices: np.ndarray  # (P, nv, 2) plan coordinates of panel corners, m; nv = 3 or 4; any orientation
    sheet_current: np.ndarray  # (P, 2) K in A/m, constant per panel
    z: float  # height of the sheet plane, m

    def __post_init__(self):
        v = np.asarray(self.vertices, dtype=float)
        k = np.asarray(self.sheet_current, dtype=float)
        if v.ndim != 3 or v.shape[2] != 2 or v.shape[1] not in (3, 4):
            raise ValueError(f"vertices must have shape (P, 3|4, 2), got {v.shape}")
        if k.shape != (v.shape[0], 2):
            raise ValueError(f"sheet_current must have shape ({v.shape[0]}, 2), got {k.shape}")
        if not np.all(np.isfinite(v)) or not np.all(np.isfinite(k)):
            raise ValueError("vertices and sheet_current must be finite")
        object.__setattr__(self, "vertices", v)
        object.__setattr__(self, "sheet_current", k)
        object.__setattr__(self, "z", float(self.z))

    @property
    def n_panels(self) -> int:
        return self.vertices.shape[0]


# --------------------------------------------------------------------------------------------
# panel geometry
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _PanelGeom:
    """Counter-clockwise panel data precomputed once per sheet."""

    # the kernel's data, one row per vertex (one np.take gathers a pair's data: 3x faster than a
    # gather per array): x and y of the CCW vertices, x and y of the unit edge tangents (edge i:
    # v[i] -> v[i+1]), edge lengths (nv rows each), twice the signed (>0) areas of the fan
    # triangles (0, i, i+1) (nv - 2 rows), as _geometry builds them
    kernel_rows: np.ndarray  # (6·nv − 2, P)
    area: np.ndarray  # (P,)
    centroid: np.ndarray  # (P, 2)
    radius: np.ndarray  # (P,) max distance centroid -> vertex
    diam: np.ndarray  # (P,) panel diameter (max vertex-vertex distance)
    K: np.ndarray  # (P, 2)
    z: float

    @property
    def n_vertices(self) -> int:
        return (self.kernel_rows.shape[0] + 2) // 6

    @property
    def n_panels(self) -> int:
        return self.kernel_rows.shape[1]


def _polygon_area2(v: np.ndarray) -> np.ndarray:
    """Twice the signed area of the polygons v (..., nv, 2) (shoelace), vertex by vertex."""
    nv = v.shape[-2]
    a2 = 0.0
    for i in range(nv):
        k = (i + 1) % nv
        a2 = a2 + (v[..., i, 0] * v[..., k, 1] - v[..., k, 0] * v[..., i, 1])
    return a2


def _geometry(sheet: SheetCurrent, diam: np.ndarray | None = None) -> _PanelGeom:
    """The panel data of ``sheet``; ``diam``: its panels' diameters if already known."""
    v = sheet.vertices
    a2 = _polygon_area2(v)
    if np.any(a2 == 0.0):
        bad = int(np.flatnonzero(a2 == 0.0)[0])
        raise ValueError(f"panel {bad} has zero area: {v[bad].tolist()}")
    cw = np.flatnonzero(a2 < 0)
    nv = v.shape[1]
    # vertex by vertex: every operation below works on contiguous rows (P,)
    rows = np.empty((6 * nv - 2, v.shape[0]))
    X, Y, tx, ty, edge_len, fan_area2 = np.split(rows, np.arange(1, 6) * nv)
    X[:], Y[:] = v[..., 0].T, v[..., 1].T
    X[:, cw], Y[:, cw] = X[::-1, cw], Y[::-1, cw]  # clockwise panels turned round
    for i in range(nv):
        k = (i + 1) % nv
        np.subtract(X[k], X[i], out=tx[i])
        np.subtract(Y[k], Y[i], out=ty[i])
    np.hypot(tx, ty, out=edge_len)
    if np.any(edge_len == 0.0):
        bad = int(np.flatnonzero(np.any(edge_len == 0.0, axis=0))[0])
        raise ValueError(f"panel {bad} has a zero-length edge: {v[bad].tolist()}")
    tx /= edge_len
    ty /= edge_len
    area = 0.5 * np.abs(a2)
    # area centroid of the polygon: Σ over the fan triangles (0, i, i+1) of 2A_i·(their vertices' sum)/(6A)
    cx, cy = np.zeros(v.shape[0]), np.zeros(v.shape[0])
    for j, i in enumerate(range(1, nv - 1)):
        k = i + 1
        fan_area2[j] = (X[i] - X[0]) * (Y[k] - Y[0]) - (Y[i] - Y[0]) * (X[k] - X[0])
        cx += fan_area2[j] * (X[0] + X[i] + X[k])
        cy += fan_area2[j] * (Y[0] + Y[i] + Y[k])
    cx /= 6.0 * area
    cy /= 6.0 * area
    radius2 = np.zeros(v.shape[0])
    for i in range(nv):
        np.maximum(radius2, (X[i] - cx) ** 2 + (Y[i] - cy) ** 2, out=radius2)
    cen = np.stack([cx, cy], axis=1)
    diam = _diameters(v) if diam is None else diam
    return _PanelGeom(rows, area, cen, np.sqrt(radius2), diam, sheet.sheet_current, sheet.z)


def _diameters(v: np.ndarray) -> np.ndarray:
    """Panel diameters (P,): the largest vertex–vertex distance of each panel ``v`` (P, nv, 2)."""
    nv = v.shape[1]
    diam2 = np.zeros(v.shape[0])
    for i in range(nv):
        for j in range(i + 1, nv):
            diam2 = np.maximum(diam2, (v[:, i, 0] - v[:, j, 0]) ** 2 + (v[:, i, 1] - v[:, j, 1]) ** 2)
    return np.sqrt(diam2)


def _check_targets(targets) -> np.ndarray:
    x = np.asarray(targets, dtype=float)
    if x.ndim == 1 and x.shape[0] == 3:
        x = x[None, :]
    if x.ndim != 2 or x.shape[1] != 3:
        raise ValueError(f"targets must have shape (N, 3), got {x.shape}")
    if not np.all(np.isfinite(x)):
        raise ValueError("targets must be finite")
    return x


def _check_off_plane(sheet: SheetCurrent, x: np.ndarray) -> None:
    dz = np.abs(x[:, 2] - sheet.z)
    bad = np.flatnonzero(dz < IN_PLANE_TOL)
    if bad.size:
        i = int(bad[0])
        raise ValueError(
            f"target {i} at {x[i].tolist()} lies in the sheet plane z = {sheet.z!r} m "
            f"(|z - z_sheet| < {IN_PLANE_TOL} m): the field of a current sheet is discontinuous "
            f"there ({bad.size} such target(s)); evaluate just above or below the sheet"
        )


# --------------------------------------------------------------------------------------------
# analytic kernel
# --------------------------------------------------------------------------------------------


def _kernel(g: _PanelGeom, pidx, tx, ty, dz):
    """Ω, G_x, G_y for panel(s) ``pidx`` seen from target(s) (tx, ty, dz = z_t − z_sheet).

    ``pidx`` indexes panels; the rows ``g.kernel_rows[:, pidx]`` must broadcast against tx/ty/dz
    after the vertex axis (first) is split off: either all 1-D of the same length (pairs), or
    panels as a column (Pc, 1) and targets as a row (1, Nc) (all pairs).
    """
    nv = g.n_vertices
    vx, vy, tx_e, ty_e, edge_len, fa2 = np.split(np.take(g.kernel_rows, pidx, axis=1), np.arange(1, 6) * nv)
    dz2 = dz * dz
    ax = vx - tx
    ay = vy - ty
    R = np.sqrt(ax * ax + ay * ay + dz2)

    # solid angle: fan triangles (0, i, i+1), Van Oosterom–Strackee; numerator = 2A·dz exactly
    omega = 0.0
    for j, i in enumerate(range(1, nv - 1)):
        k = i + 1
        ab = ax[0] * ax[i] + ay[0] * ay[i] + dz2
        ac = ax[0] * ax[k] + ay[0] * ay[k] + dz2
        bc = ax[i] * ax[k] + ay[i] * ay[k] + dz2
        den = R[0] * R[i] * R[k] + ab * R[k] + ac * R[i] + bc * R[0]
        omega = omega + 2.0 * np.arctan2(fa2[j] * dz, den)

    # in-plane part: Σ_e m_e ∫_e dl/R, m_e = (t_y, −t_x) for CCW panels
    gx = 0.0
    gy = 0.0
    for i in range(nv):
        k = (i + 1) % nv
        txe = tx_e[i]
        tye = ty_e[i]
        s1 = ax[i] * txe + ay[i] * tye
        s2 = s1 + edge_len[i]
        h = ax[i] * tye - ay[i] * txe  # in-plane distance to the edge line (signed)
        d2 = h * h + dz2
        # s + R, evaluated without cancellation
        p1 = np.where(s1 >= 0.0, s1 + R[i], d2 / (R[i] - s1))
        p2 = np.where(s2 >= 0.0, s2 + R[k], d2 / (R[k] - s2))
        lg = np.log(p2 / p1)
        gx = gx + tye * lg
        gy = gy - txe * lg
    return omega, gx, gy


def _pair_field(g: _PanelGeom, pidx: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Exact B (T) of panel pidx[i] at target x[i] (pairs), shape (M, 3)."""
    om, gx, gy = _kernel(g, pidx, x[:, 0], x[:, 1], x[:, 2] - g.z)
    K = g.K[pidx]
    out = np.empty((pidx.shape[0], 3))
    out[:, 0] = MU0_4PI * K[:, 1] * om
    out[:, 1] = -MU0_4PI * K[:, 0] * om
    out[:, 2] = MU0_4PI * (K[:, 0] * gy - K[:, 1] * gx)
    return out


def _direct(g: _PanelGeom, x: np.ndarray) -> np.ndarray:
    P = g.n_panels
    N = x.shape[0]
    B = np.zeros((N, 3))
    if P == 0 or N == 0:
        return B
    # blocks of (pc panels) x (nc targets) with pc*nc ~ _CHUNK_ELEMENTS
    nc = int(max(1, min(N, _CHUNK_ELEMENTS // max(1, min(P, 4096)))))
    pc = int(max(1, min(P, _CHUNK_ELEMENTS // nc)))
    Kx, Ky = g.K[:, 0], g.K[:, 1]
    for t0 in range(0, N, nc):
        xs = x[t0 : t0 + nc]
        tx, ty, dz = xs[None, :, 0], xs[None, :, 1], xs[None, :, 2] - g.z
        acc = np.zeros((3, xs.shape[0]))
        for p0 in range(0, P, pc):
            pidx = np.arange(p0, min(P, p0 + pc))[:, None]
            om, gx, gy = _kernel(g, pidx, tx, ty, dz)
            kx, ky = Kx[p0 : p0 + pc], Ky[p0 : p0 + pc]
            acc[0] += ky @ om
            acc[1] -= kx @ om
            acc[2] += kx @ gy - ky @ gx
        B[t0 : t0 + nc] = MU0_4PI * acc.T
    return B


def panel_field_exact(sheet: SheetCurrent, targets: np.ndarray) -> np.ndarray:
    """All-pairs analytic B (T) at targets (N,3), chunked to bound memory. O(P·N)."""
    x = _check_targets(targets)
    _check_off_plane(sheet, x)
    return _direct(_geometry(sheet), x)


# --------------------------------------------------------------------------------------------
# quadrature points (far field)
# --------------------------------------------------------------------------------------------


def _gauss_1d(n: int):
    xi, w = np.polynomial.legendre.leggauss(n)
    return 0.5 * (xi + 1.0), 0.5 * w  # on [0, 1]


# triangle rules on barycentric points (weights sum to 1): centroid (degree 1), 3-point
# (degree 2) and the Strang–Fix / Dunavant 7-point rule (degree 5)
_a1, _b1 = 0.059715871789770, 0.470142064105115
_a2, _b2 = 0.797426985353087, 0.101286507323456
_TRI_RULES = {
    1: (np.array([[1 / 3, 1 / 3, 1 / 3]]), np.array([1.0])),
    2: (np.array([[2 / 3, 1 / 6, 1 / 6], [1 / 6, 2 / 3, 1 / 6], [1 / 6, 1 / 6, 2 / 3]]), np.full(3, 1 / 3)),
    3: (
        np.array(
            [
                [1 / 3, 1 / 3, 1 / 3],
                [_a1, _b1, _b1],
                [_b1, _a1, _b1],
                [_b1, _b1, _a1],
                [_a2, _b2, _b2],
                [_b2, _a2, _b2],
                [_b2, _b2, _a2],
            ]
        ),
        np.array([0.225] + [0.132394152788506] * 3 + [0.125939180544827] * 3),
    ),
}


def _vertex_combinations(M: np.ndarray, g: _PanelGeom) -> np.ndarray:
    """Σ_k M[q, k]·v[p, k] (P, nq, 2) for every panel p of g: two BLAS products on the
    vertex-by-vertex rows of g.kernel_rows (a broadcast matmul over the panels' (nv, 2) blocks is
    ~10x slower)."""
    nv = g.n_vertices
    out = np.empty((g.n_panels, M.shape[0], 2))
    out[..., 0] = (M @ g.kernel_rows[:nv]).T
    out[..., 1] = (M @ g.kernel_rows[nv : 2 * nv]).T
    return out


def _quadrature(g: _PanelGeom, order: int):
    """Quadrature points (P, nq, 2) and area weights (P, nq) (sum = panel area) of every panel.

    Quads: ``order``² tensor Gauss–Legendre points of the bilinear map; triangles: the rule
    ``_TRI_RULES[order]`` (1, 3 or 7 points).
    """
    if g.n_vertices == 3:
        bary, wt = _TRI_RULES[order]
        pts = _vertex_combinations(bary, g)
        return pts, g.area[:, None] * (wt / wt.sum())[None, :]
    # bilinear map of the quad from the unit square, tensor Gauss–Legendre
    s, ws = _gauss_1d(order)
    S, T = np.meshgrid(s, s, indexing="ij")
    S, T = S.ravel(), T.ravel()
    W = np.outer(ws, ws).ravel()
    N = np.stack([(1 - S) * (1 - T), S * (1 - T), S * T, (1 - S) * T], axis=1)  # (nq, 4)
    dNs = np.stack([-(1 - T), (1 - T), T, -T], axis=1)
    dNt = np.stack([-(1 - S), -S, S, (1 - S)], axis=1)
    js, jt = np.split(_vertex_combinations(np.vstack([dNs, dNt]), g), 2, axis=1)  # (P, nq, 2) each
    weights = np.abs(js[..., 0] * jt[..., 1] - js[..., 1] * jt[..., 0]) * W[None, :]
    return _vertex_combinations(N, g), weights  # pts apart: not a view keeping the Jacobians alive


def point_source_field(src: np.ndarray, J: np.ndarray, x: np.ndarray) -> np.ndarray:
    """B (T) at x (M,3) of current elements J (M,2) (A·m, in-plane) at src (M,3), pairwise."""
    r = x - src
    R2 = np.einsum("ij,ij->i", r, r)
    inv3 = 1.0 / (R2 * np.sqrt(R2))
    out = np.empty_like(r)
    # J × r with J = (Jx, Jy, 0)
    out[:, 0] = J[:, 1] * r[:, 2]
    out[:, 1] = -J[:, 0] * r[:, 2]
    out[:, 2] = J[:, 0] * r[:, 1] - J[:, 1] * r[:, 0]
    return MU0_4PI * out * inv3[:, None]


# --------------------------------------------------------------------------------------------
# accuracy levels
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Accuracy:
    """Settings of the "fmm" path: fmm3dpy tolerance, quadrature order of the point sources
    (order² Gauss points on quads; 1, 3, 7 points on triangles), near radius in panel diameters,
    and (``plane_near_factor``, default the same) the near radius for targets within
    PLANE_BAND·diam of the panel's plane: there the far panels' point-source error is smallest
    (their in-plane B ∝ height; the midpoint error of B_z cancels to first order), so a smaller
    radius does, and the run's interface targets, 0.6-0.7 µm up, need fewer exact pairs."""

    fmm_eps: float
    quad_order: int
    near_factor: float
    plane_near_factor: float | None = None

    def __post_init__(self):
        plane = self.near_factor if self.plane_near_factor is None else self.plane_near_factor
        object.__setattr__(self, "plane_near_factor", plane)
        if not 0 < self.fmm_eps < 1:
            raise ValueError(f"fmm_eps must be in (0, 1), got {self.fmm_eps!r}")
        if self.quad_order not in _TRI_RULES:
            raise ValueError(f"quad_order must be one of {sorted(_TRI_RULES)}, got {self.quad_order!r}")
        if not (self.near_factor > 0 and plane > 0):
            raise ValueError(f"near factors must be positive, got {self.near_factor!r}, {plane!r}")


#: tolerance → the cheapest settings measured to meet it. Error: max over the targets of
#: |B − B_exact| / |B_exact| for a uniform 20 mm x 50 mm strip of square panels of side h (exact:
#: the strip as one panel), targets at every panel corner 0.6 µm up and over the strip at h/3,
#: h, 3h and 1 mm (tests/benchmarks/bench_magnetic.py, one core, fmm3dpy 1.0):
#:
#:   tolerance  fmm_eps quad near (plane) | error h=0.5 mm   h=0.1 mm | 1e5 panels+targets: time, peak RSS
#:     1e-2      1e-3    1    2    (1)    |      4.6e-3       3.2e-3  |   2.9 s,  0.74 GB
#:     1e-3      1e-4    2    1           |      1.5e-4       1.4e-4  |  24 s,    3.9 GB
#:     1e-4      1e-4    2    2           |      1.6e-5       1.6e-5  |  24 s,    3.9 GB
#:     1e-5      1e-4    2    3           |      3.7e-6       2.8e-6  |  27 s,    3.9 GB
#:     1e-6      1e-8    3    2           |      6.2e-8               |  (not run at 1e5)
#:
#: The same levels hold on quads jittered by ±0.3 h, or such quads split into triangles (1e-2:
#: 5.3e-3, 6.3e-3), and against the all-pairs B of the gmsh meshes of strip_drive (1e-2: 3.5e-3)
#: and two_track_drive (3.0e-3 where |B| ≥ 0.3 max|B|: the FMM's error is absolute, ~ tol·max|B|).
#: Not on quads jittered by ±0.45 h (some non-convex): 1e-3 gives 3.1e-3 there.
#: Cheaper settings that miss a level: 1e-3/1/1 1.3e-2 (worst at heights ≈ h); 1e-3/2/1 5.9e-4
#: at h = 0.5 mm but 9.3e-4 at 0.1 mm (fmm_eps 1e-3 caps quad 2 and 3 at 5e-4..1e-3); 1e-4/2/1
#: with plane 1: 1.1e-4; 1e-8/3/2 with plane 1: 1.4e-6. The old fixed 1e-6/2/4 (4.6e-7) took
#: 42 s and 7.8 GB at 1e5. Time and memory are the FMM's and the near field's: the FMM grows
#: with its sources (panels × quad points) and with 1/fmm_eps, the near field with the pairs.
ACCURACY_LEVELS: dict[float, Accuracy] = {
    1e-2: Accuracy(1e-3, 1, 2.0, plane_near_factor=1.0),
    1e-3: Accuracy(1e-4, 2, 1.0),
    1e-4: Accuracy(1e-4, 2, 2.0),
    1e-5: Accuracy(1e-4, 2, 3.0),
    1e-6: Accuracy(1e-8, 3, 2.0),
}
#: the loosest level: at most 1 % error (measured 3-6e-3), the cheapest B
DEFAULT_TOLERANCE = 1e-2


def check_tolerance(tolerance: float) -> float:
    """``tolerance`` if it lies within the measured levels, else ValueError (one line)."""
    lo, hi = min(ACCURACY_LEVELS), max(ACCURACY_LEVELS)
    if not lo <= tolerance <= hi:
        raise ValueError(f"must be between {lo:g} and {hi:g} (the measured accuracy levels), got {tolerance!r}")
    return tolerance


#: tolerance → the settings of the "grid" path (femion.magnetic.p3m; GridAccuracy(spacing, screen,
#: quad, exact, plane exact), lengths in the sheet's panel size h), measured as ACCURACY_LEVELS
#: (same strip, targets and error; tests/benchmarks/bench_magnetic.py, one core):
#:
#:   tolerance  H/h  b/h quad exact (plane) | error h=0.5 mm (triangles)  0.25 mm  0.1 mm | 1e5 corners 0.6 µm
#:                                          |                                             | up: time, peak RSS
#:     1e-2     0.5  1.5   2   1.0  (0.3)   |      4.3e-3  (4.0e-3)       4.3e-3   4.3e-3 |  0.48 s, 0.22 GB
#:     1e-3     0.3  2.0   3   1.5  (0.5)   |      3.4e-4  (2.6e-4)       2.7e-4   2.7e-4 |  0.82 s, 0.32 GB
#:     1e-4     0.25 3.0   3   2.0  (0.5)   |      4.9e-5  (4.7e-5)       4.9e-5   4.9e-5 |  1.94 s, 0.58 GB
#:
#: (the fmm path at 1e5: 2.9 s at 1e-2, 24 s at 1e-3 and 1e-4). Cheaper settings that miss a level:
#: 1e-2 with plane exact 0.1 (only the panels touching a corner): 1.5e-2 at points inside panels;
#: with b = 1.25 h: 1.1e-2; with the screen S ~ t³ instead of t⁵: 7.0e-3 (at heights ~ h/3); with
#: the panel size as the median √area: 1.3e-2 on triangles; 1e-3 with plane exact 0.25: 7.4e-4.
GRID_LEVELS: dict[float, GridAccuracy] = {
    1e-2: GridAccuracy(spacing=0.5, screen=1.5, quad_order=2, exact_factor=1.0, plane_exact_factor=0.3),
    1e-3: GridAccuracy(spacing=0.3, screen=2.0, quad_order=3, exact_factor=1.5, plane_exact_factor=0.5),
    1e-4: GridAccuracy(spacing=0.25, screen=3.0, quad_order=3, exact_factor=2.0, plane_exact_factor=0.5),
}
GRID_MAX_PLANES = 4  # target heights "auto" gives the grid path (an FFT convolution each)
GRID_MAX_NODES_PER_PANEL = 64.0  # grid nodes per panel "auto" allows (1e-4: 16 over the panels)


def grid_accuracy_for(tolerance: float) -> GridAccuracy | None:
    """The grid settings of the loosest measured level at or below ``tolerance``, None if none is."""
    check_tolerance(tolerance)
    ok = [t for t in GRID_LEVELS if t <= tolerance]
    return GRID_LEVELS[max(ok)] if ok else None


def accuracy_for(tolerance: float) -> Accuracy:
    """The settings of the loosest measured level at or below ``tolerance``."""
    check_tolerance(tolerance)
    return ACCURACY_LEVELS[max(t for t in ACCURACY_LEVELS if t <= tolerance)]


# --------------------------------------------------------------------------------------------
# FMM
# --------------------------------------------------------------------------------------------

_FMM_SCALE = None


def _fmm_scale() -> float:
    """Factor c with lfmm3d potential = c · q/|r − r'| (1/4π in fmm3dpy ≥ 1.0; 1 in older)."""
    global _FMM_SCALE
    if _FMM_SCALE is None:
        import fmm3dpy

        out = fmm3dpy.lfmm3d(
            eps=1e-12,
            sources=np.zeros((3, 1)),
            charges=np.ones(1),
            targets=np.array([[2.0], [0.0], [0.0]]),
            pgt=1,
        )
        _FMM_SCALE = float(np.asarray(out.pottarg).ravel()[0]) * 2.0
    return _FMM_SCALE


def _fmm_field(geoms: list[_PanelGeom], quads: list, x: np.ndarray, eps: float, comm=None) -> np.ndarray:
    """Point-source field (T) at x of all panels, sources at their quadrature points ``quads``
    (points, weights per sheet), by fmm3dpy with tolerance ``eps``.

    With ``comm`` (every rank the same panels, its own targets x) each rank takes a contiguous
    share of the sources to the targets of all ranks, and the shares are summed onto each
    rank's own targets (Reduce_scatter): the FMM's memory, which grows mostly with its
    sources, is split too.
    """
    srcs, Js = [], []
    for g, (pts, w) in zip(geoms, quads, strict=True):
        nq = pts.shape[1]
        src = np.empty((pts.shape[0] * nq, 3))
        src[:, :2] = pts.reshape(-1, 2)
        src[:, 2] = g.z
        srcs.append(src)
        Js.append((g.K[:, None, :] * w[..., None]).reshape(-1, 2))
    src = np.concatenate(srcs)
    J = np.concatenate(Js)
    if comm is None or comm.size == 1:
        return _lfmm_curl(src, J, x, eps)
    counts = comm.allgather(x.shape[0])
    x_all = np.concatenate(comm.allgather(x))
    share = slice(src.shape[0] * comm.rank // comm.size, src.shape[0] * (comm.rank + 1) // comm.size)
    partial = _lfmm_curl(src[share], J[share], x_all, eps)
    B = np.empty((x.shape[0], 3))
    comm.Reduce_scatter(np.ascontiguousarray(partial), B, recvcounts=[3 * c for c in counts])
    return B


def _lfmm_curl(src: np.ndarray, J: np.ndarray, x: np.ndarray, eps: float) -> np.ndarray:
    """B (T) at x of current elements J (M,2) at src (M,3): μ0/(4π)·∇×Σ J/|r − r'| by fmm3dpy,
    in calls of at most ``_FMM_MAX_SOURCES`` sources (the FMM's memory, ~5 kB per source at
    eps 1e-3, grows mostly with its sources)."""
    import fmm3dpy

    B = np.zeros((x.shape[0], 3))
    f = MU0_4PI / _fmm_scale()
    xt = np.ascontiguousarray(x.T)
    for s0 in range(0, src.shape[0], _FMM_MAX_SOURCES):
        out = fmm3dpy.lfmm3d(
            eps=eps,
            sources=np.ascontiguousarray(src[s0 : s0 + _FMM_MAX_SOURCES].T),
            charges=np.ascontiguousarray(J[s0 : s0 + _FMM_MAX_SOURCES].T),
            targets=xt,
            pgt=2,
            nd=2,
        )
        gr = np.asarray(out.gradtarg).reshape(2, 3, -1)  # (density, d/dx_j, target)
        gx, gy = gr[0], gr[1]  # gradients of φ_x, φ_y
        # B = μ0/(4π c) ∇×(φx, φy, 0)
        B[:, 0] -= f * gy[2]
        B[:, 1] += f * gx[2]
        B[:, 2] += f * (gy[0] - gx[1])
    return B


def _near_field(g: _PanelGeom, quad, x: np.ndarray, acc: Accuracy, B: np.ndarray) -> None:
    """Replace, in B (in place), the point-source field of the panels near each target by the
    exact panel field: the pairs with |target − panel centroid| ≤ f·diam + circumradius (3-D
    distance), f = acc.plane_near_factor for targets within PLANE_BAND·diam of the panel's
    plane, else acc.near_factor; every target right above or below a panel, however close to
    the plane, sees that panel exactly. ``quad``: the panels' (points, weights), the sources.

    Targets go in blocks of ``_NEAR_BLOCK_TARGETS`` (pairs found with a cKDTree of the centroids),
    so memory is bounded by the block, not by the number of targets × panels.
    """
    rad = acc.near_factor * g.diam + g.radius
    rad_plane = acc.plane_near_factor * g.diam + g.radius
    rmax = float(max(rad.max(), rad_plane.max()))
    ctree = cKDTree(np.column_stack([g.centroid, np.full(g.centroid.shape[0], g.z)]))
    pts, w = quad
    for t0 in range(0, x.shape[0], _NEAR_BLOCK_TARGETS):
        xb = x[t0 : t0 + _NEAR_BLOCK_TARGETS]
        sdm = ctree.sparse_distance_matrix(cKDTree(xb), rmax, output_type="ndarray")
        pidx, tidx = sdm["i"].astype(np.int64), sdm["j"].astype(np.int64)
        in_band = np.abs(xb[tidx, 2] - g.z) <= PLANE_BAND * g.diam[pidx]
        keep = sdm["v"] <= np.where(in_band, rad_plane[pidx], rad[pidx])
        pidx, tidx = pidx[keep], tidx[keep]
        order = np.argsort(pidx, kind="stable")  # panel-major: better cache use of panel data
        _near_correction(g, pidx[order], tidx[order], xb, pts, w, B[t0 : t0 + _NEAR_BLOCK_TARGETS])


def _near_correction(g: _PanelGeom, pidx, tidx, x, pts, w, B):
    """Add exact − point-source field of the pairs (pidx, tidx) into B (in place); ``pts``, ``w``:
    the panels' quadrature points and weights (the point sources of the far field)."""
    nq = pts.shape[1]
    chunk = max(1, _CHUNK_ELEMENTS // (2 * nq))
    for c0 in range(0, pidx.shape[0], chunk):
        p = pidx[c0 : c0 + chunk]
        t = tidx[c0 : c0 + chunk]
        xt = x[t]
        dB = _pair_field(g, p, xt)
        # point sources of the panel: vectorised over (pair, q)
        r = xt[:, None, :2] - pts[p]  # (M, nq, 2)
        dz = xt[:, 2] - g.z
        R2 = r[..., 0] ** 2 + r[..., 1] ** 2 + (dz * dz)[:, None]
        subtract_point_sources(dB, g.K[p], w[p] / (R2 * np.sqrt(R2)), r[..., 0], r[..., 1], dz, MU0_4PI)
        scatter_add(B, t, dB)


# --------------------------------------------------------------------------------------------
# public driver
# --------------------------------------------------------------------------------------------


def _grid_applies(sheets: list[SheetCurrent], x: np.ndarray, acc: GridAccuracy) -> bool:
    """Whether the "grid" path suits these targets: at most GRID_MAX_PLANES target heights (one
    FFT convolution each) and a grid over sources and targets of at most GRID_MAX_NODES_PER_PANEL
    nodes per panel, for each sheet's grid (targets far outside the sheets would make it large)."""
    if np.unique(x[:, 2]).size > GRID_MAX_PLANES:
        return False
    for s in sheets:  # a grid per sheet
        v = s.vertices
        lo, hi = box(v, x[:, :2])
        step = max(1, s.n_panels // 65_536)  # the panel size of a sample: the median moves little
        nodes = np.prod((hi - lo) / (acc.spacing * panel_size(_diameters(v[::step]))) + 5.0)
        if nodes > GRID_MAX_NODES_PER_PANEL * s.n_panels:
            return False
    return True


def _spatial_order(v: np.ndarray) -> np.ndarray:
    """An order of the panels v (P, nv, 2) in which near panels lie near in memory: the leaf order
    of a kd-tree over their first vertices. near_field's pairs then gather the panel data almost in
    order (from panels in mesh order, ~15 % of its time went to cache misses)."""
    return cKDTree(v[:, 0], **KD_TREE_OPTIONS).indices


def _grid_sheet(sheet: SheetCurrent, x: np.ndarray, acc: GridAccuracy, comm=None) -> np.ndarray:
    """B (T) of one sheet at targets x by the grid path (femion.magnetic.p3m), on a grid and screen
    scaled by the sheet's panel size. With ``comm`` (collective; every rank all panels, its own
    targets) each rank builds the panel data of its share of the sources and of the panels near
    its own targets only, so the panels' geometry is split too."""
    v, K = sheet.vertices, sheet.sheet_current
    diam = _diameters(v)
    h = panel_size(diam)
    b = acc.screen * h
    parallel = comm is not None and comm.size > 1
    if parallel:
        share = slice(v.shape[0] * comm.rank // comm.size, v.shape[0] * (comm.rank + 1) // comm.size)
        try:
            g, bad = _geometry(SheetCurrent(v[share], K[share], sheet.z), diam[share]), None
        except ValueError as e:  # a degenerate panel: every rank raises, none waits in a collective
            g, bad = None, f"{e} (of the share from panel {share.start})"
        bad = next((m for m in comm.allgather(bad) if m), None)
        if bad:
            raise ValueError(bad)
    else:
        order = _spatial_order(v)
        v, K, diam = v[order], K[order], diam[order]
        g = _geometry(SheetCurrent(v, K, sheet.z), diam)
    pts, w = _quadrature(g, acc.quad_order)
    B = MU0_4PI * far_field(pts.reshape(-1, 2), (g.K[:, None, :] * w[..., None]).reshape(-1, 2), sheet.z, x,
                            acc.spacing * h, b, comm)
    if parallel and x.shape[0]:
        # the panels whose near pairs a target of this rank may have: centroids within the reach of
        # near_field (≤ b + (exact factor + 1)·diam) of the box around this rank's targets
        margin = b + (max(acc.exact_factor, acc.plane_exact_factor) + 1.0) * float(diam.max())
        c = sum(v[:, i] for i in range(v.shape[1])) / v.shape[1]
        lo, hi = box(x[:, :2])
        near = np.flatnonzero(np.all((c >= lo - margin) & (c <= hi + margin), axis=1))
        if not near.size:
            return B
        near = near[_spatial_order(v[near])]
        g = _geometry(SheetCurrent(v[near], K[near], sheet.z), diam[near])
        pts, w = _quadrature(g, acc.quad_order)
    if x.shape[0]:
        near_field(g, pts, w, x, b, acc, B, _pair_field, MU0_4PI)
    return B


def _resolve_method(sheets: list[SheetCurrent], x: np.ndarray, method: str, tolerance: float, accuracy,
                    comm) -> str | None:
    """The path for the non-empty ``sheets`` and targets x ("auto" resolved: direct for fewer than
    _DIRECT_PAIR_LIMIT pairs, else grid where a grid level and :func:`_grid_applies` allow, else
    fmm), or None when there is nothing to compute. Collective with ``comm``."""
    n_targets = x.shape[0] if comm is None else comm.allreduce(x.shape[0])
    if not sheets or not n_targets:
        return None
    if method != "auto":
        return method
    if sum(s.n_panels for s in sheets) * n_targets < _DIRECT_PAIR_LIMIT:
        return "direct"
    grid_acc = accuracy if isinstance(accuracy, GridAccuracy) else grid_accuracy_for(tolerance)
    fits = grid_acc is not None and (x.shape[0] == 0 or _grid_applies(sheets, x, grid_acc))
    if comm is not None and comm.size > 1:
        fits = all(comm.allgather(fits))  # the paths are collective: every rank takes the same
    return "grid" if fits else "fmm"


def chosen_method(sheets: Sequence[SheetCurrent], targets: np.ndarray, *, tolerance: float = DEFAULT_TOLERANCE,
                  method: str = "auto", comm=None) -> str:
    """The path :func:`magnetic_flux_density` takes for these sheets and targets ("direct",
    "grid" or "fmm"; "auto" resolved). Collective with ``comm``."""
    resolved = _resolve_method([s for s in sheets if s.n_panels > 0], _check_targets(targets), method, tolerance,
                               None, comm)
    return resolved or "direct"


def magnetic_flux_density(
    sheets: Sequence[SheetCurrent],
    targets: np.ndarray,
    *,
    external_field=(0.0, 0.0, 0.0),
    tolerance: float = DEFAULT_TOLERANCE,
    method: str = "auto",
    accuracy: Accuracy | GridAccuracy | None = None,
    comm=None,
) -> np.ndarray:
    """B (T) at targets (N,3) from all sheets + uniform external field (T).

    method:
      * "direct": panel_field_exact, O(P·N), exact to round-off;
      * "grid": the screened particle–mesh split of :mod:`femion.magnetic.p3m` (FFT convolution on
        a uniform grid, exact panels near each target), for targets in at most GRID_MAX_PLANES
        heights; cost ~ panels + targets;
      * "fmm": fmm3dpy far field from quadrature points of every panel, with the exact panel
        field substituted for every panel whose centroid lies within near_factor·diam +
        circumradius of the target (targets close to the sheet plane are therefore always
        treated analytically by the panels under them);
      * "auto": direct when P·N < 2e6, else grid when the tolerance has a grid level and the
        targets suit it (:func:`_grid_applies`), else fmm.

    ``tolerance``: the relative error |B − B_exact| / |B_exact| to meet (where the sheets' field
    is not small against its largest: the far field's error is absolute, ~ tolerance · max|B|);
    it picks the cheapest measured level at or below it (:data:`GRID_LEVELS`,
    :data:`ACCURACY_LEVELS`). ``accuracy`` sets a path's settings directly instead (benchmarks).
    A target within 1e-15 m of a sheet plane raises ValueError.

    ``comm`` (mpi4py communicator; collective): every rank holds all the sheets and passes its
    own targets. fmm: the sources are split across the ranks (see _fmm_field); grid: each rank
    spreads its share of the sources and the FFTs are shared (see p3m.far_field). The near
    field is each rank's own.
    """
    if isinstance(sheets, SheetCurrent):
        sheets = [sheets]
    if method not in ("auto", "direct", "fmm", "grid"):
        raise ValueError(f"method must be 'auto', 'direct', 'grid' or 'fmm', got {method!r}")
    check_tolerance(tolerance)
    x = _check_targets(targets)
    ext = np.asarray(external_field, dtype=float).reshape(3)
    for s in sheets:
        if s.n_panels > 0:
            _check_off_plane(s, x)
    sheets = [s for s in sheets if s.n_panels > 0]
    B = np.zeros((x.shape[0], 3))
    resolved = _resolve_method(sheets, x, method, tolerance, accuracy, comm)
    if resolved is None:
        return B + ext[None, :]
    method = resolved
    if method == "grid":
        grid_acc = accuracy if isinstance(accuracy, GridAccuracy) else grid_accuracy_for(tolerance)
        if grid_acc is None:
            raise ValueError(f"no grid level at tolerance {tolerance:g} (they are {sorted(GRID_LEVELS)}): use fmm")
        for s in sheets:
            B += _grid_sheet(s, x, grid_acc, comm)
        return B + ext[None, :]
    geoms = [_geometry(s) for s in sheets]
    if method == "direct":
        for g in geoms:
            B += _direct(g, x)
    else:
        acc = accuracy if isinstance(accuracy, Accuracy) else accuracy_for(tolerance)
        quads = [_quadrature(g, acc.quad_order) for g in geoms]
        B += _fmm_field(geoms, quads, x, acc.fmm_eps, comm)
        for g, quad in zip(geoms, quads, strict=True):
            _near_field(g, quad, x, acc, B)
    return B + ext[None, :]
