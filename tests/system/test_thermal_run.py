"""Joule heating in a run (transport.mechanism.thermal): the stack warms, T reaches the transport."""

from __future__ import annotations

import json

import numpy as np
import pytest

from femion import cli
from femion._dolfinx import MPI
from femion.config import load_case
from femion.laws import materials
from femion.laws.kinetics import arrhenius
from femion.transport import case_models

from ..conftest import CASES

QUICK = ["--quick", "--no-progress", "--set", "output.figures=false"]
THERMAL = ["--set", "transport.mechanism.thermal=true"]


def _moved(path) -> float:
    report = json.loads((path / "report.json").read_text())
    return next(s for s in report["stages"] if s["action"] == "drive")["displacement_mm"]


@pytest.fixture(scope="module")
def model_III(tmp_path_factory):
    """Quick Model III (0.2 A, 1 min): electrochemical, electrochemical with heating, heating alone,
    heating with the contacts' faces clamped at T∞."""
    out = {}
    for name, extra in (("cold", []), ("heated", THERMAL),
                        ("heat_only", [*THERMAL, "--set", "transport.mechanism.electrochemical=false"]),
                        ("clamped", [*THERMAL, "--set", "thermal.clamps=true"])):
        path = tmp_path_factory.mktemp(name) / "run"
        assert cli.main(["run", str(CASES / "fig4_model_III.yaml"), "--out", str(path), *QUICK, *extra]) == 0
        out[name] = path
    return out


def test_the_stack_warms_as_a_lumped_plate_and_writes_t(model_III):
    """0.8 W in a 50 mm × 20 mm plate for 60 s: the mean rise is q/(2h)(1 − e^{−t/τ}), τ = C/(2h),
    C = Σρc_p H of the layers, within 10 % (the plate is one lump: Biot hH/k ≈ 0.03); T is a field
    series of the results, Li is conserved as without heating."""
    summary = json.loads((model_III["heated"] / "summary.json").read_text())
    th = summary["thermal"]
    assert th["joule_power_W"]["bottom_ito"] == pytest.approx(0.8, rel=1e-9)
    q, h = 0.8 / (50e-3 * 20e-3), th["surface_coefficient_W_m2K"]
    glass, pc = materials.get("glass"), materials.get("LiClO4_PC")
    C = 2 * 1.1e-3 * glass.value("density") * glass.value("heat_capacity") \
        + 100e-6 * pc.value("density") * pc.value("heat_capacity")
    lumped = q / (2 * h) * (1 - np.exp(-60.0 * 2 * h / C))
    assert th["max_mean_temperature_rise_K"] == pytest.approx(lumped, rel=0.1)
    assert th["max_temperature_rise_K"] >= th["max_mean_temperature_rise_K"]
    assert (model_III["heated"] / "fields" / "T.vtkhdf").is_file()
    assert summary["conservation_error_rel"] < 1e-12
    from femion.post.figures import plot_transport
    from femion.results.reader import open_result

    res = open_result(model_III["heated"])
    film = np.array([[25e-3, 10e-3, float(np.mean(res.layer_z["oxide"]))]])
    assert res.probe("T", film, time=res.times[-1])[0] - th["ambient_K"] == pytest.approx(
        th["max_mean_temperature_rise_K"], rel=0.1)
    (model_III["heated"] / "figures").mkdir(exist_ok=True)
    assert "temperature_rise.png" in {f.name for f in plot_transport(model_III["heated"])}


def test_clamps_hold_the_plate_ends_at_ambient(model_III):
    """thermal.clamps: the faces over the drive's contacts (the plate's ends) stay at T∞, so the ends,
    the warmest part of a free plate (air, not electrolyte, above their film), become the coolest."""
    from femion.results.reader import open_result

    free, clamped = (open_result(model_III[k]) for k in ("heated", "clamped"))
    z = float(np.mean(free.layer_z["oxide"]))
    ends = np.array([[1e-6, 10e-3, z], [25e-3, 10e-3, z]])
    T_free, T_clamped = (r.probe("T", ends, time=r.times[-1]) - 298.15 for r in (free, clamped))
    assert T_free[0] > T_free[1] > 1.0
    assert T_clamped[0] < 0.05 * T_clamped[1]
    assert T_clamped[1] == pytest.approx(T_free[1], rel=0.05)  # the middle is 25 mm from the clamps


def test_heating_alone_moves_no_li_and_speeds_the_electrochemical_motion(model_III):
    """Symmetric heating without the ohmic drop moves nothing (< 1e-6 of the electrochemical
    displacement); with it, the warmer stack (faster D_s, i0, ionic D) moves Li further."""
    cold, heated, alone = (_moved(model_III[k]) for k in ("cold", "heated", "heat_only"))
    assert abs(alone) < 1e-6 * abs(cold)
    assert heated > cold > 0


def test_arrhenius_diffusivities_at_two_temperatures():
    """The solver's D_s(T) and D_i(T) are the library's values times exp[−E_a/R (1/T − 1/298.15)]
    (WO3 40 kJ/mol, LiClO4/PC 16 kJ/mol), at 298.15 K and 330 K."""
    case = load_case(CASES / "fig4_model_III.yaml")
    ox_layer, el_layer = case_models.transport_layers(case)[:2]

    class T:
        value = 298.15

    oxide = case_models.oxide_model(case, ox_layer, None, T)
    el = case_models.electrolyte_model(case, el_layer)
    from femion.laws.kinetics import NUMPY

    for temp in (298.15, 330.0):
        T.value = temp
        assert oxide.diffusivity(0.3, NUMPY) == pytest.approx(arrhenius(1e-14, 40e3, temp), rel=1e-12)
        li = el.ions[0]
        assert el.diffusivity(li, temp, NUMPY) == pytest.approx(arrhenius(li.diffusivity, 16e3, temp), rel=1e-12)
    assert arrhenius(1.0, 40e3, 330.0) == pytest.approx(4.7, rel=0.02)  # 32 K warmer: 4.7x faster D_s


@pytest.mark.parametrize("items, expected", [
    (["transport.mechanism.thermal=true", "thermal.emissivity=1.5"], "thermal.emissivity"),
    (["thermal.convection=10 W/m^2"], "thermal.convection"),
])
def test_thermal_settings_are_checked(capsys, items, expected):
    argv = ["validate", str(CASES / "fig4_model_III.yaml")]
    for item in items:
        argv += ["--set", item]
    code = cli.main(argv)
    err = capsys.readouterr().err.strip()
    assert code == 2 and expected in err and len(err.splitlines()) == 1, err


@pytest.mark.mpi
def test_a_heated_run_agrees_on_one_and_two_ranks(comm, shared_tmp):
    """Quick Model III with heating on all ranks and on one: the same temperature rise (1e-8) and
    Li displacement (1e-6)."""
    if comm.size == 1:
        pytest.skip("compares a run on several ranks with a serial one: run under mpiexec -n 2")
    from femion.config import load_runs
    from femion.runner.pipeline import run_case

    case = load_runs(CASES / "fig4_model_III.yaml", ["transport.mechanism.thermal=true", "output.figures=false"],
                     quick=True)[1][0][1]
    run_case(case, shared_tmp / "par", comm, progress=False)
    if comm.rank == 0:
        run_case(case, shared_tmp / "ser", MPI.COMM_SELF, progress=False)
        par, ser = (json.loads((shared_tmp / n / "summary.json").read_text())["thermal"] for n in ("par", "ser"))
        assert par["max_temperature_rise_K"] == pytest.approx(ser["max_temperature_rise_K"], rel=1e-8)
        assert _moved(shared_tmp / "par") == pytest.approx(_moved(shared_tmp / "ser"), rel=1e-6)
    comm.barrier()
