"""Case files: units, schema, and one-line rejections of malformed input (exit status 2)."""

from __future__ import annotations

import copy
import subprocess
import sys

import pytest
import yaml

from femion import cli
from femion.config import load_case
from femion.config.schema import TransportSettings
from femion.config.units import UnitError, to_si

from ..conftest import CASES

BASE = yaml.safe_load((CASES / "strip_drive.yaml").read_text())


def _set(path, value):
    def mutate(d):
        node = d
        for p in path[:-1]:
            node = node[p]
        node[path[-1]] = value

    return mutate


def _delete(path):
    def mutate(d):
        node = d
        for p in path[:-1]:
            node = node[p]
        del node[path[-1]]

    return mutate


def _edit(fn):
    return fn


# (id, mutation of the strip case, text the one-line error must contain)
MALFORMED = [
    ("unknown-top-key", _set(["geomtry"], {}), "geomtry: unknown key"),
    ("negative-thickness", _set(["geometry", "layers", 2, "thickness"], "-200 nm"),
     "geometry.layers[2].thickness: must be > 0"),
    ("zero-thickness", _set(["geometry", "layers", 3, "thickness"], "0 nm"),
     "geometry.layers[3].thickness: must be > 0"),
    ("missing-unit", _set(["geometry", "layers", 2, "thickness"], 200), "geometry.layers[2].thickness: missing unit"),
    ("missing-unit-string", _set(["geometry", "plate", "length"], "50"), "geometry.plate.length: missing unit"),
    ("wrong-dimension", _set(["geometry", "layers", 1, "thickness"], "30 mA"), "geometry.layers[1].thickness"),
    ("current-in-volts", _set(["drives", 0, "current"], "0.2 V"), "drives[0].current"),
    ("unknown-unit", _set(["drives", 0, "current"], "0.2 amperez"), "drives[0].current: cannot read"),
    ("unknown-material", _set(["geometry", "layers", 3, "material"], "WO4"),
     "geometry.layers[3].material: unknown material"),
    ("pattern-outside-plate", _set(["geometry", "layers", 4, "pattern"],
                                   {"unit": "mm", "rectangle": [[40, 0], [60, 20]]}),
     "geometry.layers[4].pattern.include[0]: extends outside the plate"),
    ("contact-on-glass", _set(["geometry", "contacts", 0, "conductor"], "glass"), "geometry.contacts[0].conductor"),
    ("drive-unknown-contact", _set(["drives", 0, "to"], "middle"), "drives[0].to"),
    ("current-and-voltage", _set(["drives", 0, "voltage"], "4 V"), "drives[0]"),
    ("no-drives", _delete(["drives"]), "drives: required key is missing"),
    ("plate-length-missing", _delete(["geometry", "plate", "length"]),
     "geometry.plate.length: required key is missing"),
    ("misspelt-layer-key", _edit(lambda d: d["geometry"]["layers"][0].update(thicknes="1 mm")),
     "geometry.layers[0].thicknes: unknown key"),
    ("cell-size-too-coarse", _set(["mesh", "cell_size"], "10 mm"), "mesh.cell_size"),
    ("negative-cell-size", _set(["mesh", "cell_size"], "-1 mm"), "mesh.cell_size: must be > 0"),
    ("dimension-4", _set(["mesh", "dimension"], 4), "mesh.dimension"),
    ("duplicate-layer", _set(["geometry", "layers", 1, "name"], "glass"),
     "geometry.layers: layer names must be unique"),
    ("sheet-resistance-on-oxide", _set(["geometry", "layers", 3, "sheet_resistance"], "8 ohm/sq"),
     "geometry.layers[3]"),
    ("contact-at-and-region", _set(["geometry", "contacts", 0, "region"],
                                   {"unit": "mm", "rectangle": [[0, 0], [2, 20]]}),
     "geometry.contacts[0]"),
    ("contact-bad-edge", _set(["geometry", "contacts", 0, "at"], "left"), "geometry.contacts[0].at"),
    ("two-shapes-in-one", _set(["geometry", "layers", 4, "pattern"], {"unit": "mm", "rectangle": [[3, 0], [47, 20]],
                                                                          "circle": {"centre": [5, 5], "radius": 1}}),
     "geometry.layers[4].pattern.include[0]"),
    ("polygon-two-points", _set(["geometry", "layers", 4, "pattern"], {"unit": "mm", "polygon": [[3, 0], [47, 20]]}),
     "geometry.layers[4].pattern.include[0]"),
    ("point-in-sheet", _set(["magnetic", "points"], [["25 mm", "10 mm", "1.10013 mm"]]), "magnetic.points[0]"),
    ("field-wrong-unit", _set(["magnetic", "external_field"], ["1 A", "0 T", "0 T"]), "magnetic.external_field[0]"),
    ("bad-layer-name", _set(["geometry", "layers", 2, "name"], "bottom ito"), "geometry.layers[2].name"),
    ("zero-radius", _set(["geometry", "layers", 4, "pattern"],
                         {"unit": "mm", "circle": {"centre": [25, 10], "radius": 0}}),
     "geometry.layers[4].pattern.include[0].circle.radius: must be > 0"),
    ("from-equals-to", _set(["drives", 0, "to"], "left"), "drives[0]"),
    ("section-off-plate", _set(["mesh", "section_y"], "30 mm"), "mesh.section_y"),
    ("zero-elements", _set(["geometry", "layers", 0, "elements"], 0), "geometry.layers[0].elements"),
    ("self-crossing-polygon", _set(["geometry", "layers", 4, "pattern"],
                                   {"unit": "mm", "polygon": [[5, 5], [20, 15], [20, 5], [5, 15]]}),
     "geometry.layers[4].pattern.include[0]: polygon is not simple"),
    ("contact-misses-track", _edit(lambda d: (
        d["geometry"]["layers"][2].update(pattern={"strip": {"width": "4 mm"}}),
        d["geometry"]["contacts"][0].update(at=None, region={"unit": "mm", "rectangle": [[0, 0], [2, 2]]}),
        d["geometry"]["contacts"][0].pop("at"))), "geometry.contacts[0].region: does not overlap"),
    ("zero-current", _set(["drives", 0, "current"], "0 A"), "drives[0]"),
    ("nan-external-field", _set(["magnetic", "external_field"], ["nan T", "0 T", "0 T"]),
     "magnetic.external_field[0]: must be a finite number"),
    ("overflowing-length", _set(["geometry", "plate", "length"], "1e400 m"),
     "geometry.plate.length: must be a finite number"),
    ("infinite-bare-number", _set(["geometry", "layers", 4, "pattern"],
                                  {"unit": "mm", "rectangle": [[3, 0], [float("inf"), 20]]}),
     "geometry.layers[4].pattern.include[0].rectangle[1][0]: must be a finite number"),
    ("micron-cells", _set(["mesh", "cell_size"], "1 um"),
     "mesh.cell_size: 1e-06 m makes a 3D stack mesh of about 8e+09 cells"),
]


@pytest.mark.parametrize("label,mutate,expected", MALFORMED, ids=[m[0] for m in MALFORMED])
def test_malformed_case_rejected_with_one_line(tmp_path, capsys, label, mutate, expected):
    """Each malformed case exits with 2 and one stderr line that names the offending key."""
    data = copy.deepcopy(BASE)
    mutate(data)
    path = tmp_path / f"{label}.yaml"
    path.write_text(yaml.safe_dump(data))
    assert cli.main(["validate", str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert expected in err, err


def test_enough_malformed_cases():
    """The suite checks at least 20 distinct malformed case files."""
    assert len({m[0] for m in MALFORMED}) >= 20


def test_yaml_syntax_error(tmp_path, capsys):
    """A case that is not YAML is rejected with its line number."""
    p = tmp_path / "bad.yaml"
    p.write_text("name: x\ngeometry: [unclosed\n")
    assert cli.main(["validate", str(p)]) == 2
    assert "not valid YAML at line" in capsys.readouterr().err


def test_run_with_bad_case_leaves_no_output(tmp_path):
    """`femion run` on a bad case exits 2 with one line and writes no results directory."""
    data = copy.deepcopy(BASE)
    data["geometry"]["layers"][2]["thickness"] = "-1 nm"
    case = tmp_path / "bad.yaml"
    case.write_text(yaml.safe_dump(data))
    out = tmp_path / "out"
    proc = subprocess.run([sys.executable, "-m", "femion", "run", str(case), "--out", str(out)],
                          capture_output=True, text=True)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        "femion: error: geometry.layers[2].thickness: must be > 0 (got '-1 nm')"
    ]
    assert not out.exists() and not list(tmp_path.glob("out*"))


def test_set_override_and_bad_override(capsys):
    """--set changes a value through the schema (units checked) and names a bad key."""
    case = load_case(CASES / "strip_drive.yaml", ["drives[0].current=-0.05 A", "mesh.cell_size=1 mm"])
    assert case.drives[0].current == pytest.approx(-0.05)
    assert case.mesh.cell_size == pytest.approx(1e-3)
    assert cli.main(["validate", str(CASES / "strip_drive.yaml"), "--set", "drives[3].current=1 A"]) == 2
    assert "--set drives[3].current" in capsys.readouterr().err


@pytest.mark.parametrize("case_file", sorted(CASES.glob("*.yaml")), ids=lambda p: p.stem)
def test_shipped_cases_validate(case_file):
    """Every shipped case file passes validation."""
    assert load_case(case_file).name == case_file.stem


def test_units_to_si():
    """Quantities convert to SI; bare numbers and wrong dimensions are refused."""
    assert to_si("200 nm", "length") == pytest.approx(2e-7)
    assert to_si("8 ohm/sq", "sheet_resistance") == pytest.approx(8.0)
    assert to_si("6.28 uT", "magnetic_flux_density") == pytest.approx(6.28e-6)
    assert to_si("1 mol/L", "concentration") == pytest.approx(1000.0)
    for bad, kind in [(200, "length"), ("0.2 V", "current"), ("3 parsecs per", "length")]:
        with pytest.raises(UnitError):
            to_si(bad, kind)


def test_resolved_case_round_trips(tmp_path):
    """The resolved case (SI with units, 12 digits) reloads to the same resolved case."""
    from femion.config import dump_case

    case = load_case(CASES / "strip_drive.yaml")
    p = tmp_path / "resolved.yaml"
    p.write_text(dump_case(case))
    again = load_case(p)
    assert dump_case(again) == dump_case(case)
    assert again.layer_z()["oxide"] == pytest.approx(case.layer_z()["oxide"], rel=1e-12)


def _cli(capsys, *argv):
    """Exit status and stderr lines of ``femion *argv``."""
    rc = cli.main(list(argv))
    return rc, capsys.readouterr().err.strip().splitlines()


def _text(tmp_path, text, name="case.yaml"):
    p = tmp_path / name
    p.write_bytes(text if isinstance(text, bytes) else text.encode())
    return str(p)


STRIP_TEXT = (CASES / "strip_drive.yaml").read_text()
BOMB = "\n".join(["quick:", "  a: &a [x, x, x, x, x, x, x, x, x, x]"]
                 + [f"  {c}: &{c} [" + ", ".join([f"*{p}"] * 10) + "]"
                    for p, c in zip("abcdefgh", "bcdefghi", strict=True)])

# (id, case file text, text the one-line error must contain)
BAD_TEXT = [
    ("duplicate-top-key", STRIP_TEXT + "\nname: other\n", "name: duplicate key (lines 9 and 42)"),
    ("duplicate-nested-key",
     STRIP_TEXT.replace("{length: 50 mm, width: 20 mm}", "{length: 50 mm, width: 20 mm, length: 40 mm}"),
     "geometry.plate.length: duplicate key"),
    ("anchor-bomb-under-quick", STRIP_TEXT + "\n" + BOMB + "\n", "quick.f: expands to 1111111 values"),
    ("recursive-alias", STRIP_TEXT + "\nquick: &q {a: *q}\n", "quick.a: a YAML alias used inside its own anchor"),
    ("deep-nesting", STRIP_TEXT + "\ndescription: " + "[" * 500 + "]" * 500 + "\n", "case.yaml: nests deeper than"),
    ("not-utf8", STRIP_TEXT.encode() + "description: caf\xe9\n".encode("latin-1"),
     "case.yaml: not UTF-8 text (byte 0xe9 at line 41)"),
]


@pytest.mark.parametrize("label,text,expected", BAD_TEXT, ids=[b[0] for b in BAD_TEXT])
def test_bad_yaml_rejected_at_load_with_one_line(tmp_path, capsys, label, text, expected):
    """Duplicate keys, alias bombs, deep nesting and non-UTF-8 bytes are refused at load with one line."""
    rc, err = _cli(capsys, "validate", _text(tmp_path, text))
    assert rc == 2 and len(err) == 1 and expected in err[0], err


@pytest.mark.parametrize("item,expected", [
    ("=1", "--set =1: '' is not a key path"),
    ("mesh..cell_size=1 mm", "--set mesh..cell_size=1 mm: 'mesh..cell_size' is not a key path"),
    ("mesh={cell_size: 1 mm, cell_size: 2 mm}", "mesh.cell_size: duplicate key"),
    ("magnetic.external_field=[0 T, 0 T, inf T]", "magnetic.external_field[2]: must be a finite number"),
])
def test_malformed_set_rejected(capsys, item, expected):
    """A --set with an empty or malformed key path, or a bad value, exits 2 with one line."""
    rc, err = _cli(capsys, "validate", str(CASES / "strip_drive.yaml"), "--set", item)
    assert rc == 2 and len(err) == 1 and expected in err[0], err


def test_limits_cells_refuses_and_can_be_raised(tmp_path, capsys):
    """The estimated cell count is refused past limits.cells, naming the estimate; raising the limit admits it."""
    data = copy.deepcopy(BASE)
    data["mesh"]["cell_size"] = "0.05 mm"  # 4e5 plan cells x 10 elements through the stack
    rc, err = _cli(capsys, "validate", _text(tmp_path, yaml.safe_dump(data)))
    assert rc == 2 and len(err) == 1 and "mesh.cell_size" in err[0] and "limits.cells = 2000000" in err[0], err
    data["limits"] = {"cells": 5_000_000}
    assert _cli(capsys, "validate", _text(tmp_path, yaml.safe_dump(data)))[0] == 0


def test_validate_checks_quick_and_variants_like_run(tmp_path, capsys):
    """validate loads what run loads: errors inside quick and variants name their full key; --quick needs a block."""
    sweep = (CASES / "fig5ab_current_sweep.yaml").read_text()
    bad = _text(tmp_path, sweep.replace('I_50mA: {"drives[0].current": 0.05 A}',
                                        'I_50mA: {"drives[0].current": 0.05 V}'))
    for argv in ([bad], [bad, "--variant", "I_50mA"]):
        rc, err = _cli(capsys, "validate", *argv)
        assert rc == 2 and len(err) == 1, err
        assert "variants.I_50mA.drives[0].current: '0.05 V' is not a current" in err[0], err
    bad = _text(tmp_path, sweep.replace("mesh.cell_size: 1 mm", "mesh.cell_size: -1 mm"), "quick.yaml")
    assert _cli(capsys, "validate", bad)[0] == 0  # run without --quick does not load the quick block either
    rc, err = _cli(capsys, "validate", bad, "--quick")
    assert rc == 2 and len(err) == 1 and "quick.mesh.cell_size: must be > 0" in err[0], err
    rc, err = _cli(capsys, "validate", str(CASES / "strip_drive.yaml"), "--quick")
    assert rc == 2 and len(err) == 1 and "--quick: the case has no 'quick' block" in err[0], err


@pytest.mark.parametrize("case,items,expected", [
    ("fig4_model_III", ["transport.model=shell"], "transport.model: 'shell' is the plan-view limit of a 3D case"),
    ("fig5c_two_track", ["transport.model=thin"], "transport.model"),
    ("fig5c_two_track", ["transport.model=shell", "transport.lorentz.bulk=true"],
     "transport.model: 'shell' has no Lorentz terms"),
])
def test_a_shell_model_it_cannot_solve_is_refused_with_one_line(capsys, case, items, expected):
    """transport.model: shell on a 2D section, an unknown model, or with Lorentz terms: exit 2, one line."""
    args = [a for item in items for a in ("--set", item)]
    rc, err = _cli(capsys, "validate", str(CASES / f"{case}.yaml"), *args)
    assert rc == 2 and len(err) == 1 and expected in err[0], err


def test_linear_solver_key_takes_direct_or_iterative(capsys):
    """transport.linear_solver: direct or iterative validate; anything else exits 2 with one line naming the key."""
    case = str(CASES / "fig5c_two_track.yaml")
    assert TransportSettings().linear_solver == "direct"
    assert _cli(capsys, "validate", case, "--set", "transport.linear_solver=iterative")[0] == 0
    rc, err = _cli(capsys, "validate", case, "--set", "transport.linear_solver=lu")
    assert rc == 2 and len(err) == 1 and "transport.linear_solver" in err[0], err
