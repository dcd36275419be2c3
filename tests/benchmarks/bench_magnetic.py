"""Benchmark of femion.magnetic.biot_savart on a 20 mm x 50 mm strip (0.2 A) with growing plan meshes.

Targets: a regular grid over the strip at 0.6 µm above the sheet, one target per panel
(shifted by a third of a cell so targets do not sit above panel centroids).
Error: max relative error of B_y against the 2-D thin-strip value
B_y = −μ0K/(2π)·(angle subtended by the strip), at targets with |x|, |y| < 5 mm
(the 50 mm length changes this reference by < 1e-5 at 0.6 µm).

Run:  .venv/bin/python tests/benchmarks/bench_magnetic.py [--max-panels N] [--direct-limit P*N]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from scipy.constants import mu_0

from femion.magnetic.biot_savart import SheetCurrent, magnetic_flux_density

W, L, I0, Z = 20e-3, 50e-3, 0.2, 0.6e-6


def strip(h):
    nx, ny = int(round(L / h)), int(round(W / h))
    xs = np.linspace(-L / 2, L / 2, nx + 1)
    ys = np.linspace(-W / 2, W / 2, ny + 1)
    X0, Y0 = np.meshgrid(xs[:-1], ys[:-1], indexing="ij")
    X1, Y1 = np.meshgrid(xs[1:], ys[1:], indexing="ij")
    X0, Y0, X1, Y1 = X0.ravel(), Y0.ravel(), X1.ravel(), Y1.ravel()
    v = np.stack([np.c_[X0, Y0], np.c_[X1, Y0], np.c_[X1, Y1], np.c_[X0, Y1]], axis=1)
    return SheetCurrent(v, np.tile([I0 / W, 0.0], (v.shape[0], 1)), 0.0)


def targets(h):
    nx, ny = int(round(L / h)), int(round(W / h))
    xs = -L / 2 + (np.arange(nx) + 1 / 3) * h
    ys = -W / 2 + (np.arange(ny) + 1 / 3) * h
    X, Y = np.meshgrid(xs, ys, indexing="ij")
    return np.c_[X.ravel(), Y.ravel(), np.full(X.size, Z)]


def reference_By(x):
    K = I0 / W
    ang = np.arctan2(x[:, 2], x[:, 1] - W / 2) - np.arctan2(x[:, 2], x[:, 1] + W / 2)
    return -mu_0 * K / (2 * np.pi) * ang


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--max-panels", type=float, default=1.1e5)
    ap.add_argument("--direct-limit", type=float, default=1e8, help="run 'direct' up to P*N")
    args = ap.parse_args()
    print(f"{'cell mm':>8} {'panels':>8} {'targets':>8} {'method':>7} {'time s':>8} "
          f"{'max rel err (centre)':>21} {'max |dB|/max|B| vs direct':>27}")
    for h in (0.5e-3, 0.25e-3, 0.1e-3):
        s = strip(h)
        if s.n_panels > args.max_panels:
            break
        x = targets(h)
        central = (np.abs(x[:, 0]) < 5e-3) & (np.abs(x[:, 1]) < 5e-3)
        ref = reference_By(x[central])
        results = {}
        methods = ["fmm"]
        if s.n_panels * x.shape[0] <= args.direct_limit:
            methods.insert(0, "direct")
        for method in methods:
            t0 = time.perf_counter()
            B = magnetic_flux_density([s], x, method=method)
            dt = time.perf_counter() - t0
            results[method] = B
            err = np.max(np.abs(B[central, 1] / ref - 1))
            cmp = ""
            if method == "fmm" and "direct" in results:
                d = results["direct"]
                cmp = f"{np.abs(B - d).max() / np.abs(d).max():.1e}"
            print(f"{h * 1e3:8.2f} {s.n_panels:8d} {x.shape[0]:8d} {method:>7} {dt:8.2f} "
                  f"{err:21.2e} {cmp:>27}", flush=True)


if __name__ == "__main__":
    main()
