"""The shell model (transport.model: shell) beside the resolved 3D stack: film filling at every output time.

    python tests/benchmarks/shell_vs_resolved.py OUT [--cases strip two_track band] [--full] [--set KEY=VALUE ...]

For each case runs the resolved 3D stack and the shell on the same plan mesh (``--quick``
settings unless ``--full``), then prints, at every output time, the largest and mean
|θ̄_shell − θ̄_resolved| over the plan nodes (θ̄: the film's mean filling through its thickness),
and the wall time, steps and unknowns of each. ``--set`` adds overrides to both runs (e.g. a
thicker electrolyte, to find where the shell limit fails). The cases:
  strip      fig4_model_III (the straight strip under an electrolyte band) in 3D
  two_track  fig5c_two_track (the "2")
  band       fig5d_electrolyte_area (exchange only under an electrolyte band)
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CASES = {"strip": ("fig4_model_III", ["mesh.dimension=3"]), "two_track": ("fig5c_two_track", []),
         "band": ("fig5d_electrolyte_area", [])}


def run(case: str, out: Path, sets: list[str], full: bool) -> float:
    cmd = [sys.executable, "-m", "femion", "run", str(ROOT / "cases" / f"{case}.yaml"), "--out", str(out),
           "--no-progress", "--set", "output.figures=false", *(() if full else ("--quick",))]
    for s in sets:
        cmd += ["--set", s]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode:
        sys.exit(f"{' '.join(cmd)} failed:\n{proc.stderr[-2000:]}")
    return time.perf_counter() - t0


def filling_difference(resolved: Path, shell: Path) -> list[tuple[float, float, float]]:
    """(t, max |Δθ̄|, mean |Δθ̄|) at every output time, over the plan nodes of the two runs."""
    from femion.post.metrics import filling_difference as difference
    from femion.results.reader import open_result

    a, b = open_result(resolved), open_result(shell)
    return [(t, *difference(*a.film_filling(t), *b.film_filling(t))) for t in a.times]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("out", type=Path)
    p.add_argument("--cases", nargs="*", default=list(CASES), choices=list(CASES))
    p.add_argument("--full", action="store_true", help="the cases' full settings (default: --quick)")
    p.add_argument("--set", action="append", default=[], dest="sets", help="KEY=VALUE for both runs")
    args = p.parse_args(argv)
    from femion.results.reader import open_result

    worst = 0.0
    for key in args.cases:
        case, sets = CASES[key]
        sets = sets + args.sets
        walls = {m: run(case, args.out / key / m, [*sets, f"transport.model={m}"], args.full)
                 for m in ("resolved", "shell")}
        info = {m: open_result(args.out / key / m).summary["transport"] for m in walls}
        print(f"{key} ({case}{', full' if args.full else ', quick'}{'; ' + ', '.join(args.sets) if args.sets else ''})")
        for m, s in info.items():
            print(f"  {m:8s} wall {walls[m]:7.1f} s  steps {s['steps']:4d}  Newton {s['newton_iterations']:5d}  "
                  f"unknowns {s['dofs']}")
        for t, dmax, dmean in filling_difference(args.out / key / "resolved", args.out / key / "shell"):
            worst = max(worst, dmax)
            print(f"  t = {t:8.1f} s   max |dθ| {dmax:.4f}   mean |dθ| {dmean:.5f}")
    print(f"largest |dθ| over all cases and times: {worst:.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
