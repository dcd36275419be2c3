"""The paper's experiments (seed 000 Fig. 4) as shipped cases, run with --quick from the CLI.

Direction of motion is the Li centroid's displacement along the axis toward the end the driven
current flows to (femion.report): Model III moves Li with the bottom-ITO current, Model IV against
the top-ITO current, Models I (no conductor under the film) and II (no electrolyte) hardly at all.
"""

from __future__ import annotations

import json

import pytest

from femion import cli

from .conftest import CASES

QUICK = ["fig4_model_I", "fig4_model_II", "fig4_model_III", "fig4_model_IV"]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    out = {}
    for name in QUICK:
        path = tmp_path_factory.mktemp(name) / "result"
        assert cli.main(["run", str(CASES / f"{name}.yaml"), "--quick", "--out", str(path), "--no-progress"]) == 0
        out[name] = path
    return out


def first_drive(path):
    report = json.loads((path / "report.json").read_text())
    return next(s for s in report["stages"] if s["action"] in ("drive", "reverse")), report


def test_model_III_moves_li_with_the_bottom_current(runs):
    stage, report = first_drive(runs["fig4_model_III"])
    assert stage["direction"] == 1 and stage["displacement_mm"] > 2.0
    assert report["conservation_error_rel"] < 1e-10


def test_model_IV_moves_li_against_the_top_current(runs):
    stage, report = first_drive(runs["fig4_model_IV"])
    assert stage["direction"] == -1 and stage["displacement_mm"] < -2.0
    assert report["conservation_error_rel"] < 1e-10


def test_models_I_and_II_hardly_move_li(runs):
    """Threshold: a tenth of Model III's displacement in the same time (I: the film's own tiny
    conductance lets exchange happen only within ~0.4 mm of the coating edges; II: no exchange)."""
    moved = abs(first_drive(runs["fig4_model_III"])[0]["displacement_mm"])
    one, _ = first_drive(runs["fig4_model_I"])
    two, _ = first_drive(runs["fig4_model_II"])
    assert abs(one["displacement_mm"]) < 0.1 * moved
    assert two["displacement_mm"] == pytest.approx(0.0, abs=1e-9)


@pytest.mark.parametrize("name", QUICK)
def test_quick_case_writes_figures_report_and_optics(runs, name):
    path = runs[name]
    figs = {p.name for p in (path / "figures").iterdir()}
    assert "transmittance_monitors.png" in figs and "protocol.gif" in figs
    assert any(f.startswith("photo_") for f in figs)
    assert (path / "optics.csv").read_text().count("\n") >= 3
    assert "observation" in (path / "report.md").read_text().lower() or (path / "report.md").stat().st_size > 500


def test_larger_current_moves_more_li(tmp_path):
    """Fig. 5a,b: the displacement in the same time grows with the current (all four variants)."""
    out = tmp_path / "sweep"
    assert cli.main(["run", str(CASES / "fig5ab_current_sweep.yaml"), "--quick", "--out", str(out),
                     "--no-progress", "--set", "output.figures=false"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    moved = [first_drive(out / v)[0]["displacement_mm"] for v in summary["variants"]]
    currents = [json.loads((out / v / "summary.json").read_text())["current_A"] for v in summary["variants"]]
    assert currents == sorted(currents) and moved == sorted(moved) and moved[0] > 0
    assert (out / "report.md").is_file()
