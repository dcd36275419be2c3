"""The table of ``femion reproduce``: every paper case's headline figures beside the paper's observation.

One row per run (a case, or each of its variants): the last drive or reverse stage's direction,
displacement and destination-third share, the last relax stage's τ, the largest temperature rise
(with Joule heating), Li conservation and the wall time, read from each result's report.json and
summary.json (femion.post.report).
"""

from __future__ import annotations

import json
from pathlib import Path

from femion.post.report import _ARROW, _MOVING, _RELAXING, _final_stage, _fmt

COLUMNS = ("run", "motion", "displacement (mm)", "destination-third share", "relaxation τ (min)",
           "τ of the destination share (min)", "ΔT max (K)", "conservation", "wall (s)")


def run_row(name: str, result: Path) -> dict:
    """The headline figures of one run's results directory."""
    report = json.loads((result / "report.json").read_text())
    summary = json.loads((result / "summary.json").read_text())
    move = _final_stage(report, _MOVING) or {}
    relax = _final_stage(report, _RELAXING) or {}
    tau = (relax.get("relaxation") or {}).get("tau_s")
    tau_share = (relax.get("relaxation_share") or {}).get("tau_s")  # the gathered Li leaving its third
    return {"run": name, "direction": move.get("direction"), "displacement_mm": move.get("displacement_mm"),
            "share_destination_third": (move.get("share_destination_third") or [None, None])[-1],
            "tau_relax_min": None if tau is None else tau / 60.0,
            "tau_share_min": None if tau_share is None else tau_share / 60.0,
            "max_temperature_rise_K": (summary.get("thermal") or {}).get("max_temperature_rise_K"),
            "conservation_error_rel": summary.get("conservation_error_rel"),
            "wall_time_s": summary.get("wall_time_s"), "status": (summary.get("transport") or {}).get("status")}


def case_rows(case: str, result: Path) -> list[dict]:
    """Rows of one case's results directory: itself, or one per variant."""
    summary = json.loads((result / "summary.json").read_text())
    if summary.get("variants"):
        return [run_row(f"{case}/{v}", result / v) for v in summary["variants"]]
    return [run_row(case, result)]


def write_table(out: Path, entries: list[dict]) -> Path:
    """``out/reproduce.md`` and ``out/reproduce.json`` from ``entries`` ({case, observation, wall_time_s,
    rows | error}); returns the .md path."""
    md = ["# femion reproduce", "",
          "Each paper case as shipped (its own settings unless run with --quick), its headline figures "
          "from report.json beside the paper's observation.", "",
          "| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    for e in entries:
        if "error" in e:
            md.append(f"| {e['case']} | failed: {e['error']} |" + " |" * (len(COLUMNS) - 2))
            continue
        for r in e["rows"]:
            md.append(f"| {r['run']} | {_ARROW.get(r['direction'], '–')} | {_fmt(r['displacement_mm'])} | "
                      f"{_fmt(r['share_destination_third'], '.3f')} | {_fmt(r['tau_relax_min'])} | "
                      f"{_fmt(r['tau_share_min'])} | "
                      f"{_fmt(r['max_temperature_rise_K'], '.3g')} | {_fmt(r['conservation_error_rel'], '.1e')} | "
                      f"{_fmt(r['wall_time_s'], '.3g')} |")
    md += ["", "## The paper's observations", ""]
    md += [f"- **{e['case']}**: {e.get('observation') or '(none given)'}" for e in entries]
    (out / "reproduce.json").write_text(json.dumps(entries, indent=2, default=str) + "\n")
    target = out / "reproduce.md"
    target.write_text("\n".join(md) + "\n")
    return target
