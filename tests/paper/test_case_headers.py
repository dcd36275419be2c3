"""Every number with a unit in a case file's header comment is one a test checks.

A header number is either an input the case sets (it must then occur in the case's own YAML, so a
header cannot drift from the settings it describes), a figure derived from the case's inputs (recomputed
here from the case and the material library, to the digits the header prints), a quote from the
paper (named, with where the paper says it), or an outcome of a femion run checked by a test below.
A number that is none of these fails, naming the case and the number.
"""

from __future__ import annotations

import math
import re
from pathlib import Path

import pytest
from shapely.geometry import LineString

from femion.config import load_case
from femion.laws import materials
from femion.laws.host import HostThermodynamics

from ..conftest import CASES

UNITS = r"(?:mm|um|nm|m|V|A|ohm|Mohm|min|s|kJ/mol|eV|A/m2|m2/s|W|M)"
NUMBER_WITH_UNIT = re.compile(r"(?<![\w.])(-?\d+(?:\.\d+)?(?:e-?\d+)?)\s?(" + UNITS + r")(?![\w/^])")
BARE_NUMBER = re.compile(r"(?<![\w.])-?\d+(?:\.\d+)?(?![\w.])")


def _split(path: Path) -> tuple[str, str]:
    """(header comment, YAML body) of a case file, units spelled the header's way in both."""
    lines = path.read_text().splitlines()
    head = "\n".join(line for line in lines if line.startswith("#"))
    body = "\n".join(line for line in lines if not line.lstrip().startswith("#"))
    body = body.replace("m^2/s", "m2/s").replace("A/m^2", "A/m2").replace("ohm/sq", "ohm")
    return head, body


def _tokens(text: str) -> list[tuple[float, str, str]]:
    return [(float(v), u, f"{v} {u}") for v, u in NUMBER_WITH_UNIT.findall(text)]


def _agrees(printed: str, value: float) -> bool:
    """``value`` rounds to the header's printed number (to its last printed digit)."""
    mantissa = printed.split("e")[0]
    decimals = len(mantissa.split(".")[1]) if "." in mantissa else 0
    exponent = int(printed.split("e")[1]) if "e" in printed else 0
    half_ulp = 0.5 * 10.0 ** (exponent - decimals)
    return abs(value - float(printed)) <= half_ulp * (1 + 1e-9)


def _ocv(case, theta: float) -> float:
    """U(θ) (V) of the case's host law at its temperature."""
    host = case.transport.oxide.host
    U0 = host.standard_potential or materials.get(case.transport_layers().oxide.material).value("standard_potential")
    thermo = HostThermodynamics(host.model, U0, case.transport.temperature, host.interaction)
    return float(thermo.open_circuit_potential(theta))


def _strip_resistance(case) -> float:
    """R = R_s·L/W (Ω) of the driven bottom ITO across the plate."""
    layer = case.layer(case.drives[0].conductor)
    return layer.sheet_resistance * case.geometry.plate.length / case.geometry.plate.width


def _film_resistance(case) -> float:
    """R = ρ·L/(W·t) (Ω) of the oxide film end to end (Model I's conductor)."""
    ox = case.transport_layers().oxide
    return materials.get(ox.material).value("resistivity") * case.geometry.plate.length / (
        case.geometry.plate.width * ox.thickness)


def _salt(name: str) -> float:
    return materials.get(name).value("salt_concentration") / 1e3  # mol/m³ → M


def _pattern_part(case, layer: str, k: int):
    from femion.geometry.plan import shape_geometry

    return shape_geometry(case.layer(layer).pattern.include[k], case.geometry.plate)


#: header numbers derived from the case's inputs: (case, printed number) → its value from the case
DERIVED = {
    # the LixWO3-like OCV every transport case states, "sloping ~3.3 -> 2.4 V" over θ 0.01 … 0.9
    ("*", "3.3 V"): lambda c: _ocv(c, 0.01),
    ("*", "2.4 V"): lambda c: _ocv(c, 0.9),
    ("*", "20 ohm"): _strip_resistance,
    ("fig4_mechanisms", "0.8 W"): lambda c: c.drives[0].current ** 2 * _strip_resistance(c),
    ("fig4_model_I", "1e-5 A"): lambda c: c.drives[0].voltage / _film_resistance(c),
    ("fig2_protocol", "1 M"): lambda c: _salt("LiClO4_PC"),
    ("hosts_and_cations", "1 M"): lambda c: _salt("NaClO4_PC"),
    ("hosts_and_cations", "0.5 M"): lambda c: _salt("H2SO4_aq"),
    ("hosts_and_cations", "1.6 V"): lambda c: materials.get("Nb2O5").value("standard_potential"),
    # fig5c: the straight strip it compares with, 0.2 A through 20 Ω
    ("fig5c_two_track", "4 V"): lambda c: 0.2 * 8.0 * 50 / 20,
    ("fig5c_two_track", "0.2 A"): lambda c: 0.2,
    # fig5e: the eyes' size and the mouth band's width (outer minus inner radius), from the pattern
    ("fig5e_painting", "6 mm"): lambda c: _pattern_part(c, "electrolyte", 0).bounds[2] * 1e3
    - _pattern_part(c, "electrolyte", 0).bounds[0] * 1e3,
    ("fig5e_painting", "4 mm"): lambda c: _pattern_part(c, "electrolyte", 0).bounds[3] * 1e3
    - _pattern_part(c, "electrolyte", 0).bounds[1] * 1e3,
    ("fig5e_painting", "2.5 mm"): lambda c: _pattern_part(c, "electrolyte", 2).intersection(
        LineString([(0.025, 0.0), (0.025, 0.02)])).length * 1e3,  # the mouth across its middle
    # fig5ab: square T, 5 mm at the destination end
    ("fig5ab_current_sweep", "5 mm"): lambda c: (c.optics.monitors["T"].rectangle[1][0]
                                                 - c.optics.monitors["T"].rectangle[0][0]) * 1e3,
    # fig5d: the coated band's far corner
    ("fig5d_electrolyte_area", "47 mm"): lambda c: _pattern_part(c, "electrolyte", 0).bounds[2] * 1e3,
    ("fig5d_electrolyte_area", "9 mm"): lambda c: _pattern_part(c, "electrolyte", 0).bounds[3] * 1e3,
}

#: what the paper itself says (seed 000), quoted in a header
PAPER = {
    "1 um": "Methods: WO3 'in the range of 200 nm-1 um'",
    "0.4 Mohm": "Model I: the blue film's resistance",
}

#: outcomes of femion runs stated in a header, each checked by the test named
RUN_OUTCOMES = {
    ("fig2_protocol", "0.112"): "test_fig2_injection_reaches_the_header_filling",
    ("fig5c_two_track", "52 ohm"): "test_fig5c_track_resistance_and_drop_match_the_header",
    ("fig5c_two_track", "1.04 V"): "test_fig5c_track_resistance_and_drop_match_the_header",
}


def _uncoated_ends_mm(case) -> float | None:
    """Width (mm) of the uncoated strip at each end (the electrolyte's x-extent inset), if patterned."""
    el = case.transport_layers().electrolyte if case.transport is not None else None
    if el is None or el.pattern is None:
        return None
    from femion.geometry.plan import pattern_geometry

    x0, _, x1, _ = pattern_geometry(el.pattern, case.geometry.plate).bounds
    return round(x0 * 1e3, 9) if math.isclose(x0, case.geometry.plate.length - x1, abs_tol=1e-9) else None


CASE_FILES = sorted(CASES.glob("*.yaml"))


@pytest.mark.paper
@pytest.mark.parametrize("path", CASE_FILES, ids=[p.stem for p in CASE_FILES])
def test_every_header_number_is_checked(path):
    head, body = _split(path)
    case = load_case(path)
    body_values = {(v, u) for v, u, _ in _tokens(body)}
    body_bare = {float(m) for m in BARE_NUMBER.findall(body)}  # pattern coordinates, in the pattern's unit
    unchecked = []
    for value, unit, printed in _tokens(head):
        if (value, unit) in body_values or (unit == "mm" and "unit: mm" in body and value in body_bare):
            continue
        key = next((k for k in ((path.stem, printed), ("*", printed)) if k in DERIVED), None)
        if key is not None:
            derived = DERIVED[key](case)
            assert _agrees(printed.split()[0], derived), \
                f"{path.name}: header says {printed}, the case gives {derived:.6g}"
            continue
        if printed == "3 mm" and _uncoated_ends_mm(case) == 3.0:  # "uncoated ends 3 mm"
            continue
        if printed in PAPER or (path.stem, printed) in RUN_OUTCOMES:
            continue
        unchecked.append(printed)
    for (stem, printed), test in RUN_OUTCOMES.items():  # the outcome a test checks is still what the header says
        if stem == path.stem:
            assert re.search(rf"(?<![\d.]){re.escape(printed)}", head), \
                f"{path.name}: {test} checks {printed}, not in the header"
    assert not unchecked, f"{path.name}: header numbers no test checks: {unchecked}"


def _header(stem: str) -> str:
    return _split(CASES / f"{stem}.yaml")[0]


@pytest.mark.paper
def test_fig5c_track_resistance_and_drop_match_the_header(comm):
    """fig5c's header: "the track (52 ohm, femion's conductor stage) drops 1.04 V" at 0.02 A."""
    from femion.geometry import mesh as geometry
    from femion.geometry import plan
    from femion.runner.sheets import solve_conductors

    head = _header("fig5c_two_track")
    R_printed = re.search(r"(\d+(?:\.\d+)?) ohm, femion's conductor stage", head).group(1)
    V_printed = re.search(r"drops (\d+(?:\.\d+)?) V", head).group(1)
    case = load_case(CASES / "fig5c_two_track.yaml")
    (sol,) = solve_conductors(case, geometry.build_plan_mesh(plan.stack_spec(case), comm))
    assert _agrees(R_printed, sol.resistance), sol.resistance
    assert _agrees(V_printed, sol.voltage), sol.voltage


@pytest.mark.paper
@pytest.mark.slow
def test_fig2_injection_reaches_the_header_filling(tmp_path):
    """fig2's header: "3 V for 3 min takes the film from theta = 0.01 to 0.112 (femion's full run)":
    the P1 stage at the case's full settings, mean θ̄ over the film at its end."""
    from femion.cli import main
    from femion.config.loading import read_case_mapping
    from femion.post.metrics import weighted_mean_std
    from femion.results.reader import open_result

    head = _header("fig2_protocol")
    start, end = re.search(r"theta = (\d+(?:\.\d+)?) to (\d+(?:\.\d+)?)", head).groups()
    first = load_case(CASES / "fig2_protocol.yaml").protocol[0]
    assert (first.action, first.voltage, first.duration) == ("inject", 3.0, 180.0)  # "3 V for 3 min"
    raw = read_case_mapping(CASES / "fig2_protocol.yaml")["protocol"][0]
    out = tmp_path / "p1"
    assert main(["run", str(CASES / "fig2_protocol.yaml"), "--out", str(out), "--no-progress",
                 "--set", f"protocol=[{raw!r}]", "--set", "output.figures=false"]) in (0, None)
    res = open_result(out)
    theta = [weighted_mean_std(*res.film_filling(t))[0] for t in (res.times[0], res.times[-1])]
    assert res.times[-1] == pytest.approx(180.0)
    assert _agrees(start, theta[0]) and _agrees(end, theta[1]), theta
