"""femion.post.report: metrics on synthetic profiles with known answers, and one end-to-end report."""

from __future__ import annotations

import json
import math
import re
import shutil

import numpy as np
import pytest

from femion.post import report as rp

from ..conftest import CASES

PLATE = ((0.0, 0.05), (0.0, 0.02))
X = np.linspace(0.0, 0.05, 101)
XY = np.c_[X, np.full(X.size, 0.01)]
TOWARD_RIGHT = [0.05, 0.01]
TOWARD_LEFT = [0.0, 0.01]


def test_node_weights_section_and_plan():
    """Trapezoid node weights integrate 1 to the section length (0.05 m) and to the plan area (1e-3 m²)."""
    w = rp.node_weights(XY)
    assert w.sum() == pytest.approx(0.05)
    assert w[0] == pytest.approx(w[1] / 2)
    gx, gy = np.meshgrid(np.linspace(0, 0.05, 11), np.linspace(0, 0.02, 5))
    w2 = rp.node_weights(np.c_[gx.ravel(), gy.ravel()])
    assert w2.sum() == pytest.approx(0.05 * 0.02)


def test_uniform_film():
    """A uniform film has its centroid at the plate centre, 1/3 in each third, no motion and no front."""
    th = np.full(X.size, 0.3)
    assert rp.li_centroid(XY, th) == pytest.approx([0.025, 0.01])
    assert rp.share_in_destination_third(XY, th, TOWARD_RIGHT, PLATE) == pytest.approx(1 / 3, rel=1e-12)
    assert rp.share_in_destination_third(XY, th, TOWARD_LEFT, PLATE) == pytest.approx(1 / 3, rel=1e-12)
    direction, d = rp.motion_direction(XY, th, XY, th, TOWARD_RIGHT)
    assert direction == 0 and d == pytest.approx(0.0, abs=1e-15)
    assert math.isnan(rp.front_position(X, th, 0.3))
    # a 3D plan grid whose nodes miss the third's boundary, uniform: still 1/3
    gx, gy = np.meshgrid(np.linspace(0, 0.05, 26), np.linspace(0, 0.02, 9))
    pxy = np.c_[gx.ravel(), gy.ravel()]
    assert rp.share_in_destination_third(pxy, np.ones(len(pxy)), TOWARD_RIGHT, PLATE) == pytest.approx(1 / 3, rel=1e-9)
    assert rp.li_centroid(pxy, np.ones(len(pxy))) == pytest.approx([0.025, 0.01])


def test_step_moved_right_goes_toward_x_max():
    """A step moved from 20 to 30 mm moves the centroid +8.6 mm toward x_max (−8.6 mm toward x_min)."""
    before = np.where(X < 0.02, 0.4, 0.2)
    after = np.where(X < 0.03, 0.2, 0.4)
    direction, d = rp.motion_direction(XY, before, XY, after, TOWARD_RIGHT)
    # analytic centroids: (8·10 + 6·35)/14 = 20.71 mm → (6·15 + 8·40)/14 = 29.29 mm
    assert direction == 1 and d == pytest.approx(0.12 / 14, abs=2e-4)
    direction, d2 = rp.motion_direction(XY, before, XY, after, TOWARD_LEFT)
    assert direction == -1 and d2 == pytest.approx(-d)
    # all the Li in the last third (piecewise-linear: the step edge spans one spacing)
    full = np.where(X >= 0.05 * 2 / 3 + 0.0005, 0.5, 0.0)
    assert rp.share_in_destination_third(XY, full, TOWARD_RIGHT, PLATE) == pytest.approx(1.0, abs=0.02)
    assert rp.share_in_destination_third(XY, full, TOWARD_LEFT, PLATE) == 0.0


def test_front_of_a_ramp():
    """The bleaching front of a linear ramp lies where θ crosses θ_ref/2 (20 mm from the source end)."""
    # depleted up to a linear rise through theta_ref/2 = 0.15 at x = 20 mm; an undepleted
    # uncoated strip (x < 3 mm) at the source end is skipped
    th = 0.3 * np.clip((X - 0.015) / 0.01, 0.0, 1.0)
    th[X < 0.003] = 0.3
    assert rp.front_position(X, th, 0.3) == pytest.approx(0.020, abs=1e-12)
    assert rp.front_position(X[::-1], th[::-1], 0.3) == pytest.approx(0.020, abs=1e-12)  # order-free
    mirrored = th[::-1]  # depleted from x_max: front at 50 - 20 = 30 mm
    assert rp.front_position(X, mirrored, 0.3, source="max") == pytest.approx(0.030, abs=1e-12)
    assert rp.front_position(X, np.zeros(X.size), 0.3) == pytest.approx(0.05)  # depleted throughout


def test_relaxation_time_recovers_tau():
    """A contrast decaying as exp(−t/300 s) gives τ = 300 s (2 % with a fast second mode, 1e-9 alone)."""
    t = np.linspace(0.0, 1200.0, 25)
    tau, note = rp.relaxation_time(t, 0.07 * np.exp(-t / 300.0) + 1e-5 * np.exp(-t / 30.0))
    assert tau == pytest.approx(300.0, rel=0.02), note
    tau, note = rp.relaxation_time(t + 600.0, 0.07 * np.exp(-t / 300.0))  # stage starting later
    assert tau == pytest.approx(300.0, rel=1e-9)


@pytest.mark.parametrize("contrast", [np.full(10, 0.05), np.linspace(0.05, 0.08, 10), np.zeros(10)])
def test_relaxation_time_no_decay(contrast):
    """A constant, growing or zero contrast has no relaxation time (NaN with a reason)."""
    tau, note = rp.relaxation_time(np.linspace(0, 900, 10), contrast)
    assert math.isnan(tau) and note


def test_end_to_end_report(shared_tmp, comm):
    """The 0.2 A strip run moves Li toward x_max in its one drive stage; reports of a run and of variants."""
    from femion import cli

    out = shared_tmp / "strip"
    assert cli.main(["run", str(CASES / "strip_transport.yaml"), "--out", str(out), "--no-progress",
                     "--set", "transport.duration=30 s", "--set", "transport.outputs=3",
                     "--set", "output.figures=false"]) == 0
    if comm.rank != 0:
        return
    md = rp.write_report(out)
    assert md == out / "report.md"
    text = md.read_text()
    assert "strip_transport" in text
    rep = json.loads((out / "report.json").read_text())
    assert rep["case"] == "strip_transport"
    # no protocol: one drive stage over the whole run, toward the 'to' contact at x_max
    (stage,) = rep["stages"]
    assert stage["action"] == "drive" and stage["toward_xy_m"][0] == pytest.approx(0.05, rel=1e-3)
    # Model III: Li moves with the current, into the destination third (measured 1/3 → 0.3405 in 30 s
    # with the electrolyte at its 0.56 S/m; 0.365 while it conducted 4.4x too well)
    assert stage["direction"] == 1
    start, end = stage["share_destination_third"]
    assert start == pytest.approx(1 / 3, rel=1e-6) and end > start + 0.003

    # the same run read as a protocol (drive then relax) and as a parent of two variants
    summary = json.loads((out / "summary.json").read_text())
    summary["protocol"] = [
        {"name": "drive", "action": "drive", "t_start_s": 0.0, "t_end_s": 20.0, "label": "P2 drive",
         "conductor": "bottom_ito", "current_A": 0.2, "voltage_V": None, "toward_xy_m": [0.05, 0.01]},
        {"name": "relax", "action": "relax", "t_start_s": 20.0, "t_end_s": 30.0, "label": "P3 relax",
         "conductor": None, "current_A": None, "voltage_V": None, "toward_xy_m": None}]
    parent = shared_tmp / "parent"
    parent.mkdir()
    for name in ("a", "b"):
        shutil.copytree(out, parent / name)
        (parent / name / "summary.json").write_text(json.dumps(summary))
    (parent / "summary.json").write_text(json.dumps({"case": "strip_transport", "variants": ["a", "b"]}))
    md = rp.write_report(parent)
    text = md.read_text()
    assert "strip_transport" in text and "## Variant a" in text and "## Variant b" in text
    # the variants ran with output.figures=false: each says so, and the one picture shown exists
    assert text.count("(no figures)") == 2
    assert re.findall(r"!\[[^\]]*\]\(([^)]+)\)", text) == ["figures/variants.png"]
    assert (parent / "figures" / "variants.png").is_file()
    rep = json.loads((parent / "report.json").read_text())
    assert [c["variant"] for c in rep["comparison"]] == ["a", "b"]
    stages = rep["variants"]["a"]["stages"]
    assert all("note" not in s or not s["note"].startswith("could not") for s in stages)
    relax = [s for s in stages if s["action"] == "relax"]
    assert relax and "relaxation" in relax[0]
