"""`femion reproduce`: every paper case run, one table of headline figures beside the paper's words."""

from __future__ import annotations

import json

from femion import cli

from ..conftest import CASES


def test_reproduce_runs_the_paper_cases_and_tabulates_them(tmp_path, capsys):
    """Two quick cases: each result written, one row per run with the report's displacement, the
    paper's observation quoted; an unknown case name exits 2 with one line naming the allowed ones."""
    out = tmp_path / "repro"
    assert cli.main(["reproduce", str(CASES), "--quick", "--cases", "fig4_model_II", "fig4_model_III",
                     "--out", str(out), "--no-progress"]) == 0
    entries = json.loads((out / "reproduce.json").read_text())
    assert [e["case"] for e in entries] == ["fig4_model_II", "fig4_model_III"]
    report = json.loads((out / "fig4_model_III" / "report.json").read_text())
    moved = next(s for s in report["stages"] if s["action"] == "drive")["displacement_mm"]
    (row,) = entries[1]["rows"]
    assert row["displacement_mm"] == moved > 0.5 and row["direction"] == 1
    assert abs(entries[0]["rows"][0]["displacement_mm"]) < 1e-9
    text = (out / "reproduce.md").read_text()
    assert "| fig4_model_III | +1 (toward) |" in text and entries[1]["observation"] in text
    capsys.readouterr()
    assert cli.main(["reproduce", str(CASES), "--cases", "fig9", "--out", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "fig9" in err[0] and "fig4_model_III" in err[0]
