"""Wall time of every shipped case under ``femion run --quick`` (and, with --full, its own settings).

Each case runs in a fresh process through the CLI, as a user would start it, into a temporary
directory; the FFCx cache is warm after the first run of a form, so run twice for steady figures.

Columns: case; mode; wall time (s); transport steps and Newton iterations (summed over variants);
Li conservation (largest relative error over variants); the case's status.

Run:  .venv/bin/python tests/benchmarks/bench_paper_cases.py [--full] [--cases fig5c_two_track ...]
Not collected by pytest.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CASES = Path(__file__).resolve().parents[2] / "cases"
PAPER = ["fig2_protocol", "fig3_cycles", "fig4_model_I", "fig4_model_II", "fig4_model_III", "fig4_model_IV",
         "fig4_mechanisms",
         "fig5ab_current_sweep", "fig5c_two_track", "fig5d_electrolyte_area", "fig5e_painting", "hosts_and_cations"]


def summaries(out: Path) -> list[dict]:
    top = json.loads((out / "summary.json").read_text())
    if "variants" in top:
        return [json.loads((out / v / "summary.json").read_text()) for v in top["variants"]]
    return [top]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--full", action="store_true", help="the case's own settings instead of --quick")
    ap.add_argument("--cases", nargs="*", default=PAPER)
    args = ap.parse_args()
    mode = "full" if args.full else "quick"
    print(f"{'case':24s} {'mode':5s} {'wall (s)':>9s} {'steps':>6s} {'newton':>7s} {'conservation':>12s}  status")
    for name in args.cases:
        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp) / name
            cmd = [sys.executable, "-m", "femion", "run", str(CASES / f"{name}.yaml"), "--out", str(out),
                   "--no-progress"] + ([] if args.full else ["--quick"])
            t0 = time.perf_counter()
            proc = subprocess.run(cmd, capture_output=True, text=True)
            wall = time.perf_counter() - t0
            if proc.returncode != 0:
                print(f"{name:24s} {mode:5s} {wall:9.1f} {'':>6s} {'':>7s} {'':>12s}  exit {proc.returncode}: "
                      f"{(proc.stderr.strip().splitlines() or ['?'])[-1]}")
                continue
            runs = summaries(out)
            steps = sum(r["transport"]["steps"] for r in runs)
            newton = sum(r["transport"]["newton_iterations"] for r in runs)
            cons = max(r.get("conservation_error_rel") or 0.0 for r in runs)
            status = ",".join(sorted({r["transport"]["status"] for r in runs}))
            print(f"{name:24s} {mode:5s} {wall:9.1f} {steps:6d} {newton:7d} {cons:12.2e}  {status}", flush=True)


if __name__ == "__main__":
    main()
