"""B of flat sheet panels at targets in a few planes: a screened particle–particle particle–mesh split.

Each panel is represented by point current elements J_g = K·w_g at its quadrature points. Their
field at height Z above the sheet is split with a smooth screen S(ρ/b) of the in-plane distance ρ
(S = 0 at 0, ~21 (ρ/b)⁵ near it, 1 from b on, C²):

    B = Σ_panels B_exact − Σ_g μ0/4π J_g × F(r − r_g)·S      (near pairs, ρ < b: direct)
      + Σ_g μ0/4π J_g × F(r − r_g)·S                           (all sources: on a grid)

with F(R) = R/|R|³. The screened kernel F·S is smooth on the scale b (its singularity is cut
out), so the last sum is a discrete convolution on a uniform grid of spacing H ≪ b: sources
spread to the grid and the result read back with 4×4-point (cubic Lagrange) weights, the
convolution done by a zero-padded FFT per target height, one grid per sheet. The near pairs replace the grid's
screened part with the exact panel field (panels within exact_factor·diam + circumradius of the
target) or with the unscreened point sources (the rest of the pairs with ρ < b). Errors: the
grid's interpolation, ~ (H/b)⁴, and the quadrature of the panels beyond the exact radius. A
screen of high order at 0 keeps F·S smooth also for targets at heights Z ~ H, where F itself
varies on the scale Z (with S ~ t³ the error there was 2× larger at the same cost).

The cost is linear in panels + targets (the FFT's N log N aside): no tree of multipole
expansions, since every source lies in a plane z = z_sheet and the targets in a few planes.
Pure numpy/scipy; no DOLFINx.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.fft
import scipy.sparse
from scipy.spatial import cKDTree

__all__ = ["GRID_PLANE_BAND", "KD_TREE_OPTIONS", "GridAccuracy", "box", "far_field", "last_axis_max", "near_field",
           "panel_size", "scatter_add", "screen", "subtract_point_sources"]

_NEAR_BLOCK_TARGETS = 16_384  # targets per near-field block
# kd-trees built unbalanced and not shrunk to their points: ~3x faster to build and 25 % faster to
# query for the near pairs (points spread evenly over a plane: panels and targets of one sheet)
KD_TREE_OPTIONS = {"balanced_tree": False, "compact_nodes": False}
_POINT_BLOCK = 32_768  # points per block of the grid's stencil matrices
_KERNEL_BLOCK = 65_536  # grid nodes per block of the kernels' evaluation
_STENCIL = (-1, 0, 1, 2)  # 4-point Lagrange stencil around the grid cell holding a point
# targets within GRID_PLANE_BAND·diam of a panel's plane use GridAccuracy.plane_exact_factor: the
# interface, 0.6 µm up, is within it for panels down to 0.03 mm. (0.2, as the fmm path's band, took
# targets 0.06 h over 5 mm panels for in-plane, and missed 1 % there: 1.7e-2.)
GRID_PLANE_BAND = 0.02


@dataclass(frozen=True)
class GridAccuracy:
    """Settings of the "grid" path, in the sheet's panel size h (:func:`panel_size`): grid
    spacing H = spacing·h, screen radius b = screen·h, the panels' point sources (quadrature
    order: order² Gauss points on quads, 1, 3 or 7 points on triangles), and the radius within
    which a panel's field is exact, exact_factor·diam + circumradius (3-D distance), or
    plane_exact_factor·diam + circumradius for targets within GRID_PLANE_BAND·diam of the panel's
    plane (there the point sources of the next panels are already accurate)."""

    spacing: float
    screen: float
    quad_order: int
    exact_factor: float
    plane_exact_factor: float

    def __post_init__(self):
        if not (0 < self.spacing < self.screen):
            raise ValueError(f"need 0 < spacing < screen, got {self.spacing!r}, {self.screen!r}")
        if min(self.exact_factor, self.plane_exact_factor) < 0:
            raise ValueError(f"exact factors must be ≥ 0, got {self.exact_factor!r}, {self.plane_exact_factor!r}")


def box(*point_sets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The least and largest coordinates (2,) of the points (..., 2) of the non-empty sets, taken
    column by column (numpy reduces an (M, 2) array along its first axis ~30x slower)."""
    cols = [[p[..., j].min() for p in point_sets if p.size] for j in (0, 1)]
    lo = np.array([min(c) for c in cols])
    cols = [[p[..., j].max() for p in point_sets if p.size] for j in (0, 1)]
    return lo, np.array([max(c) for c in cols])


def last_axis_max(a: np.ndarray) -> np.ndarray:
    """a.max(axis=-1) for a short last axis (a loop of np.maximum: numpy's reduction along an axis
    of 3 or 4 is ~10x slower)."""
    out = a[..., 0].copy()
    for j in range(1, a.shape[-1]):
        np.maximum(out, a[..., j], out=out)
    return out


def screen(t: np.ndarray) -> np.ndarray:
    """S(t) = 21t⁵ − 35t⁶ + 15t⁷ on [0, 1], 1 beyond (t ≥ 0): S ~ 21t⁵ at 0, so F·S stays smooth
    where F = R/|R|³ is singular; S' = 105t⁴(1 − t)², so S is C² at t = 1."""
    t = np.minimum(t, t.dtype.type(1.0))
    t2 = t * t
    return t2 * t2 * t * (21.0 + t * (-35.0 + 15.0 * t))


def _lagrange_weights(f: np.ndarray) -> np.ndarray:
    """Cubic Lagrange weights (4, M) of the nodes _STENCIL = (−1, 0, 1, 2) at the fractions f (M,)
    ∈ [0, 1) of a cell, in f's dtype: −f(f−1)(f−2)/6, (f+1)(f−1)(f−2)/2, −(f+1)f(f−2)/2, (f+1)f(f−1)/6."""
    fm1, fp1, fm2 = f - 1, f + 1, f - 2
    a, b = f * fm1, fp1 * fm2
    return np.stack([a * fm2 * (-1 / 6), b * fm1 * 0.5, b * f * -0.5, a * fp1 * (1 / 6)])


def _even_fast_len(n: int) -> int:
    """The smallest even length ≥ n that scipy.fft transforms fast (even: the kernels' DCT/DST)."""
    n = scipy.fft.next_fast_len(n, real=True)
    while n % 2:
        n = scipy.fft.next_fast_len(n + 1, real=True)
    return n


@dataclass(frozen=True)
class _Grid:
    lo: np.ndarray  # (2,) the node (0, 0), m
    spacing: float
    shape: tuple[int, int]  # nodes
    fft_shape: tuple[int, int]  # zero-padded for a linear convolution

    @classmethod
    def covering(cls, point_sets, spacing: float, comm=None) -> _Grid:
        """The grid over the points (M, 2) of ``point_sets`` (of all ranks with ``comm``) with room
        for the stencil."""
        lo, hi = box(*point_sets)
        if comm is not None and comm.size > 1:
            lo = np.min(comm.allgather(lo), axis=0)
            hi = np.max(comm.allgather(hi), axis=0)
        margin = 2.0 * spacing  # the stencil reaches one node below and two above the cell
        lo = lo - margin
        n = np.ceil((hi + margin - lo) / spacing).astype(int) + 1
        shape = (int(n[0]), int(n[1]))
        fft_shape = tuple(_even_fast_len(2 * m) for m in shape)
        return cls(lo, spacing, shape, fft_shape)

    def cell(self, p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The grid cell (M, 2) (int32) of points p (M, 2) and their fractions (M, 2) ∈ [0, 1) in it."""
        f = (p - self.lo) * (1.0 / self.spacing)
        i = f.astype(np.int32)  # f > 0 (the grid's margin): truncation is the floor
        return i, f - i

    def stencil(self, p: np.ndarray, first_row: int = 0, rows: int | None = None) -> scipy.sparse.csr_array:
        """The (points × nodes) matrix of the 4×4 Lagrange weights of points p (M, 2): it reads
        grid values at the points, and its transpose spreads point values onto the grid. With
        ``first_row``, ``rows``: over the nodes of those grid rows only (the points' stencils
        must lie within them)."""
        rows = self.shape[0] - first_row if rows is None else rows
        i, f = self.cell(p)
        ny = self.shape[1]
        offs = np.asarray(_STENCIL, dtype=np.int32)
        # int32 indices: scipy.sparse keeps them as they are (int64 ones it checks and converts)
        node = (((i[:, 0] - first_row) * ny + i[:, 1])[:, None] + (offs[:, None] * ny + offs).ravel()).reshape(-1)
        # float32 weights (the grid is float32 for the FFT): half the memory traffic
        f = f.astype(np.float32)
        wx, wy = _lagrange_weights(np.ascontiguousarray(f[:, 0])), _lagrange_weights(np.ascontiguousarray(f[:, 1]))
        w = (wx.T[:, :, None] * wy.T[:, None, :]).reshape(-1)
        n = len(_STENCIL) ** 2
        indptr = np.arange(0, n * p.shape[0] + 1, n, dtype=np.int32)
        return scipy.sparse.csr_array((w, node, indptr), shape=(p.shape[0], rows * ny))

    def spread(self, p: np.ndarray, values: np.ndarray) -> np.ndarray:
        """Grid of the point values (M, k) spread with the stencil weights: shape (k, nx, ny), float32.

        The points go in order of their grid row (a radix sort on 16-bit keys, O(M)) and in blocks,
        so each block adds into the few grid rows it touches: the work is ~ points, not
        points × grid nodes / block."""
        ny = self.shape[1]
        out = np.zeros((self.shape[0] * ny, values.shape[1]), dtype=np.float32)
        values = values.astype(np.float32)
        # the points' grid rows, as cell() finds them (x only: a quarter of its temporaries)
        row = ((p[:, 0] - self.lo[0]) * (1.0 / self.spacing)).astype(np.int32)
        order = np.argsort(row.astype(np.uint16) if self.shape[0] < 2**16 else row, kind="stable")
        for c0 in range(0, p.shape[0], _POINT_BLOCK):  # blocks: small temporaries, reused memory
            sel = order[c0 : c0 + _POINT_BLOCK]
            r0 = int(row[sel[0]]) - 1  # the stencil's rows: one below ... two above
            r1 = int(row[sel[-1]]) + 3
            a = self.stencil(p[sel], first_row=r0, rows=r1 - r0)
            out[r0 * ny : r1 * ny] += a.T @ values[sel]
        return np.ascontiguousarray(out.T).reshape(values.shape[1], *self.shape)

    def padded_spectrum(self, a: np.ndarray) -> np.ndarray:
        """rfft2 of the grid values a (nx, ny) zero-padded to fft_shape: the transform along the
        rows only over the nx rows that are not zero (a quarter less work than rfft2)."""
        return scipy.fft.fft(scipy.fft.rfft(a, n=self.fft_shape[1], axis=1), n=self.fft_shape[0], axis=0)

    def convolved(self, spectrum: np.ndarray) -> np.ndarray:
        """The grid's nodes (nx, ny) of the inverse of an rfft2-layout ``spectrum`` on fft_shape:
        the transform along the rows only over the nx rows kept (a quarter less work than irfft2)."""
        nx, ny = self.shape
        rows = scipy.fft.ifft(spectrum, axis=0)[:nx]
        return scipy.fft.irfft(rows, n=self.fft_shape[1], axis=1)[:, :ny]

    def interpolate(self, fields: np.ndarray, p: np.ndarray) -> np.ndarray:
        """The grid values ``fields`` (k, nodes) at points p (M, 2): shape (M, k)."""
        out = np.empty((p.shape[0], fields.shape[0]))
        ft = np.ascontiguousarray(fields.T)
        for c0 in range(0, p.shape[0], _POINT_BLOCK):
            out[c0 : c0 + _POINT_BLOCK] = self.stencil(p[c0 : c0 + _POINT_BLOCK]) @ ft
        return out


def _screened_kernel_spectra(grid: _Grid, Z: float, b: float, parts: str) -> list[np.ndarray]:
    """Spectra of the screened kernels named in ``parts`` ("z": Z·S/R³, "x": X·S/R³, "y": Y·S/R³)
    on the padded grid, in rfft2's layout. Each kernel is even or odd in X and in Y, so its
    spectrum follows from the quarter of non-negative offsets by DCT-I (even) and DST-I (odd)
    transforms, a quarter of the work of the full grid's FFT. The spectrum of an odd kernel is −i
    times the real array returned: "z" is returned as Ŝz, "x" and "y" as Ŝx, Ŝy with K̂ = −i·Ŝ.
    float32 (a relative 1e-7 against tolerances of 1e-2 to 1e-4; half the time and memory of
    float64); evaluated in blocks of rows: small temporaries, each page touched once."""
    n0, n1 = grid.fft_shape[0] // 2, grid.fft_shape[1] // 2
    X = (np.arange(n0 + 1, dtype=np.float32) * np.float32(grid.spacing))[:, None]
    Y = (np.arange(n1 + 1, dtype=np.float32) * np.float32(grid.spacing))[None, :]
    kernels = np.empty((len(parts), n0 + 1, n1 + 1), dtype=np.float32)
    rows = max(1, _KERNEL_BLOCK // (n1 + 1))
    z2, inv_b = np.float32(Z * Z), np.float32(1.0 / b)
    for r0 in range(0, n0 + 1, rows):
        xb = X[r0 : r0 + rows]
        rho2 = xb * xb + Y * Y
        R2 = rho2 + z2
        s = screen(np.sqrt(rho2) * inv_b) / (R2 * np.sqrt(R2))
        for k, part in enumerate(parts):
            factor = {"z": np.float32(Z), "x": xb, "y": Y}[part]
            np.multiply(factor, s, out=kernels[k, r0 : r0 + rows])
    out = []
    for k, part in zip(kernels, parts, strict=True):
        # the offset n0 (n1) stands for ±n0·H: no target–source pair reaches it, so an odd kernel is
        # 0 there as at 0, and its DST-I runs over the offsets 1 … n0 − 1
        if part == "x":
            q = np.zeros_like(k)
            q[1:n0] = scipy.fft.dst(k[1:n0], type=1, axis=0)
            q = scipy.fft.dct(q, type=1, axis=1)
        else:
            q = scipy.fft.dct(k, type=1, axis=0)
        if part == "y":
            q[:, 1:n1] = scipy.fft.dst(q[:, 1:n1], type=1, axis=1)
            q[:, 0] = q[:, n1] = 0.0
        elif part == "z":
            q = scipy.fft.dct(q, type=1, axis=1)
        sign = -1.0 if part == "x" else 1.0  # the mirror of axis 0: even (+) or odd (−) in X
        out.append(np.concatenate([q, sign * q[n0 - 1 : 0 : -1]]))
    return out


def far_field(src: np.ndarray, J: np.ndarray, z_sheet: float, x: np.ndarray, spacing: float, b: float,
              comm=None) -> np.ndarray:
    """Σ_g J_g × F(r − r_g)·S(ρ/b) (A/m, i.e. B·4π/μ0) at targets x (N, 3) of point current
    elements J (M, 2) (A·m) at ``src`` (M, 2) in the plane z_sheet, on a grid of the given spacing.

    With ``comm`` (collective) every rank passes its share of the sources and its own targets:
    the ranks' spread grids are summed; the two source spectra, and the two kernel tasks (Bx, By
    from Z·S/R³; Bz from X·S/R³ and Y·S/R³), go to different ranks and are broadcast, so two ranks
    share the FFTs."""
    parallel = comm is not None and comm.size > 1
    rank, size = (comm.rank, comm.size) if parallel else (0, 1)
    grid = _Grid.covering([src, x[:, :2]], spacing, comm)
    gJ = grid.spread(src, J)
    if parallel:
        comm.Allreduce(gJ.copy(), gJ)  # the sum of the ranks' shares
    half = (grid.fft_shape[0], grid.fft_shape[1] // 2 + 1)
    jx, jy = spectra = np.empty((2, *half), dtype=np.complex64)
    for c in range(2):
        if rank == c % size:
            spectra[c] = grid.padded_spectrum(gJ[c])
        if parallel:
            comm.Bcast(spectra[c], root=c % size)
    del gJ

    heights = np.unique(x[:, 2])
    if parallel:  # every rank takes part in every height's FFTs
        heights = np.unique(np.concatenate(comm.allgather(heights)))
    nx, ny = grid.shape
    B = np.zeros((x.shape[0], 3))
    for zt in heights:
        Z = float(zt - z_sheet)
        fields = np.empty((3, nx, ny), dtype=np.float32)
        parts = ("z" if rank == 0 else "") + ("xy" if rank == 1 % size else "")  # one kernel pass for both
        k = dict(zip(parts, _screened_kernel_spectra(grid, Z, b, parts), strict=True))
        if "z" in k:  # Bx = μ0/4π Jy·Z/R³, By = −μ0/4π Jx·Z/R³
            fields[0] = grid.convolved(jy * k["z"])
            fields[1] = grid.convolved(-jx * k["z"])
        if "x" in k:  # Bz = μ0/4π (Jx·Y − Jy·X)/R³, the odd kernels' spectra −i·Ŝ
            fields[2] = grid.convolved(-1j * (jx * k["y"] - jy * k["x"]))
        if parallel:
            comm.Bcast(fields[:2], root=0)
            comm.Bcast(fields[2], root=1 % size)
        sel = np.flatnonzero(x[:, 2] == zt)
        if sel.size:
            B[sel] += grid.interpolate(fields.reshape(3, -1), x[sel, :2])
    return B


def panel_size(diam: np.ndarray) -> float:
    """The size h (m) of a sheet's panels that the grid settings are measured in: the median
    diameter / √2 (the side of a square panel, the legs of a right isosceles triangle). One
    sheet's: a grid scaled by a finer sheet's panels missed 1 % with coarse panels 0.3 mm up."""
    return float(np.median(diam) / np.sqrt(2.0))


def near_field(g, pts, w, x, b, acc: GridAccuracy, B, panel_field, mu0_4pi) -> None:
    """Add to B (T, in place) at targets x the near pairs' part: exact − screened point sources
    (pairs within the exact radius) and unscreened − screened point sources (the other pairs whose
    sources may lie within b) of the panels ``g`` (biot_savart._PanelGeom) with point sources
    ``pts``, ``w``. ``panel_field(g, pidx, x)``: the exact field of panel pairs."""
    r_exact = acc.exact_factor * g.diam + g.radius
    r_exact_plane = acc.plane_exact_factor * g.diam + g.radius
    # a pair's screen matters when one of its sources lies within b of the target
    d = pts - g.centroid[:, None, :]
    src_radius = np.sqrt(last_axis_max(d[..., 0] ** 2 + d[..., 1] ** 2))
    reach_plane = float(max(b + src_radius.max(), r_exact_plane.max()))  # all targets of a block in the plane band
    reach = max(reach_plane, float(r_exact.max()))
    band = GRID_PLANE_BAND * float(g.diam.min())
    # contiguous columns for the pairs' gathers; the sources' offsets from their panel's centroid
    cx, cy = np.ascontiguousarray(g.centroid[:, 0]), np.ascontiguousarray(g.centroid[:, 1])
    relx, rely = (np.ascontiguousarray(d[..., j], dtype=np.float32) for j in (0, 1))
    del d  # 16 bytes a source: at 1e6 panels, memory's first touch costs more than its reuse
    w32 = w.astype(np.float32)
    tree = cKDTree(g.centroid, **KD_TREE_OPTIONS)
    for t0 in range(0, x.shape[0], _NEAR_BLOCK_TARGETS):
        xb = x[t0 : t0 + _NEAR_BLOCK_TARGETS]
        in_band = bool(np.all(np.abs(xb[:, 2] - g.z) <= band))
        sdm = tree.sparse_distance_matrix(cKDTree(xb[:, :2], **KD_TREE_OPTIONS), reach_plane if in_band else reach,
                                          output_type="ndarray")
        p, t = sdm["i"].astype(np.int64), sdm["j"].astype(np.int64)
        dz = xb[t, 2] - g.z
        r_ex = np.where(np.abs(dz) <= GRID_PLANE_BAND * g.diam[p], r_exact_plane[p], r_exact[p])
        exact = sdm["v"] ** 2 + dz * dz <= r_ex * r_ex
        keep = exact | (sdm["v"] < b + src_radius[p])
        p, t, exact, dz = p[keep], t[keep], exact[keep], dz[keep]
        dB = np.zeros((p.size, 3))
        if exact.any():
            dB[exact] = panel_field(g, p[exact], xb[t[exact]])
        # float32 offsets from the target (relative 1e-7 of each term)
        rx = (xb[t, 0] - cx[p]).astype(np.float32)[:, None] - relx[p]  # (M, nq)
        ry = (xb[t, 1] - cy[p]).astype(np.float32)[:, None] - rely[p]
        # w·(S − 1 + [exact]) / R³, S = screen(ρ/b)
        rho2 = rx * rx + ry * ry
        R2 = rho2 + (dz * dz).astype(np.float32)[:, None]
        s = screen(np.sqrt(rho2) * np.float32(1.0 / b))
        s += (exact - 1.0).astype(np.float32)[:, None]
        s *= w32[p]
        R = np.sqrt(R2)
        R *= R2
        s /= R
        subtract_point_sources(dB, g.K[p], s, rx, ry, dz, mu0_4pi)
        scatter_add(B[t0 : t0 + _NEAR_BLOCK_TARGETS], t, dB)


def subtract_point_sources(dB, K, wq, rx, ry, dz, mu0_4pi) -> None:
    """dB −= μ0/4π Σ_q wq·J × (rx, ry, dz) (in place, per pair): the field of point current
    elements J = K·w_q (A·m; ``wq`` = w_q/R³, possibly screened) at offsets (rx, ry) (M, nq) and
    height dz (M,) from the target, with J × r = (Jy·dz, −Jx·dz, Jx·ry − Jy·rx)."""
    Sx = np.einsum("mq,mq->m", wq, rx)
    Sy = np.einsum("mq,mq->m", wq, ry)
    Sz = np.einsum("mq->m", wq) * dz  # einsum: wq.sum(axis=1) is 4x slower for nq = 4
    dB[:, 0] -= mu0_4pi * K[:, 1] * Sz
    dB[:, 1] += mu0_4pi * K[:, 0] * Sz
    dB[:, 2] -= mu0_4pi * (K[:, 0] * Sy - K[:, 1] * Sx)


def scatter_add(B: np.ndarray, t: np.ndarray, dB: np.ndarray) -> None:
    """B[t] += dB (in place), the pairs' targets t repeated."""
    n = B.shape[0]
    for j in range(3):
        B[:, j] += np.bincount(t, weights=dB[:, j], minlength=n)
