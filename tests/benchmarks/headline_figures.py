"""Headline figures of finished runs side by side, and their relative differences to the first.

    python tests/benchmarks/headline_figures.py RESULT [RESULT ...]

Per stage of each result's report.json: the displacement (mm), the Li share in the destination
third at the stage's end, the bleaching front at its end (mm) and the relaxation time τ (s); with
the run's steps, Newton iterations and wall time. Used to check that a looser step tolerance
changes none of them by more than 1 % (issue 11: each full case against a run at 4x smaller
tolerances), e.g.

    femion run cases/fig2_protocol.yaml --out A --set output.figures=false
    femion run cases/fig2_protocol.yaml --out B --set output.figures=false --set transport.steps.tolerance=2.5e-4
    python tests/benchmarks/headline_figures.py B A
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def headline(result: Path) -> dict[str, float]:
    """{"<stage> <quantity>": value} of one result (a single run's directory)."""
    report = json.loads((result / "report.json").read_text())
    out: dict[str, float] = {}
    for st in report["stages"]:
        name = st["name"]
        if "displacement_mm" in st:
            out[f"{name} displacement_mm"] = st["displacement_mm"]
        if st.get("share_destination_third"):
            out[f"{name} destination_share_end"] = st["share_destination_third"][-1]
        if st.get("front_from_source_mm"):
            out[f"{name} front_end_mm"] = st["front_from_source_mm"][-1]
        for key in ("relaxation", "relaxation_share"):
            if (st.get(key) or {}).get("tau_s") is not None:
                out[f"{name} {key}_tau_s"] = st[key]["tau_s"]
    return out


def run_figures(result: Path) -> dict[str, float]:
    summary = json.loads((result / "summary.json").read_text())
    t = summary.get("transport", {})
    return {"steps": t.get("steps"), "newton_iterations": t.get("newton_iterations"), "jacobians": t.get("jacobians"),
            "wall_time_s": summary.get("wall_time_s"), "conservation_error_rel": summary.get("conservation_error_rel")}


def main(argv=None) -> int:
    paths = [Path(p) for p in (argv if argv is not None else sys.argv[1:])]
    if not paths:
        print(__doc__)
        return 2
    tables = [headline(p) for p in paths]
    keys = list(tables[0])
    print(f"{'quantity':44s}" + "".join(f"{p.name[-18:]:>20s}" for p in paths) + "   max |rel diff| to first")
    worst = 0.0
    for k in keys:
        vals = [t.get(k) for t in tables]
        ref = vals[0]
        diffs = [abs(v - ref) / max(abs(ref), 1e-30) for v in vals[1:] if v is not None and ref is not None]
        d = max(diffs, default=0.0)
        worst = max(worst, d)
        print(f"{k:44s}" + "".join(f"{v:20.6g}" if v is not None else f"{'-':>20s}" for v in vals) + f"   {d:.2e}")
    for k in ("steps", "newton_iterations", "jacobians", "wall_time_s", "conservation_error_rel"):
        vals = [run_figures(p)[k] for p in paths]
        print(f"{k:44s}" + "".join(f"{v:20.6g}" if v is not None else f"{'-':>20s}" for v in vals))
    print(f"largest relative difference of a headline figure: {worst:.2e}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
