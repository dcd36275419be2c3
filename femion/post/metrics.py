"""Measured outcomes of a film's filling θ̄ (pure numpy functions, each defined in its docstring).

θ̄ is the film's mean filling (oxide Li / c_max, averaged over the film thickness) at each plan
node; the film is uniform in thickness, so θ̄ integrated over the plan is proportional to the
film's Li. All lengths in m, times in s.

- :func:`li_centroid`: the Li-weighted plan centroid.
- :func:`motion_direction`: did that centroid move toward the end the current flows to (+1),
  away from it (−1), or by less than 1e-3 of the plate length (0)?
- :func:`share_in_destination_third`: fraction of the film's Li in the third of the plate
  nearest that end (1/3 for a uniform film).
- :func:`front_position`: the far edge of the depleted (bleached) region that grows from the
  source end, θ̄ = θ_ref/2.
- :func:`relaxation_time`: e-folding time of a decaying contrast (std of θ̄) in a relax stage.
- :func:`filling_difference`: max and mean |θ̄_b − θ̄_a| of two runs on the same plan nodes
  (e.g. the shell model beside the resolved stack).
"""

from __future__ import annotations

import math

import numpy as np

#: |centroid displacement| below this fraction of the plate length counts as no motion
MOTION_TOL = 1e-3
#: relaxation fit uses the outputs whose contrast is above this fraction of the initial one
RELAX_FLOOR = 0.05


def _line_axis(xy: np.ndarray) -> int | None:
    """The varying axis (0 = x, 1 = y) if the nodes lie on a line parallel to it, else None."""
    span = np.ptp(xy, axis=0)
    big = span.max()
    if big == 0.0:
        return None
    return int(np.argmax(span)) if span.min() <= 1e-9 * big else None


def node_weights(xy) -> np.ndarray:
    """Plan measure (length or area, m or m²) lumped to each node.

    Nodes on a line (a 2D x–z section: all y equal) get trapezoid weights along the line,
    (x_{i+1} − x_{i−1})/2, half a spacing at the ends. Nodes spread over the plan get a third of
    the area of each Delaunay triangle they belong to (lumped P1 mass). Equal weights otherwise.
    """
    xy = np.asarray(xy, dtype=float).reshape(-1, 2)
    n = len(xy)
    if n < 2:
        return np.ones(n)
    axis = _line_axis(xy)
    if axis is not None:
        order = np.argsort(xy[:, axis], kind="stable")
        d = np.diff(xy[order, axis])
        w_sorted = np.r_[d, 0.0] / 2 + np.r_[0.0, d] / 2
        w = np.empty(n)
        w[order] = w_sorted
        return w
    if np.ptp(xy, axis=0).max() == 0.0:
        return np.ones(n)
    try:
        from scipy.spatial import Delaunay

        tri = Delaunay(xy)
        p = xy[tri.simplices]
        area = 0.5 * np.abs((p[:, 1, 0] - p[:, 0, 0]) * (p[:, 2, 1] - p[:, 0, 1])
                            - (p[:, 2, 0] - p[:, 0, 0]) * (p[:, 1, 1] - p[:, 0, 1]))
        w = np.bincount(tri.simplices.ravel(), weights=np.repeat(area / 3, 3), minlength=n)
        if np.all(np.isfinite(w)) and w.sum() > 0:
            return w
    except Exception:  # scipy missing or a degenerate set: fall back to equal weights
        pass
    return np.ones(n)


def weighted_mean_std(xy, theta) -> tuple[float, float]:
    """Plan mean and standard deviation of θ̄ with the :func:`node_weights` measure."""
    w = node_weights(xy)
    th = np.asarray(theta, dtype=float)
    mean = float(np.sum(w * th) / np.sum(w))
    return mean, float(np.sqrt(np.sum(w * (th - mean) ** 2) / np.sum(w)))


def li_centroid(xy, theta) -> np.ndarray:
    """Li-weighted plan centroid (m): Σ wᵢθ̄ᵢ xyᵢ / Σ wᵢθ̄ᵢ, wᵢ from :func:`node_weights`.

    NaN if the film holds no Li.
    """
    xy = np.asarray(xy, dtype=float).reshape(-1, 2)
    m = node_weights(xy) * np.asarray(theta, dtype=float)
    total = m.sum()
    if not total > 0:
        return np.full(2, np.nan)
    return (m[:, None] * xy).sum(axis=0) / total


def motion_direction(xy0, th0, xy1, th1, toward_xy, tol: float | None = None) -> tuple[int, float]:
    """Direction of the Li motion between two states, and its size.

    d = (c₁ − c₀)·û, with cᵢ the :func:`li_centroid` of each state and û the unit vector from c₀
    to ``toward_xy`` (the plan point the current flows to). Returns (+1, d) if d > tol (Li moved
    toward that end), (−1, d) if d < −tol (away), (0, d) otherwise. ``tol`` defaults to
    ``MOTION_TOL`` (1e-3) × the largest plan extent of the nodes (the plate length). d in m.
    """
    xy0 = np.asarray(xy0, dtype=float).reshape(-1, 2)
    c0, c1 = li_centroid(xy0, th0), li_centroid(xy1, th1)
    u = np.asarray(toward_xy, dtype=float) - c0
    norm = np.linalg.norm(u)
    if not np.isfinite(norm) or norm == 0.0:
        return 0, float("nan")
    d = float(np.dot(c1 - c0, u / norm))
    if tol is None:
        tol = MOTION_TOL * float(np.ptp(xy0, axis=0).max())
    return (1 if d > tol else -1 if d < -tol else 0), d


def destination_axis(toward_xy, plate) -> tuple[int, float]:
    """The plate axis (0 = x, 1 = y) and sign (±1) pointing from the plate centre to
    ``toward_xy``: the axis along which it lies farthest out relative to the half-length."""
    (x0, x1), (y0, y1) = plate
    centre = np.array([(x0 + x1) / 2, (y0 + y1) / 2])
    half = np.array([(x1 - x0) / 2, (y1 - y0) / 2])
    rel = (np.asarray(toward_xy, dtype=float) - centre) / np.where(half > 0, half, np.inf)
    axis = int(np.argmax(np.abs(rel)))
    if rel[axis] == 0.0:
        raise ValueError(f"toward point {list(toward_xy)} is the plate centre: no destination end")
    return axis, float(np.sign(rel[axis]))


def _pl_integral(x: np.ndarray, f: np.ndarray, lo: float, hi: float) -> float:
    """∫_lo^hi of the piecewise-linear interpolant of f(x) (x ascending), clipped to the data."""
    lo, hi = max(lo, x[0]), min(hi, x[-1])
    if hi <= lo:
        return 0.0
    inside = (x > lo) & (x < hi)
    xs = np.r_[lo, x[inside], hi]
    return float(np.trapezoid(np.interp(xs, x, f), xs))


def share_in_destination_third(xy, theta, toward_xy, plate) -> float:
    """Fraction of the film's Li in the third of the plate nearest ``toward_xy``.

    The axis is the plate axis from the centre toward ``toward_xy`` (:func:`destination_axis`,
    x for a strip driven end to end); the destination third is the last third of the plate's
    length along it. A section (nodes on a line along that axis) is integrated exactly as the
    piecewise-linear θ̄; plan node sets by the midpoint rule on a 300 × 120 grid of the linear
    (Delaunay) interpolant of θ̄. Uniform θ̄ → 1/3.
    ``plate`` = ((x_min, x_max), (y_min, y_max)) in m.
    """
    xy = np.asarray(xy, dtype=float).reshape(-1, 2)
    th = np.asarray(theta, dtype=float)
    axis, sign = destination_axis(toward_xy, plate)
    lo, hi = plate[axis]
    third = (hi - lo) / 3
    cut_lo, cut_hi = (hi - third, hi) if sign > 0 else (lo, lo + third)
    if _line_axis(xy) == axis:
        order = np.argsort(xy[:, axis], kind="stable")
        x, f = xy[order, axis], th[order]
        total = _pl_integral(x, f, x[0], x[-1])
        return _pl_integral(x, f, cut_lo, cut_hi) / total if total > 0 else float("nan")
    try:  # plan set: midpoint rule on 300 × 120 cells of the P1 (Delaunay) interpolant
        from scipy.interpolate import LinearNDInterpolator

        (x0, x1), (y0, y1) = plate
        n = (300, 120) if axis == 0 else (120, 300)
        gx = x0 + (np.arange(n[0]) + 0.5) * (x1 - x0) / n[0]
        gy = y0 + (np.arange(n[1]) + 0.5) * (y1 - y0) / n[1]
        X, Y = np.meshgrid(gx, gy, indexing="ij")
        f = LinearNDInterpolator(xy, th)(X, Y)
        s = X if axis == 0 else Y
        ok = np.isfinite(f)
        total = f[ok].sum()
        return float(f[ok & (s >= cut_lo) & (s <= cut_hi)].sum() / total) if total > 0 else float("nan")
    except ImportError:
        m = node_weights(xy) * th
        s = xy[:, axis]
        inside = (s >= cut_lo) & (s <= cut_hi)
        return float(m[inside].sum() / m.sum()) if m.sum() > 0 else float("nan")


def front_position(x, theta, theta_ref: float, source: str = "min") -> float:
    """Position x (m) of the bleaching front in a profile θ̄(x).

    The depleted region is where θ̄ < θ_ref/2 (the film has lost more than half its Li;
    θ_ref is normally the film's mean filling when the stage starts). Scanning from the source
    end (``source`` = "min": from the smallest x, "max": from the largest), the front is the
    first point where θ̄ rises back to θ_ref/2 after the scan has entered the depleted region,
    linearly interpolated between nodes. Leading nodes that are not depleted (e.g. an uncoated
    strip at the source end) are skipped. NaN if θ̄ never falls below θ_ref/2; the far end if
    the film is depleted all the way.
    """
    x = np.asarray(x, dtype=float)
    th = np.asarray(theta, dtype=float)
    order = np.argsort(x, kind="stable")
    if source == "max":
        order = order[::-1]
    elif source != "min":
        raise ValueError(f"source must be 'min' or 'max', got {source!r}")
    x, th = x[order], th[order]
    half = theta_ref / 2
    below = th < half
    if not below.any():
        return float("nan")
    i = int(np.argmax(below))
    rest = np.flatnonzero(~below[i:])
    if rest.size == 0:
        return float(x[-1])
    j = i + int(rest[0])
    return float(x[j - 1] + (half - th[j - 1]) * (x[j] - x[j - 1]) / (th[j] - th[j - 1]))


def relaxation_time(times, contrast, floor: float = RELAX_FLOOR) -> tuple[float, str]:
    """e-folding time τ (s) of a decaying contrast c(t) ≥ 0, e.g. the std of θ̄ in a relax stage.

    Least-squares fit of ln c = a − (t − t₀)/τ over the outputs with c > ``floor`` × c(t₀)
    (5 %: the tail near the noise or a residual floor is left out). If only the first point is
    above the floor, the first two outputs give τ = (t₁ − t₀)/ln(c₀/c₁). Returns (τ, note): the
    note says how τ was found, or, with τ = NaN, why there is none (fewer than two outputs, no
    initial contrast, or the contrast did not decay: fitted slope ≥ 0 or a fall of less than
    5 % over the fitted span).
    """
    t = np.asarray(times, dtype=float)
    c = np.asarray(contrast, dtype=float)
    if t.size < 2:
        return float("nan"), "fewer than two outputs in the stage"
    if not (np.isfinite(c[0]) and c[0] > 0):
        return float("nan"), "no initial contrast"
    keep = np.isfinite(c) & (c > floor * c[0])
    if keep.sum() < 2:
        if c[1] > 0 and c[1] < c[0]:
            tau = (t[1] - t[0]) / math.log(c[0] / c[1])
            return float(tau), f"from the first two outputs (contrast fell below {floor:.0%} by the second)"
        return float("nan"), "contrast vanished by the second output: tau shorter than the output interval"
    tk = t[keep] - t[0]
    slope, _ = np.polyfit(tk, np.log(c[keep]), 1)
    if slope >= 0 or math.exp(slope * (tk[-1] - tk[0])) > 1 - floor:
        return float("nan"), (f"did not decay (contrast changed by {c[keep][-1] / c[0] - 1:+.1%} "
                               f"over {tk[-1] - tk[0]:g} s)")
    return float(-1.0 / slope), f"least-squares fit of ln(contrast) over {int(keep.sum())} outputs"


def filling_difference(xy_a, theta_a, xy_b, theta_b, tol: float = 1e-7) -> tuple[float, float]:
    """(max, mean) of |θ̄_b − θ̄_a| over the plan nodes, matched by position within ``tol`` (m).
    ValueError if the two sets of nodes differ (the runs were not made on the same plan mesh)."""
    ka = np.round(np.asarray(xy_a) / tol).astype(np.int64)
    kb = np.round(np.asarray(xy_b) / tol).astype(np.int64)
    index = {tuple(k): i for i, k in enumerate(ka)}
    pairs = [(index[tuple(k)], j) for j, k in enumerate(kb) if tuple(k) in index]
    if len(pairs) != len(ka) or len(kb) != len(ka):
        raise ValueError(f"the runs' plan nodes differ ({len(pairs)} matched of {len(ka)} and {len(kb)})")
    i, j = np.array(pairs, dtype=np.int64).reshape(-1, 2).T
    d = np.abs(np.asarray(theta_b)[j] - np.asarray(theta_a)[i])
    return float(d.max(initial=0.0)), float(d.mean()) if d.size else 0.0


def profile_line_y(case, default: float) -> float:
    """y (m) of the line the x-profiles of a 3D run follow: through the middle of the electrolyte's
    coated area if it is patterned, else through the driven track's, else ``default``."""
    from femion.geometry.plan import pattern_geometry

    el = case.transport_layers().electrolyte
    patterns = [el.pattern if el is not None else None] + [case.layer(d.conductor).pattern for d in case.drives]
    for pattern in patterns:
        if pattern is not None:
            return float(pattern_geometry(pattern, case.geometry.plate).centroid.y)
    return default


#: the band (m) around a track within which its change counts as on the track, and the distance
#: beyond which a change counts as off it (the film's own conductance carries exchange ~1 mm out)
TRACK_NEAR, TRACK_FAR = 1e-3, 2e-3


def track_following(xy, change, polygon, centreline, n_samples: int = 60) -> dict:
    """How the change of θ̄ (``change`` at plan nodes ``xy``, m) follows a driven track (seed 000 Fig. 5c).

    ``share_near``: the node-weighted share of |Δθ̄| within :data:`TRACK_NEAR` of the track's
    ``polygon``; ``off_track_ratio``: max |Δθ̄| beyond :data:`TRACK_FAR` over max |Δθ̄|; along the
    ``centreline`` (from start pad to end pad, ``n_samples`` points): Spearman's rank correlation of
    Δθ̄ with arc length (``rank_with_arc``, near 1 when the change rises start → end) and with x
    (``rank_with_x``, small for a track that runs forth and back in x), and Δθ̄ at its two ends.
    """
    import shapely
    from scipy.interpolate import LinearNDInterpolator
    from scipy.stats import spearmanr

    xy, change = np.asarray(xy, dtype=float), np.asarray(change, dtype=float)
    dist = shapely.distance(polygon, shapely.points(xy))
    w = node_weights(xy) * np.abs(change)
    s = np.linspace(0.0, centreline.length, n_samples)
    pts = np.array([centreline.interpolate(v).coords[0] for v in s])
    along = LinearNDInterpolator(xy, change)(pts)
    ok = np.isfinite(along)
    largest = float(np.abs(change).max())
    off_track = float(np.abs(change[dist > TRACK_FAR]).max(initial=0.0))
    return {
        "share_near": float(w[dist <= TRACK_NEAR].sum() / w.sum()) if w.sum() > 0 else math.nan,
        "off_track_ratio": off_track / largest if largest > 0 else math.nan,
        "rank_with_arc": float(spearmanr(s[ok], along[ok]).statistic),
        "rank_with_x": float(spearmanr(pts[ok, 0], along[ok]).statistic),
        "change_at_start": float(along[ok][:5].mean()), "change_at_end": float(along[ok][-5:].mean()),
        "arc_m": s.tolist(), "change_along": along.tolist(),
    }
