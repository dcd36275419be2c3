"""Run every shipped case (with --quick where it has a `quick:` block) into OUT/<case>, no figures.

    python tests/benchmarks/run_cases.py OUT [--cases fig2_protocol ...] [--np 1]

The input of compare_results.py; prints each case's wall time.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("out", type=Path)
    p.add_argument("--cases", nargs="*", help="case names (default: every file in cases/)")
    p.add_argument("--np", type=int, default=1, help="MPI ranks")
    args = p.parse_args(argv)
    files = sorted((ROOT / "cases").glob("*.yaml"))
    if args.cases:
        files = [f for f in files if f.stem in args.cases]
    failed = 0
    for f in files:
        quick = "quick" in (yaml.safe_load(f.read_text()) or {})
        cmd = [sys.executable, "-m", "femion", "run", str(f), "--out", str(args.out / f.stem), "--no-progress",
               "--set", "output.figures=false", *(["--quick"] if quick else [])]
        if args.np > 1:
            cmd = [str(Path(sys.executable).parent / "mpiexec"), "-n", str(args.np), *cmd]
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, capture_output=True, text=True)
        failed += proc.returncode != 0
        last = (proc.stderr.strip().splitlines() or [""])[-1]
        took = time.perf_counter() - t0
        print(f"{f.stem:28s} {'quick' if quick else 'full ':5s} {took:7.1f} s  exit {proc.returncode}"
              + (f"  {last}" if proc.returncode else ""), flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
