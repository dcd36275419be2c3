"""Film optics: Q_A → ΔOD → T, colours, monitors, the material library's optical and electrolyte data,
and the optics output of a short transport run."""

from __future__ import annotations

import csv

import numpy as np
import pytest
from shapely.geometry import box

from femion.laws import materials, optics

from ..conftest import CASES


def test_inserted_charge_per_area_hand_value():
    # F c_max t θ = 96485.332 C/mol · 12940 mol/m³ · 500 nm · 0.3 = 187.28 C/m² (18.7 mC/cm²)
    q = optics.inserted_charge_per_area(0.3, 12940.0, 500e-9)
    assert q == pytest.approx(96485.33212 * 12940.0 * 500e-9 * 0.3, rel=1e-9)
    assert q == pytest.approx(187.28, rel=1e-4)
    assert optics.inserted_charge_per_area(0.3, 12940.0, 500e-9, theta_bleached=0.3) == 0.0
    assert optics.inserted_charge_per_area(0.1, 12940.0, 500e-9, theta_bleached=0.3) < 0.0


def test_optical_density_is_ce_times_q():
    assert optics.optical_density(187.28, 40e-4) == pytest.approx(0.74912)  # 40 cm²/C
    assert optics.optical_density(-10.0, 40e-4) == pytest.approx(-0.04)  # not clipped
    np.testing.assert_allclose(optics.optical_density(np.array([0.0, 25.0]), 4e-3), [0.0, 0.1])


def test_beer_lambert():
    assert optics.transmittance(1.0, 0.85) == pytest.approx(0.085)
    assert optics.transmittance(0.0, 0.85) == pytest.approx(0.85)
    assert optics.transmittance(2.0, 0.5) == pytest.approx(0.005)


def _lightness(rgb):
    """CIELAB L* (D65) of sRGB colours in [0, 1]."""
    lin = np.where(rgb <= 0.04045, rgb / 12.92, ((rgb + 0.055) / 1.055) ** 2.4)
    Y = lin @ np.array([0.2126, 0.7152, 0.0722])
    return 116.0 * np.where(Y > 216 / 24389, np.cbrt(Y), (24389 / 27 * Y + 16) / 116) - 16.0


def test_film_colours_are_perceptually_ordered_and_do_not_saturate():
    from femion.post.optics import OD_FULL_SCALE_MIN, film_colour_scale, film_colours

    od = np.linspace(0.0, 1.0, 21)
    L = _lightness(film_colours(od, 1.0))
    assert L[0] > 95.0  # ΔOD 0 is white paper
    steps = -np.diff(L)
    assert steps.min() > 1.0 and steps.max() < 3.0 * steps.mean()  # darker at every step, no jumps
    rgb = film_colours(0.5, 1.0)[0]
    assert rgb[2] > rgb[1] > rgb[0]  # blue
    # a pale film stays pale: the scale never tops below ΔOD = 1 (T = T0/10)
    assert film_colour_scale(0.2) == OD_FULL_SCALE_MIN == 1.0
    assert _lightness(film_colours(0.2, film_colour_scale(0.2)))[0] > 80.0
    # MoO3 (CE 50 cm²/C, 27,800 mol/m³, 500 nm) at θ̄ = 0.3 and 0.6 is ΔOD 2.0 and 4.0: the old
    # transmittance colours made both near black; on the run's own scale they are 30+ L* apart
    mo = materials.get("MoO3")
    c_max = mo.value("max_insertion_fraction") * mo.value("density") / mo.value("molar_mass")
    q = optics.inserted_charge_per_area(np.array([0.3, 0.6]), c_max, 500e-9)
    dod = optics.optical_density(q, mo.value("coloration_efficiency"))
    assert dod == pytest.approx([2.01, 4.02], rel=0.01)
    L = _lightness(film_colours(dod, film_colour_scale(dod.max())))
    assert L[0] - L[1] > 30.0


def test_monitor_means_on_a_grid():
    gx, gy = np.meshgrid(np.linspace(0, 0.05, 51), np.linspace(0, 0.02, 21))
    xy = np.c_[gx.ravel(), gy.ravel()]
    values = xy[:, 0] * 100.0  # = x in cm
    out = optics.monitor_means(xy, values, {"L": box(0.004, 0.006, 0.010, 0.014), "R": box(0.040, 0.006, 0.046, 0.014)})
    assert out["L"] == pytest.approx(0.7)  # nodes x = 4..10 mm, mean 7 mm
    assert out["R"] == pytest.approx(4.3)
    with pytest.raises(ValueError, match="'gap'"):
        optics.monitor_means(xy, values, {"gap": box(0.0101, 0.0101, 0.0109, 0.0109)})


def test_every_oxide_has_a_sourced_coloration_efficiency():
    oxides = [m for m in materials.LIBRARY.values() if m.kind == "oxide"]
    assert {"WO3", "MoO3", "TiO2", "Nb2O5"} <= {m.name for m in oxides}
    keys = set(materials.get("WO3").properties)
    for m in oxides:
        assert keys <= set(m.properties), m.name
        ce = m.properties["coloration_efficiency"]
        assert ce.value > 0 and ce.unit == "m**2/C" and "cm2/C" in ce.source, m.name
        assert 1e-4 < ce.value < 2e-2  # 1–200 cm²/C
        assert 0.5 < m.value("standard_potential") < 4.0


def test_electrolytes_are_electroneutral():
    els = [m for m in materials.LIBRARY.values() if m.kind == "electrolyte"]
    assert {"LiClO4_PC", "NaClO4_PC", "H2SO4_aq", "Zn_ClO4_2_aq", "CaClO4_2_PC"} <= {m.name for m in els}
    assert materials.get("LiClO4_PC").ions == ("Li", "ClO4")
    for m in els:
        cation, anion = m.ions
        for key in ("salt_concentration", "conductivity", "relative_permittivity", f"diffusivity_{cation}",
                    f"diffusivity_{anion}", "cation_valence", "anion_valence"):
            assert m.value(key) > 0 or key == "anion_valence", (m.name, key)
        ions = materials.electrolyte_ions(m)
        assert [i[0] for i in ions] == [cation, anion]
        assert ions[0][1] > 0 > ions[1][1]
        assert sum(z * c for _, z, _, c in ions) == pytest.approx(0.0, abs=1e-9)
    zn = materials.electrolyte_ions(materials.get("Zn_ClO4_2_aq"))
    assert zn[1][3] == pytest.approx(2 * zn[0][3])


@pytest.mark.slow
def test_optics_of_a_transport_run(tmp_path):
    from femion.cli import main
    from femion.post.optics import render_optics, write_optics
    from femion.results.reader import open_result

    out = tmp_path / "strip"
    rc = main(["run", str(CASES / "strip_transport.yaml"), "--out", str(out), "--no-progress",
               "--set", "transport.duration=20 s", "--set", "transport.outputs=2",
               "--set", "optics.monitors={L: {unit: mm, rectangle: [[4, 5], [10, 15]]}, "
                        "R: {unit: mm, rectangle: [[40, 5], [46, 15]]}}"])
    assert rc in (0, None)
    info = write_optics(out)
    res = open_result(out)
    T0 = 0.85
    assert info["coloration_efficiency_m2_per_C"] == pytest.approx(40e-4)  # WO3 default
    with open(out / "optics.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == len(res.times) == 3
    assert list(rows[0]) == ["t_s", "T_L", "dOD_L", "T_R", "dOD_R", "T_mean", "dOD_mean"]
    for row in rows:
        for key in ("T_L", "T_R", "T_mean"):
            assert 0.0 < float(row[key]) <= T0
    assert len(info["monitors"]["L"]) == 3
    # darker where θ is larger: the monitor holding more Li has the lower transmittance, every time
    for t, row in zip(res.times, rows, strict=True):
        xy, theta = res.film_filling(t)
        th = optics.monitor_means(xy, theta, {"L": box(0.004, 0.005, 0.010, 0.015),
                                              "R": box(0.040, 0.005, 0.046, 0.015)})
        if abs(th["L"] - th["R"]) > 1e-6:
            assert (float(row["T_L"]) < float(row["T_R"])) == (th["L"] > th["R"])
    assert float(rows[-1]["T_L"]) != pytest.approx(float(rows[-1]["T_R"]), rel=1e-3)  # the drive did separate them
    assert float(rows[0]["dOD_mean"]) == pytest.approx(-np.log10(float(rows[0]["T_mean"]) / T0))

    files = render_optics(out)
    names = {p.name for p in files}
    assert {"transmittance_monitors.png", "thickness_change.png", "before_after.png", "protocol.gif"} <= names
    assert any(n.startswith("photo_") for n in names)
    for p in files:
        assert p.is_file() and p.stat().st_size > 5000, p

    # a photo shows what it claims: a transmittance colour bar, the coated area outlined, the
    # current's direction while the drive runs, the monitors labelled outside their squares
    from femion.post.optics import _open, _photo_figure

    film = _open(out)
    fig = _photo_figure(film, res.times[-1], "drive")
    photo, bar = fig.axes
    assert "ΔOD" in bar.get_ylabel()
    assert [c for c in bar.child_axes if "transmittance" in c.get_ylabel()]  # the same bar read as T
    assert film.colour_scale() >= 1.0
    assert "electrolyte" in [t.get_text() for t in photo.get_legend().get_texts()]
    assert any("I = 0.2 A" in t.get_text() for t in photo.texts)
    # the monitor plot: transmittance against time, one shaded band per stage
    from femion.post.optics import _monitors_figure

    (mon,) = _monitors_figure(film).axes
    assert mon.get_ylabel() == "transmittance T" and mon.get_xlabel() == "t (min)"
    assert len(mon.patches) == len(film.summary["protocol"]) >= 1  # the stage bands
    # the film's thickness change (the paper's AFM step): Δh in nm along x, a line per photo
    from femion.post.optics import _photo_times, _thickness_figure

    (prof,) = _thickness_figure(film).axes
    assert prof.get_ylabel() == "film thickness change Δh (nm)" and prof.get_xlabel() == "x (mm)"
    assert len(prof.lines) == len(_photo_times(film))
    assert len(info["thickness_change_max_m"]) == 3 and 0.0 < info["thickness_change_max_m"][-1] < 500e-9 * 0.065
    # before and after on one colour scale
    from femion.post.optics import _before_after_figure

    before, after, pair_bar = _before_after_figure(film).axes
    assert before.get_title().startswith("before") and after.get_title().startswith("after")
    assert "ΔOD" in pair_bar.get_ylabel()
    (arrow,) = [a for a in photo.texts if getattr(a, "arrow_patch", None) is not None]
    assert arrow.xy[0] > arrow.xyann[0]  # the strip's current flows toward x_max
    for label in (t for t in photo.texts if t.get_text() in ("L", "R")):
        geom = film.monitors[label.get_text()]
        assert label.get_position()[1] > geom.bounds[3] * 1e3  # above the square, in mm
