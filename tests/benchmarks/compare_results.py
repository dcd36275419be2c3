"""Compare two sets of result directories number by number (behaviour-unchanged check).

    python tests/benchmarks/run_cases.py BASE_DIR            # at the old commit
    python tests/benchmarks/run_cases.py NEW_DIR             # at the new one
    python tests/benchmarks/compare_results.py BASE_DIR NEW_DIR [--rtol 1e-8]

For every result directory under BASE_DIR (a case, or each variant of one) it compares every
number in summary.json (relative difference |a − b| / max(|a|, |b|, floor), with the floor
``--atol`` for numbers that should be zero) and the oxide filling θ at the last output time
(matched by node coordinates). Prints the worst difference per case and where it is; exits 1
if any exceeds ``--rtol``. Keys that measure the machine (wall_time_s, stage_time_s, versions)
are skipped; round-off measures (``conservation_error_rel``) pass below an absolute difference of 1e-12.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

import numpy as np

SKIP = {"wall_time_s", "stage_time_s", "versions", "written"}
#: numbers that are themselves round-off measures get a floor under the denominator: with 1e-4 and
#: --rtol 1e-8 an absolute difference below 1e-12 passes (a relative conservation error of 1.07e-13
#: vs 1.08e-13 is the same statement, "conserved to round-off")
FLOORS = {"conservation_error_rel": 1e-4}


def numbers(node, path=""):
    """(path, value) of every number and string in a JSON tree."""
    if isinstance(node, dict):
        for k, v in node.items():
            if k not in SKIP:
                yield from numbers(v, f"{path}.{k}" if path else k)
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from numbers(v, f"{path}[{i}]")
    else:
        yield path, node


def relative(a, b, atol: float) -> float:
    if isinstance(a, bool) or isinstance(b, bool) or not isinstance(a, (int, float)) or not isinstance(b, (int, float)):
        return 0.0 if a == b else math.inf
    if a is None or b is None:
        return 0.0 if a is b else math.inf
    if math.isnan(a) and math.isnan(b):
        return 0.0
    return abs(a - b) / max(abs(a), abs(b), atol)


def theta_at_last_time(result: Path):
    """(points (N, 3), θ (N,)) at the last output time, sorted by coordinates; None without transport."""
    import vtk
    from vtk.util.numpy_support import vtk_to_numpy

    f = result / "fields" / "theta.vtkhdf"
    if not f.is_file():
        return None
    reader = vtk.vtkHDFReader()
    reader.SetFileName(str(f))
    reader.UpdateInformation()
    n = reader.GetNumberOfSteps()
    reader.SetStep(max(n - 1, 0))
    reader.Update()
    out = reader.GetOutput()
    pts = vtk_to_numpy(out.GetPoints().GetData()).astype(float)
    vals = vtk_to_numpy(out.GetPointData().GetArray(0)).astype(float).ravel()
    key = np.round(pts / 1e-12).astype(np.int64)
    order = np.lexsort(key.T[::-1])
    return pts[order], vals[order]


def compare(a: Path, b: Path, atol: float) -> tuple[float, str]:
    """Worst relative difference between results ``a`` and ``b`` and where it is."""
    sa = json.loads((a / "summary.json").read_text())
    sb = json.loads((b / "summary.json").read_text())
    va, vb = dict(numbers(sa)), dict(numbers(sb))
    worst, where = 0.0, "-"
    for key in sorted(set(va) | set(vb)):
        if key not in va or key not in vb:
            if key.startswith(("transport.stop_reason", "stopped.status")):
                continue  # keys added since (both None/absent mean the same)
            return math.inf, f"{key} only in {'new' if key in vb else 'base'}"
        if isinstance(va[key], str) and ("/" in va[key]):
            continue  # paths
        floor = max([atol] + [f for k, f in FLOORS.items() if key.split(".")[-1].startswith(k)])
        d = relative(va[key], vb[key], floor)
        if d > worst:
            worst, where = d, f"{key}: {va[key]!r} vs {vb[key]!r}"
    ta, tb = theta_at_last_time(a), theta_at_last_time(b)
    if ta is not None and tb is not None:
        if ta[0].shape != tb[0].shape or not np.allclose(ta[0], tb[0], rtol=0, atol=1e-12):
            return math.inf, "theta: different nodes"
        d = float(np.max(np.abs(ta[1] - tb[1]) / np.maximum(np.maximum(np.abs(ta[1]), np.abs(tb[1])), atol)))
        if d > worst:
            worst, where = d, "theta field at the last output time"
    return worst, where


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("base", type=Path)
    p.add_argument("new", type=Path)
    p.add_argument("--rtol", type=float, default=1e-8)
    p.add_argument("--atol", type=float, default=1e-30, help="floor of the denominator (default 1e-30)")
    args = p.parse_args(argv)
    bad = 0
    print(f"{'result':40s} {'worst rel. diff':>16s}  where")
    for summary in sorted(args.base.rglob("summary.json")):
        rel = summary.parent.relative_to(args.base)
        other = args.new / rel
        if not (other / "summary.json").is_file():
            print(f"{rel!s:40s} {'missing':>16s}")
            bad += 1
            continue
        worst, where = compare(summary.parent, other, args.atol)
        flag = "" if worst <= args.rtol else "  <-- exceeds"
        bad += worst > args.rtol
        print(f"{rel!s:40s} {worst:16.3e}  {where}{flag}")
    print(f"{bad} result(s) differ by more than {args.rtol:g}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
