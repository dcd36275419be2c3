"""End to end: `femion run/mesh/plot/info` write the public results contract and pictures."""

from __future__ import annotations

import json

import numpy as np
import pytest
from scipy.constants import mu_0

import femion
from femion import cli

from ..conftest import CASES, problems

SUMMARY_KEYS = {"resistance_ohm", "current_A", "voltage_V", "joule_power_W", "max_B_interface_T", "layer_z_m",
                "versions", "mpi_size", "wall_time_s"}


def strip_field(current, W, z):
    """Thin-strip field above the centre line: µ0 I/(2W)·(2/π)·atan(W/2z) (shared/physics.md §4)."""
    return mu_0 * current / (2 * W) * (2 / np.pi) * np.arctan(W / (2 * z))


@pytest.mark.mpi
def test_run_strip_writes_contract(comm, shared_tmp):
    """A strip run writes case.yaml, summary.json (SI contract), VTX and VTKHDF fields and PNG figures."""
    out = shared_tmp / "strip"
    code = cli.main(["run", str(CASES / "strip_drive.yaml"), "--out", str(out), "--no-progress",
                     "--set", "mesh.cell_size=1 mm"])
    assert code == 0
    summary = json.loads((out / "summary.json").read_text())
    assert set(summary) >= SUMMARY_KEYS
    assert summary["mpi_size"] == comm.size
    assert summary["resistance_ohm"] == pytest.approx(20.0, rel=1e-3)
    assert summary["joule_power_W"] == pytest.approx(0.8, rel=1e-3)
    assert summary["layer_z_m"]["bottom_ito"] == pytest.approx([1.10003e-3, 1.10023e-3], rel=1e-12)
    # the edge singularity of B_z makes max|B| exceed the wide-sheet 6.28 µT, but not by orders of magnitude
    assert 6.0e-6 < summary["max_B_interface_T"] < 5e-5
    for name in ("phi_s_bottom_ito", "K_bottom_ito", "B_interface"):
        assert (out / "fields" / f"{name}.bp").is_dir()
        assert (out / "fields" / f"{name}.vtkhdf").is_file()
    for fig in ("phi_s_bottom_ito.png", "B_interface.png"):
        assert (out / "figures" / fig).stat().st_size > 10_000
    assert not list(shared_tmp.glob("strip.partial-*"))


@pytest.mark.mpi
def test_open_result_probes(comm, shared_tmp):
    """open_result().probe gives B (T) matching the thin-strip formula and phi_s (V) = I·R·(1 − x/L)."""
    out = shared_tmp / "strip"
    assert cli.main(["run", str(CASES / "strip_drive.yaml"), "--out", str(out), "--no-progress",
                     "--set", "mesh.cell_size=1 mm", "--set", "output.figures=false"]) == 0
    res = femion.open_result(out)
    (x0, x1), (y0, y1) = res.plate_bounds
    assert (x1 - x0, y1 - y0) == pytest.approx((0.05, 0.02))
    z_sheet = np.mean(res.layer_z["bottom_ito"])
    heights = np.array([0.6e-6, 50e-6, 1e-3])
    pts = np.c_[np.full(3, 0.025), np.full(3, 0.01), z_sheet + heights]
    B = res.probe("B", pts)
    assert B[:, 1] == pytest.approx(-strip_field(0.2, 0.02, heights), rel=1e-2)
    phi = res.probe("phi_s", np.array([[0.0125, 0.01, z_sheet], [0.025, 0.005, z_sheet + 0.5e-6]]))
    assert phi == pytest.approx([3.0, 2.0], rel=1e-6)
    with pytest.raises(ValueError, match="lie outside conductor bottom_ito in plan"):
        res.probe("phi_s", np.array([[0.06, 0.01, z_sheet]]))
    with pytest.raises(KeyError):
        res.probe("c_Li", pts)


@pytest.mark.mpi
def test_mesh_command_writes_meshes_and_picture(comm, shared_tmp):
    """`femion mesh` writes the plan and stack .msh files and a PNG of them."""
    out = shared_tmp / "meshes"
    assert cli.main(["mesh", str(CASES / "strip_drive.yaml"), "--out", str(out), "--set", "mesh.cell_size=2 mm"]) == 0
    assert (out / "strip_drive_plan.msh").stat().st_size > 1000
    assert (out / "strip_drive_stack.msh").stat().st_size > 1000
    assert (out / "strip_drive_mesh.png").stat().st_size > 10_000


def test_info_and_plot(shared_tmp, capsys):
    """`femion info` reports MUMPS; `femion plot` redraws a result's figures."""
    assert cli.main(["info"]) == 0
    assert "mumps" in capsys.readouterr().out
    out = shared_tmp / "two"
    assert cli.main(["run", str(CASES / "two_track_drive.yaml"), "--out", str(out), "--no-progress",
                     "--set", "mesh.cell_size=1 mm", "--set", "output.figures=false"]) == 0
    assert not list((out / "figures").glob("*.png"))
    assert cli.main(["plot", str(out)]) == 0
    assert {p.name for p in (out / "figures").glob("*.png")} == {"phi_s_bottom_ito.png", "B_interface.png"}


def test_drawing_and_the_report_use_one_blas_thread():
    """Figures and report draw with one BLAS thread (threads stall on cores the other ranks hold)."""
    from threadpoolctl import threadpool_info

    from femion.post import one_blas_thread

    threads = one_blas_thread(lambda: [p["num_threads"] for p in threadpool_info() if p["user_api"] == "blas"])()
    assert threads and set(threads) == {1}


@pytest.mark.parametrize("name", ["strip_drive", "two_track_drive"])
def test_shipped_meshes_are_reproducible(tmp_path, name):
    """`femion mesh` rebuilds meshes/<case>_*.msh byte for byte from the shipped case."""
    from ..conftest import ROOT

    assert cli.main(["mesh", str(CASES / f"{name}.yaml"), "--out", str(tmp_path)]) == 0
    for part in ("plan", "stack"):
        shipped = ROOT / "meshes" / f"{name}_{part}.msh"
        assert (tmp_path / shipped.name).read_bytes() == shipped.read_bytes(), shipped.name


@pytest.mark.mpi
def test_transport_run_writes_contract_and_conserves(comm, shared_tmp):
    """A strip run with transport (x–z section) writes transport.csv, the transport fields at every output
    time, conservation_error_rel ≤ 1e-10, min concentration ≥ 0, β ~ 1e-14..1e-13; Li moves with the current."""
    out = shared_tmp / "tr"
    code = cli.main(["run", str(CASES / "strip_transport.yaml"), "--out", str(out), "--no-progress",
                     "--set", "mesh.cell_size=2 mm", "--set", "transport.duration=40 s",
                     "--set", "transport.outputs=2", "--set", "output.figures=false"])
    assert code == 0
    res = femion.open_result(out)
    s = res.summary
    assert s["transport"]["status"] == "completed"
    assert s["conservation_error_rel"] <= 1e-10
    assert s["min_concentration_mol_m3"] >= 0.0
    assert 1e-15 < s["max_hall_parameter"] < 1e-12
    assert res.times == pytest.approx([0.0, 20.0, 40.0])
    header = (out / "transport.csv").read_text().splitlines()[0].split(",")
    # a section's totals are per metre of the plate's width, and the columns say so
    assert {"t_s", "dt_s", "newton_iterations", "exchange_current_A_per_m", "total_Li_mol_per_m",
            "oxide_mol_per_m", "c_Li_min_mol_m3"} <= set(header)
    assert not {"exchange_current_A", "total_Li_mol"} & set(header)
    zo, ze = np.mean(res.layer_z["oxide"]), np.mean(res.layer_z["electrolyte"])
    xs = np.array([0.005, 0.025, 0.045])
    ox_pts = np.c_[xs, np.full(3, 0.01), np.full(3, zo)]
    el_pts = np.c_[xs, np.full(3, 0.01), np.full(3, ze)]
    th0 = res.probe("theta", ox_pts, time=0.0)
    th1 = res.probe("theta", ox_pts, time=40.0)
    assert th0 == pytest.approx([0.3, 0.3, 0.3])
    assert res.probe("c_oxide", ox_pts, time=40.0) == pytest.approx(th1 * s["transport"]["c_max_mol_m3"])
    # Model III: the current flows from x_min to x_max; Li leaves the x_min end and gathers at x_max
    assert th1[0] < 0.3 < th1[2]
    # the uncoated ends (x < 3 mm, x > 47 mm) exchange nothing: their Li stays put
    bare = np.c_[[0.001, 0.049], [0.01, 0.01], [zo, zo]]
    assert res.probe("theta", bare, time=40.0) == pytest.approx([0.3, 0.3], abs=1e-6)  # D_s·t ≪ cell²
    c_li, c_clo4 = res.probe("c_Li", el_pts, time=40.0), res.probe("c_ClO4", el_pts, time=40.0)
    assert c_li == pytest.approx(c_clo4, rel=1e-9)  # electroneutral binary
    phi_s, phi_l = res.probe("phi_s", ox_pts, time=40.0), res.probe("phi_l", el_pts, time=40.0)
    assert phi_s[0] > phi_s[1] > phi_s[2]  # the ITO's ohmic drop reaches the oxide's electrons
    assert np.all(np.isfinite(phi_l))
    with pytest.raises(ValueError, match="no output at t = 33 s"):
        res.probe("theta", ox_pts, time=33.0)
    # a whole line in one call: with outside=NaN the uncoated ends (x < 3 mm, x > 47 mm) are NaN, not an error
    line = np.c_[np.linspace(0.0005, 0.0495, 50), np.full(50, 0.01), np.full(50, ze)]
    with pytest.raises(ValueError, match="outside the region of c_Li"):
        res.probe("c_Li", line, time=40.0)
    c_line = res.probe("c_Li", line, time=40.0, outside=np.nan)
    coated = (line[:, 0] > 0.003) & (line[:, 0] < 0.047)
    assert np.isnan(c_line[~coated]).all() and np.isfinite(c_line[coated]).all()
    assert c_line[coated] == pytest.approx(res.probe("c_Li", line[coated], time=40.0), rel=1e-12)


def test_transport_run_in_3d(shared_tmp, monkeypatch):
    """The same strip run on the 3D hexahedral stack conserves Li, moves it toward x_max and draws a plan map
    and the profiles along x (each line probed once per output time, the uncoated ends left out)."""
    out = shared_tmp / "tr3"
    assert cli.main(["run", str(CASES / "strip_transport.yaml"), "--out", str(out), "--no-progress",
                     "--set", "mesh.dimension=3", "--set", "mesh.cell_size=2 mm", "--set", "transport.duration=20 s",
                     "--set", "transport.outputs=1"]) == 0
    res = femion.open_result(out)
    assert res.summary["transport"]["dimension"] == 3
    assert res.summary["conservation_error_rel"] <= 1e-10
    zo = np.mean(res.layer_z["oxide"])
    th = res.probe("theta", np.array([[0.004, 0.005, zo], [0.046, 0.015, zo]]), time=20.0)
    assert th[0] < 0.3 < th[1]
    assert (out / "figures" / "theta_plan.png").stat().st_size > 10_000
    assert (out / "figures" / "transport_profiles.png").stat().st_size > 10_000

    from matplotlib.figure import Figure

    from femion.post.figures import plot_transport
    from femion.results.reader import Result

    probes, drawn = [], []
    probe = Result.probe
    monkeypatch.setattr(Result, "probe", lambda self, *a, **k: probes.append(a[0]) or probe(self, *a, **k))
    monkeypatch.setattr(Figure, "savefig", lambda fig, *a, **k: drawn.append(fig))
    plot_transport(out)
    assert probes == ["theta", "c_Li"] * len(res.times) + ["theta"]  # + the plan map at the last output
    top, bottom = drawn[0].axes
    assert (top.get_ylabel(), bottom.get_ylabel(), bottom.get_xlabel()) == (
        "oxide filling fraction θ", "c_Li in the electrolyte (mol/m³)", "x (mm)")
    x, c = bottom.lines[-1].get_data()
    coated = (x > 3.0) & (x < 47.0)
    assert np.isnan(c[~coated]).all() and np.isfinite(c[coated]).all() and (~coated).any()
    assert np.isfinite(top.lines[-1].get_data()[1]).all()  # the oxide covers the whole plate


def test_a_stopped_variant_keeps_its_last_good_state_and_the_variants_before_it(tmp_path, capsys):
    """A variant whose time step collapses (here: steps of at least 30 s at ten times the paper's
    current) stops the run with exit 1 and one line naming it; the variants run before it and its
    own last good state stay on disk, the summary lists what was not run."""
    import yaml

    data = yaml.safe_load((CASES / "fig4_model_III.yaml").read_text())
    data.pop("quick")
    data["mesh"]["cell_size"] = "2 mm"
    data["output"] = {"figures": False}
    data["protocol"] = ["drive 0.2 A through bottom_ito for 2 s, 1 output"]
    data["variants"] = {
        "fine": {},
        "collapses": {"transport.steps": {"initial": "60 s", "min": "30 s", "max": "60 s"},
                      "drives[0].current": "2 A", "protocol": ["drive 2 A through bottom_ito for 2 min, 1 output"]},
        "never": {},
    }
    case = tmp_path / "stops.yaml"
    case.write_text(yaml.safe_dump(data, sort_keys=False))
    out = tmp_path / "result"
    assert cli.main(["run", str(case), "--out", str(out), "--no-progress"]) == 1
    err = problems(capsys.readouterr().err)
    assert len(err) == 1 and "variant collapses" in err[0] and "not run: never" in err[0]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["variants"] == ["fine", "collapses"]
    assert summary["stopped"]["variant"] == "collapses" and summary["stopped"]["not_run"] == ["never"]
    assert (out / "fine" / "summary.json").is_file() and (out / "report.md").is_file()
    stopped = json.loads((out / "collapses" / "summary.json").read_text())
    assert stopped["transport"]["status"] != "completed"
    assert not (out / "never").exists()
