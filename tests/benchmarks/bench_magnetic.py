"""Benchmark of femion.magnetic.biot_savart: error against the exact strip field vs cost.

A 20 mm x 50 mm strip (0.2 A, K = I/W along x) as a regular grid of square panels of side h.
Targets (tests/verification/test_magnetic.py: strip_targets): every panel corner 0.6 µm above the
sheet (as the run's interface nodes, one per panel), plus 1000 random points over the strip at each
height h/3, h, 3h and 1 mm. Reference: the exact field of the uniform rectangle, i.e. the whole
strip as ONE panel (analytic solid angle and edge integrals: no discretisation at all).
Error: max over the targets of |B − B_exact| / |B_exact| (the meaning of ``magnetic.tolerance``).

Run from the repository root (PYTHONPATH=. ; OMP_NUM_THREADS=1 for per-core figures, fmm3dpy is
OpenMP-threaded):
  python tests/benchmarks/bench_magnetic.py [--method grid|fmm]
                                                      each tolerance level at h = 0.5, 0.25, 0.1 mm
  python tests/benchmarks/bench_magnetic.py --table   error and time of (fmm_eps, quad_order,
                                                      near_factor) combinations at --h (0.5 mm)
"""

from __future__ import annotations

import argparse
import itertools
import resource
import time

from femion.magnetic.biot_savart import (
    ACCURACY_LEVELS,
    GRID_LEVELS,
    Accuracy,
    magnetic_flux_density,
    panel_field_exact,
)
from tests.verification.test_magnetic import (
    pointwise_error,
    quads_to_triangles,
    strip_quads,
    strip_targets,
    whole_strip,
)


def timed(sheet, x, method="fmm", **kw):
    t0 = time.perf_counter()
    B = magnetic_flux_density([sheet], x, method=method, **kw)
    return B, time.perf_counter() - t0


def table(h: float) -> None:
    s, x = strip_quads(h=h), strip_targets(h)
    exact = panel_field_exact(whole_strip(), x)
    print(f"h = {h * 1e3:g} mm: {s.n_panels} panels, {x.shape[0]} targets")
    print(f"{'fmm_eps':>8} {'quad':>4} {'near':>5} {'time s':>7} {'rel err':>9}")
    for eps, q, nf in itertools.product((1e-3, 1e-4, 1e-6, 1e-8), (1, 2, 3), (1.0, 2.0, 3.0, 4.0)):
        B, dt = timed(s, x, accuracy=Accuracy(eps, q, nf))
        print(f"{eps:8.0e} {q:4d} {nf:5.1f} {dt:7.2f} {pointwise_error(B, exact):9.2e}", flush=True)


def levels(max_panels: float, tolerances: list[float], method: str) -> None:
    """Each level's error on the strip's targets (quads; and the quads split in triangles up to
    1e4 panels) and its time on the run's kind of targets alone: every corner 0.6 µm up."""
    table = GRID_LEVELS if method == "grid" else ACCURACY_LEVELS
    print(f"{'cell mm':>8} {'panels':>8} {'targets':>8} {'tolerance':>9} {'settings':>24} {'rel err':>9} "
          f"{'triangles':>9} {'corners s':>9} {'peak RSS GB':>11}")
    for h in (0.5e-3, 0.25e-3, 0.1e-3):
        s = strip_quads(h=h)
        if s.n_panels > max_panels:
            break
        x = strip_targets(h)
        corners = strip_targets(h, n_random=0)
        exact = panel_field_exact(whole_strip(), x)
        for tol in sorted(t for t in tolerances if t in table)[::-1]:
            acc = table[tol]
            B, _ = timed(s, x, method, tolerance=tol)
            tri = "-"
            if s.n_panels <= 1e4:
                tri = f"{pointwise_error(timed(quads_to_triangles(s), x, method, tolerance=tol)[0], exact):9.2e}"
            _, dt = timed(s, corners, method, tolerance=tol)
            rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6  # peak so far (Linux: kB)
            if method == "grid":
                cfg = (f"{acc.spacing:g}/{acc.screen:g}/{acc.quad_order}/{acc.exact_factor:g}"
                       f"({acc.plane_exact_factor:g})")
            else:
                cfg = f"{acc.fmm_eps:.0e}/{acc.quad_order}/{acc.near_factor:g}({acc.plane_near_factor:g})"
            print(f"{h * 1e3:8.2f} {s.n_panels:8d} {x.shape[0]:8d} {tol:9.0e} {cfg:>24} "
                  f"{pointwise_error(B, exact):9.2e} {tri:>9} {dt:9.2f} {rss:11.2f}", flush=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--table", action="store_true", help="sweep (fmm_eps, quad_order, near_factor) at --h")
    ap.add_argument("--h", type=float, default=0.5e-3, help="panel side for --table, m")
    ap.add_argument("--max-panels", type=float, default=1.1e5)
    ap.add_argument("--tolerances", type=float, nargs="+", default=sorted(ACCURACY_LEVELS))
    ap.add_argument("--method", choices=["grid", "fmm"], default="grid", help="the path whose levels to measure")
    args = ap.parse_args()
    if args.table:
        table(args.h)
    else:
        levels(args.max_panels, args.tolerances, args.method)


if __name__ == "__main__":
    main()
