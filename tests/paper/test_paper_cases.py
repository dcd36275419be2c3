"""The paper's experiments (seed 000 Figs. 2-5) as shipped cases, run with --quick from the CLI.

Direction of motion is the Li centroid's displacement along the axis toward the end the driven
current flows to (femion.post.report): Model III moves Li with the bottom-ITO current, Model IV against
the top-ITO current, Models I (no conductor under the film) and II (no electrolyte) hardly at all.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import shapely
import yaml

import femion
from femion import cli
from femion.config import validate_case
from femion.geometry import plan
from femion.geometry.spec import two_track_pattern
from femion.post.metrics import track_following

from ..conftest import CASES

QUICK = ["fig4_model_I", "fig4_model_II", "fig4_model_III", "fig4_model_IV", "fig3_cycles", "fig2_protocol",
         "fig5c_two_track", "fig5d_electrolyte_area", "fig5e_painting"]


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
    """Fig. 4 Model III: Li moves > 0.5 mm toward the end the bottom-ITO current flows to in the quick
    run's minute (1.08 mm measured with the electrolyte at its 0.56 S/m; 4.9 mm in the full 5 min),
    conserved to 1e-12."""
    stage, report = first_drive(runs["fig4_model_III"])
    assert stage["direction"] == 1 and stage["displacement_mm"] > 0.5
    # the species balance is made exact after each step (transport/conservation.py): ~5e-15 measured
    assert report["conservation_error_rel"] < 1e-12


def test_model_IV_moves_li_against_the_top_current(runs):
    """Fig. 4 Model IV: Li moves > 2 mm away from the end the top-ITO current flows to, conserved to 1e-12."""
    stage, report = first_drive(runs["fig4_model_IV"])
    assert stage["direction"] == -1 and stage["displacement_mm"] < -2.0
    assert report["conservation_error_rel"] < 1e-12  # measured 5e-15 (6e-9 before the exact balance)


def test_models_III_and_IV_driven_the_same_way_move_li_in_opposite_directions(runs):
    """The paper keeps the current's direction (left to right) and moves it from the bottom to the top
    ITO: the Li centroid moves right in Model III and left in Model IV, each by > 0.5 mm (1.08 and
    11.0 mm measured in the quick minute)."""
    moved = {}
    for name in ("fig4_model_III", "fig4_model_IV"):
        stage, report = first_drive(runs[name])
        assert stage["toward_xy_m"][0] > 0.04  # the current flows to the right end (x = 50 mm)
        x = np.asarray(report["series"]["centroid_m"])[:, 0]
        moved[name] = (x[-1] - x[0]) * 1e3
    assert moved["fig4_model_III"] > 0.5 and moved["fig4_model_IV"] < -0.5, moved


def test_models_I_and_II_hardly_move_li(runs):
    """Threshold: a quarter of Model III's displacement in the same time (I: the film's own tiny
    conductance lets exchange happen near the coating edges only; II: no exchange). Measured 0.16
    against 1.08 mm (0.15; full 5 min 0.75 against 4.9 mm): it was 0.07 while the electrolyte
    conducted 4.4x too well, which sped up III's long-range motion but not I's edge exchange."""
    moved = abs(first_drive(runs["fig4_model_III"])[0]["displacement_mm"])
    one, _ = first_drive(runs["fig4_model_I"])
    two, _ = first_drive(runs["fig4_model_II"])
    assert abs(one["displacement_mm"]) < 0.25 * moved
    assert two["displacement_mm"] == pytest.approx(0.0, abs=1e-9)


@pytest.mark.parametrize("name", QUICK)
def test_quick_case_writes_figures_report_and_optics(runs, name):
    """Every paper case writes its photos, GIF, transmittance curves and a report quoting the paper's observation."""
    path = runs[name]
    figs = {p.name for p in (path / "figures").iterdir()}
    assert "transmittance_monitors.png" in figs and "protocol.gif" in figs
    assert any(f.startswith("photo_") for f in figs)
    assert (path / "optics.csv").read_text().count("\n") >= 3
    observation = yaml.safe_load((CASES / f"{name}.yaml").read_text())["observation"]
    assert observation.strip() and f"> {observation.strip()}" in (path / "report.md").read_text()


def test_larger_current_moves_more_li(tmp_path):
    """Fig. 5a,b: the displacement in the same time grows with the current, with and without Joule
    heating; heating adds to it and its rise grows as I² (ΔT(0.2 A)/ΔT(0.1 A) = 4 within 5 %); the
    report plots distance and rate against current (Fig. 5b) from its comparison rows."""
    out = tmp_path / "sweep"
    assert cli.main(["run", str(CASES / "fig5ab_current_sweep.yaml"), "--quick", "--out", str(out),
                     "--no-progress"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    for heated in (False, True):
        names = [v for v in summary["variants"] if v.endswith("_heated") == heated]
        moved = [first_drive(out / v)[0]["displacement_mm"] for v in names]
        currents = [json.loads((out / v / "summary.json").read_text())["current_A"] for v in names]
        assert len(names) == 4 and currents == sorted(currents) and moved == sorted(moved) and moved[0] > 0
    rise = {v: json.loads((out / v / "summary.json").read_text())["thermal"]["max_temperature_rise_K"]
            for v in ("I_100mA_heated", "I_200mA_heated")}
    assert rise["I_200mA_heated"] / rise["I_100mA_heated"] == pytest.approx(4.0, rel=0.05)
    for i in ("20mA", "200mA"):
        hot, cold = (first_drive(out / f"I_{i}{h}")[0]["displacement_mm"] for h in ("_heated", ""))
        assert hot > cold
    assert "ΔT max (K)" in (out / "report.md").read_text()
    # Fig. 5b: distance and rate against current, with and without heating, in the report
    rows = json.loads((out / "report.json").read_text())["comparison"]
    for r in rows:
        stage = first_drive(out / r["variant"])[0]
        assert r["rate_mm_per_min"] == pytest.approx(
            r["displacement_mm"] / ((stage["t_end_s"] - stage["t_start_s"]) / 60), rel=1e-12)
    assert {r["heated"] for r in rows} == {False, True} and len({r["current_A"] for r in rows}) == 4
    assert (out / "figures" / "current_sweep.png").is_file() and "figures/current_sweep.png" in (
        out / "report.md").read_text()
    assert (out / "report.md").is_file() and (out / "figures" / "variants.png").is_file()
    # Fig. 5a: square T's transmittance in time, a line per current; darker at the larger current
    from femion.post.report import monitor_variants_plot

    assert "figures/monitor_variants.png" in (out / "report.md").read_text()
    optics = {v: json.loads((out / v / "summary.json").read_text())["optics"] for v in ("I_20mA", "I_200mA")}
    (ax,) = [a for a in monitor_variants_plot(optics).axes if a.get_title() == "square T"]
    assert ax.get_xlabel() == "t (min)" and ax.get_ylabel() == "transmittance T of square T" and len(ax.lines) == 2
    assert optics["I_200mA"]["monitors"]["T"][-1] < optics["I_20mA"]["monitors"]["T"][-1]


def test_reversing_the_current_reverses_the_motion(runs):
    """Fig. 3: every cycle moves Li toward its own destination, so the centroid's x alternates."""
    report = json.loads((runs["fig3_cycles"] / "report.json").read_text())
    drives = [s for s in report["stages"] if s["action"] in ("drive", "reverse")]
    assert [s["direction"] for s in drives] == [1, 1, 1]
    dx = [s["displacement_mm"] * np.sign(s["toward_xy_m"][0] - 0.025) for s in drives]
    assert dx[0] > 0 > dx[1] and dx[2] > 0


def test_cycle_two_clears_the_source_end_as_the_destination_darkens(runs):
    """Fig. 2/3 cycle 2 (digest observation 4): after the reversal the end holding the Li clears while
    the new destination darkens at once and the middle holds (square L, M, R transmittance over the
    stage's first output; quick run: L −0.010, M 0.000, R +0.007 measured)."""
    report = json.loads((runs["fig3_cycles"] / "report.json").read_text())
    cycle2 = [s for s in report["stages"] if s["action"] in ("drive", "reverse")][1]
    assert cycle2["toward_xy_m"][0] < 0.025  # toward the left end
    dT = cycle2["monitor_dT_first"]
    assert dT["L"] < -0.005 and dT["R"] > 0.005  # destination darkens, source clears, both at once
    assert abs(dT["M"]) < 0.2 * min(abs(dT["L"]), abs(dT["R"]))  # the middle barely changes


def test_protocol_conserves_li_and_reports_relaxation(runs):
    """Fig. 2 (inject, drive, reverse, relax): Li conserved outside injection; the injection took Li
    up; P3's relaxation time is reported."""
    path = runs["fig2_protocol"]
    summary = json.loads((path / "summary.json").read_text())
    # Newton stops at a floor of 1e-10 of the volume (9e-9 over the quick protocol before); the
    # species balance made exact after each step leaves round-off
    assert summary["conservation_error_rel"] < 1e-12
    res = femion.open_result(path)
    t_inject = summary["protocol"][0]["t_end_s"]
    _, th0 = res.film_filling(0.0)
    _, th1 = res.film_filling(t_inject)
    assert th1.mean() > 2 * th0.mean()
    report = json.loads((path / "report.json").read_text())
    relax = next(s for s in report["stages"] if s["action"] == "relax")
    # the quick relax (1 min) is far shorter than the relaxation (the full protocol: τ = 51 min; the
    # paper saw ~20 min): the contrast hardly decays, and the report says so instead of fitting a τ
    tau = relax["relaxation"]
    if tau["tau_s"] is None:
        assert "did not decay" in tau["note"] and 0.95 < tau["final_over_initial"] <= 1.0
    else:
        assert 60 < tau["tau_s"] < 1e5


def test_removed_electrolyte_freezes_the_distribution(tmp_path):
    """After "remove electrolyte" a drive and a relaxation change the film's θ̄ by < 1e-5 (the first drive: > 0.05)."""
    out = tmp_path / "frozen"
    assert cli.main(["run", str(CASES / "fig4_model_III.yaml"), "--out", str(out), "--no-progress",
                     "--set", "mesh.cell_size=1 mm", "--set", "output.figures=false",
                     "--set", 'protocol=["drive 0.2 A through bottom_ito for 1 min, 1 outputs", "remove electrolyte",'
                                       ' "drive 0.2 A through bottom_ito for 1 min, 1 outputs",'
                                       ' "relax for 2 min, 1 outputs"]']) == 0
    res = femion.open_result(out)
    _, moved = res.film_filling(60.0)
    _, start = res.film_filling(0.0)
    assert np.abs(moved - start).max() > 0.05  # the first drive moved Li
    for t in (120.0, 240.0):
        _, later = res.film_filling(t)
        # only the film's own solid diffusion (D_s 1e-14 m²/s: ~1 µm in 2 min) acts: measured 2e-7
        assert np.abs(later - moved).max() < 1e-5


def change_and_case(path):
    """(plan xy of the film nodes (m), θ̄ change from the first to the last output, the run's case)."""
    res = femion.open_result(path)
    xy, start = res.film_filling(res.times[0])
    _, end = res.film_filling(res.times[-1])
    return xy, end - start, validate_case(yaml.safe_load((path / "case.yaml").read_text()))


def test_two_track_change_is_confined_to_the_track_and_follows_it(runs):
    """Fig. 5c: under a whole-plate film and electrolyte, the Li moves only where the "2" is.

    Confined: most of the change lies within 1 mm of the track (the film's own conductance lets
    exchange reach ~sqrt(G_ox R_ct) ~ 1 mm beyond its edge: measured 87 %), and 2 mm off the track
    the change is small against the track's (measured 0.035 vs 0.26). Follows: along the track's
    centreline the change rises from the start (depleted) to the end (filled), monotone in arc
    length (Spearman 0.998) and not in x, which the "2" runs forth and back along (0.13)."""
    xy, d, case = change_and_case(runs["fig5c_two_track"])
    t = case.layer("bottom_ito").pattern.include[0].two_track
    track = two_track_pattern(case.geometry.plate.length, case.geometry.plate.width, t.track_width,
                              margin=t.margin)
    tf = track_following(xy, d, track.polygon, track.centreline)
    assert tf["share_near"] > 0.8 and tf["off_track_ratio"] < 0.25
    along = np.asarray(tf["change_along"])
    assert along[:5].max() < -0.05 and along[-5:].min() > 0.05
    assert tf["rank_with_arc"] > 0.95 and abs(tf["rank_with_x"]) < 0.5
    # the report states the same figures
    report = json.loads((runs["fig5c_two_track"] / "report.json").read_text())
    assert report["track_following"]["share_near"] == pytest.approx(tf["share_near"], rel=1e-9)
    assert "Track following" in (runs["fig5c_two_track"] / "report.md").read_text()
    # the photo marks the current along the track: four arrowheads on it, each pointing along the
    # centreline from the start pad toward the end pad, besides the one above the plate
    from femion.post.optics import _open, _photo_figure

    film = _open(runs["fig5c_two_track"])
    photo = _photo_figure(film, film.res.times[-1], "drive").axes[0]
    arrows = [a for a in photo.texts if getattr(a, "arrow_patch", None) is not None]
    assert len(arrows) == 5
    for a in arrows[1:]:
        tail, head = np.asarray(a.xyann) / 1e3, np.asarray(a.xy) / 1e3
        assert track.centreline.project(shapely.Point(head)) > track.centreline.project(shapely.Point(tail))
    # the figures follow the track too: θ̄ against arc length from the start pad
    assert (runs["fig5c_two_track"] / "figures" / "theta_along_track.png").is_file()
    assert plan.track_centreline(case.layer("bottom_ito").pattern, case.geometry.plate).equals(track.centreline)
    assert plan.track_centreline(None, case.geometry.plate) is None


def test_li_moves_only_under_the_electrolyte(runs):
    """Fig. 5d: outside the coated band the film keeps its Li (only its own solid diffusion acts:
    measured 2e-7 within 1 mm of the band's edge) while the band's Li moves by tenths."""
    xy, d, case = change_and_case(runs["fig5d_electrolyte_area"])
    mask = plan.pattern_geometry(case.layer("electrolyte").pattern, case.geometry.plate)
    inside = plan.points_in(mask, xy[:, 0], xy[:, 1], 1e-9)
    assert np.abs(d[inside]).max() > 0.1
    assert np.abs(d[~inside]).max() < 1e-5
    stage, _ = first_drive(runs["fig5d_electrolyte_area"])
    assert stage["direction"] == 1


def test_painted_picture_is_drawn_under_the_mask_and_kept_once_the_electrolyte_is_removed(runs):
    """Fig. 5e: the drive bleaches the left and darkens the right of each coated feature; the film
    around the features keeps its Li, and after the electrolyte is removed the picture stays
    (through-thickness settling of the nodal mean only: measured 5e-6 in 1 min, against a contrast
    of 0.5)."""
    path = runs["fig5e_painting"]
    xy, d, case = change_and_case(path)
    mask = plan.pattern_geometry(case.layer("electrolyte").pattern, case.geometry.plate)
    inside = plan.points_in(mask, xy[:, 0], xy[:, 1], 1e-9)
    assert d[inside].min() < -0.1 and d[inside].max() > 0.1
    assert np.abs(d[~inside]).max() < 1e-5
    summary = json.loads((path / "summary.json").read_text())
    removed = next(s for s in summary["protocol"] if s["action"] == "remove_electrolyte")["t_end_s"]
    res = femion.open_result(path)
    _, at_removal = res.film_filling(removed)
    _, last = res.film_filling(res.times[-1])
    assert res.times[-1] > removed
    assert np.abs(last - at_removal).max() < 1e-4


def test_other_hosts_and_cations_move_toward_the_current_end(tmp_path):
    """The current-driving effect for MoO3, TiO2, Nb2O5 and for Na+, H+, Zn2+, Ca2+ (every variant of
    hosts_and_cations): each moves its ions toward the end the bottom-ITO current flows to and
    conserves them; the divalent Zn2+ inserts through a rate at 2·eta."""
    out = tmp_path / "hosts"
    assert cli.main(["run", str(CASES / "hosts_and_cations.yaml"), "--quick", "--out", str(out), "--no-progress"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert len(summary["variants"]) == 8
    for v in summary["variants"]:
        stage, report = first_drive(out / v)
        assert stage["direction"] == 1 and stage["displacement_mm"] > 0.2, v  # Nb2O5_Li slowest: 0.43 mm
        assert report["conservation_error_rel"] < 1e-12, v  # 8e-9 (WO3_H) before the exact balance
        assert (out / v / "figures" / "protocol.gif").is_file()
    ions = {v: json.loads((out / v / "summary.json").read_text())["transport"]["exchanging"]
            for v in summary["variants"]}
    assert set(ions.values()) == {"Li", "Na", "H", "Zn", "Ca"}
    comparison = json.loads((out / "report.json").read_text())["comparison"]
    assert {c["host"] for c in comparison} == {"WO3", "MoO3", "TiO2", "Nb2O5"}
    assert (out / "report.md").is_file()


def test_mechanism_switch_runs_the_same_device_under_each_explanation(tmp_path):
    """fig4_mechanisms: the electrochemical mechanism alone moves Li by millimetres; with both
    switched off nothing moves; Joule heating alone moves nothing (symmetric) and with the ohmic
    drop speeds it up; the Lorentz closure alone pushes Li the same way (n x B points to the
    current's end) but by 1e-8 mm with a lattice-hop step and still < 5 % of the electrochemical
    motion with a 1 mm step (measured 1.08, 3e-15, 8e-12, 1.16, 9.6e-9, 0.025 mm)."""
    out = tmp_path / "mechanisms"
    assert cli.main(["run", str(CASES / "fig4_mechanisms.yaml"), "--quick", "--out", str(out), "--no-progress"]) == 0
    moved = {v: first_drive(out / v)[0]["displacement_mm"]
             for v in json.loads((out / "summary.json").read_text())["variants"]}
    assert moved["electrochemical"] > 0.5
    assert abs(moved["neither"]) < 1e-9
    assert abs(moved["thermal_only"]) < 1e-6 * moved["electrochemical"]
    assert moved["electrochemical_and_thermal"] > moved["electrochemical"]
    assert 0 < moved["lorentz_lattice_step"] < 1e-6
    assert 0 < moved["lorentz_1mm_step"] < 0.05 * moved["electrochemical"]
    mech = json.loads((out / "lorentz_1mm_step" / "summary.json").read_text())["transport"]["mechanism"]
    assert mech == {"electrochemical": False, "lorentz_closure": True, "thermal": False}


@pytest.mark.parametrize("name", ["fig5c_two_track", "fig5d_electrolyte_area"])
def test_the_shell_model_agrees_with_the_resolved_stack(runs, name, tmp_path):
    """transport.model: shell (the films as sheets on the plan mesh, physics.md §2b) beside the
    resolved 3D stack of the same case: the film's mean filling within 0.02 at every plan node and
    output time (measured 0.008 on the "2", the exchange seeing the film's face through the
    quadratic through-film profile; 0.029 with the mean alone), Li conserved to 1e-12, with at most
    0.7 of the unknowns (five fields on the plan nodes against four on the film's and the
    electrolyte's node levels: half on the "2", 0.61 under the band)."""
    from femion.post.metrics import filling_difference
    from femion.results.reader import open_result

    path = tmp_path / "shell"
    assert cli.main(["run", str(CASES / f"{name}.yaml"), "--quick", "--out", str(path), "--no-progress",
                     "--set", "output.figures=false", "--set", "transport.model=shell"]) == 0
    resolved, shell = open_result(runs[name]), open_result(path)
    assert shell.summary["transport"]["model"] == "shell" and shell.times == resolved.times
    moved = max(float(np.ptp(resolved.film_filling(t)[1])) for t in resolved.times)
    assert moved > 0.1  # the comparison means something: the drive changed θ̄ by more than 0.1
    for t in resolved.times:
        worst, _ = filling_difference(*resolved.film_filling(t), *shell.film_filling(t))
        assert worst < 0.02, f"t = {t} s: |dθ| = {worst:.4f}"
    assert shell.summary["conservation_error_rel"] < 1e-12
    assert shell.summary["transport"]["dofs"] <= 0.7 * resolved.summary["transport"]["dofs"]


def test_the_two_track_heats_where_it_runs_and_the_plate_limit_follows(tmp_path):
    """Fig. 5c with Joule heating (0.02 A, 21 mW in the "2"): the resolved stack is warmest over the
    track (the peak > 3x the rise 15 mm beside it), and the shell model's plate (the stack lumped
    through its thickness on the plan) gives the same mean rise within 3 % and the peak within 15 %
    (measured 0.9 % and 11 %: over a track ~2 mm wide, narrower than twice the glass, the film
    sits above the plate's thickness average)."""
    from femion.results.reader import open_result

    runs = {}
    for model in ("resolved", "shell"):
        path = tmp_path / model
        assert cli.main(["run", str(CASES / "fig5c_two_track.yaml"), "--quick", "--out", str(path), "--no-progress",
                         "--set", "output.figures=false", "--set", "transport.mechanism.thermal=true",
                         "--set", f"transport.model={model}"]) == 0
        runs[model] = (json.loads((path / "summary.json").read_text())["thermal"], open_result(path))
    (res_th, res), (sh_th, _) = runs["resolved"], runs["shell"]
    assert sh_th["max_mean_temperature_rise_K"] == pytest.approx(res_th["max_mean_temperature_rise_K"], rel=0.03)
    assert sh_th["max_temperature_rise_K"] == pytest.approx(res_th["max_temperature_rise_K"], rel=0.15)
    z = float(np.mean(res.layer_z["oxide"]))
    far = res.probe("T", np.array([[5e-3, 10e-3, z]]), time=res.times[-1])[0] - res_th["ambient_K"]
    assert res_th["max_temperature_rise_K"] > 3 * far
