"""Protocol: one-line stages, repeats, rejected protocols, planned times and controls."""

from __future__ import annotations

import copy
import itertools

import pytest
import yaml

import femion.protocol as protocol
from femion import cli
from femion.config import CaseError, parse_stage, validate_case

from ..conftest import CASES

BASE = yaml.safe_load((CASES / "fig2_protocol.yaml").read_text())


def with_protocol(stages, **edits):
    raw = copy.deepcopy(BASE)
    raw["protocol"] = stages
    for key, value in edits.items():
        raw[key] = value
    return validate_case(raw)


@pytest.mark.parametrize("line, expected", [
    ("inject 3 V for 2 min", {"action": "inject", "voltage": "3 V", "for": "2 min"}),
    ("drive 0.2 A through bottom_ito for 5 min, output every 1 min",
     {"action": "drive", "current": "0.2 A", "through": "bottom_ito", "for": "5 min", "output_every": "1 min"}),
    ("drive -20 mA through bottom_ito for 30 s, 3 outputs",
     {"action": "drive", "current": "-20 mA", "through": "bottom_ito", "for": "30 s", "outputs": 3}),
    ("drive 4 V through bottom_ito for 1 min", {"action": "drive", "voltage": "4 V", "through": "bottom_ito",
                                                 "for": "1 min"}),
    ("drive through bottom_ito for 1 min", {"action": "drive", "through": "bottom_ito", "for": "1 min"}),
    ("reverse for 5 min", {"action": "reverse", "for": "5 min"}),
    ("relax for 20 min", {"action": "relax", "for": "20 min"}),
    ("remove electrolyte", {"action": "remove_electrolyte"}),
])
def test_one_line_stages(line, expected):
    assert parse_stage(line) == expected


def test_repeat_expands_and_times_add_up():
    case = with_protocol(["inject 3 V for 1 min",
                          "repeat 3: drive 0.2 A through bottom_ito for 2 min; reverse for 2 min",
                          {"repeat": 1, "stages": ["relax for 10 min"]}])
    plan = protocol.plan_protocol(case, {"bottom_ito": (0.2, 4.0)})
    assert [p.action for p in plan] == ["inject"] + ["drive", "reverse"] * 3 + ["relax"]
    assert plan[-1].t_end == pytest.approx(60 + 6 * 120 + 600)
    assert [p.controls.scale for p in plan[1:7]] == [1, -1] * 3
    assert all(p.output_times[-1] == p.t_end for p in plan)
    assert plan[0].controls.inject_voltage == 3.0 and plan[-1].controls.drive is None


def test_drive_value_scales_the_solved_drive_and_voltage_form():
    case = with_protocol(["drive 50 mA through bottom_ito for 1 min", "drive -2 V through bottom_ito for 1 min",
                          "reverse for 1 min", "remove electrolyte", "relax for 1 min"])
    plan = protocol.plan_protocol(case, {"bottom_ito": (0.2, 4.0)})
    assert plan[0].controls.scale == pytest.approx(0.25) and plan[0].current == pytest.approx(0.05)
    assert plan[1].controls.scale == pytest.approx(-0.5) and plan[1].voltage == pytest.approx(-2.0)
    assert plan[2].controls.scale == pytest.approx(0.5)
    assert plan[3].t_end == plan[3].t_start and not plan[3].controls.exchange
    assert not plan[4].controls.exchange  # the electrolyte stays removed


def test_output_every_lands_on_stage_end():
    case = with_protocol(["drive 0.2 A through bottom_ito for 150 s, output every 1 min"])
    plan = protocol.plan_protocol(case, {"bottom_ito": (0.2, 4.0)})
    assert plan[0].output_times == pytest.approx((60.0, 120.0, 150.0))


def test_ramp_limits_each_jump():
    a = protocol.Controls(drive="bottom_ito", scale=1.0)
    b = protocol.Controls(drive="bottom_ito", scale=-1.0)
    path = protocol.ramp(a, b, {"bottom_ito": 4.0}, 0.25)
    assert len(path) == 32 and path[-1] == b
    scales = [a.scale] + [c.scale for c in path]
    assert max(abs(x - y) * 4.0 for x, y in itertools.pairwise(scales)) <= 0.25 + 1e-12
    inject = protocol.Controls(inject_voltage=3.0)
    path = protocol.ramp(inject, a, {"bottom_ito": 4.0}, 0.5)
    assert path[0].inject_voltage == pytest.approx(2.5) and path[-1] == a


BAD = [
    (["relax for 1 min", "drive fast"], "protocol[1]: cannot read stage 'drive fast'"),
    (["drive 0.2 A through top_glass for 1 min"], "protocol[0].through: 'top_glass' cannot drive the film"),
    (["reverse for 1 min"], "protocol[0]: reverse needs an earlier drive stage"),
    ([{"action": "relax"}], "protocol[0]: a relax stage needs 'for'"),
    (["drive 0.2 A through bottom_ito for 1 minute banana"], "protocol[0].for"),
    ([{"action": "drive", "for": "1 min", "current": "0.2 A", "voltage": "4 V"}], "protocol[0]"),
    ([{"action": "relax", "for": "1 min", "colour": "blue"}], "protocol[0].colour: unknown key"),
    (["repeat 0: relax for 1 min"], "protocol[0]: a repeat is"),
    (["inject 3 A for 1 min"], "protocol[0].voltage"),
    (["drive 0.2 A through bottom_ito for -1 min"], "protocol[0].for: must be > 0"),
]


@pytest.mark.parametrize("stages, expected", BAD)
def test_bad_protocol_one_line_error(tmp_path, capsys, stages, expected):
    raw = copy.deepcopy(BASE)
    raw["protocol"] = stages
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(raw))
    out = tmp_path / "out"
    assert cli.main(["run", str(path), "--out", str(out), "--no-progress"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and expected in err[0], err
    assert not out.exists() and not list(tmp_path.glob("out.partial*"))


def test_inject_needs_top_electrode():
    raw = copy.deepcopy(BASE)
    del raw["transport"]["top_electrode"]
    with pytest.raises(CaseError, match=r"inject needs transport\.top_electrode"):
        validate_case(raw)


ABSURD = [
    ([], {}, "protocol: needs at least one stage"),
    (["remove electrolyte"], {}, "protocol: the stages take no time"),
    ([{"action": "inject", "voltage": "nan V", "for": "1 min"}], {}, "protocol[0].voltage: must be a finite number"),
    (["relax for 1e400 s"], {}, "protocol[0].for: must be a finite number"),
    (["relax for 1e300 s"], {}, "protocol[0].for: the run needs at least 1.67e+298 time steps"),
    (["relax for 5 min, output every 1 ns"], {}, "protocol[0].output_every: the run would write 300000000000 outputs "
                                                 "(allowed: limits.outputs = 10000"),
    (["relax for 1 min", "repeat 5000: relax for 1 s; relax for 1 s"], {},
     "protocol[1]: repeat 5000 makes 10000 stages, more than the protocol may have (allowed: limits.stages = 1000"),
    (["repeat 600: relax for 1 s; relax for 1 s"], {"limits": {"stages": 2000, "outputs": 10}},
     "protocol[0].outputs: the run would write 2400 outputs (allowed: limits.outputs = 10"),
    (["relax for 1 min"], {"geometry.layers[3].material": "SiO2"}, "transport: needs an oxide layer"),
]


@pytest.mark.parametrize("stages, edits, expected", ABSURD)
def test_absurd_protocol_refused_by_validate(tmp_path, capsys, stages, edits, expected):
    """Empty, timeless, non-finite and oversized protocols (and one without an oxide) exit 2 with one line."""
    raw = copy.deepcopy(BASE)
    raw["protocol"] = stages
    raw.pop("quick")
    for key, value in edits.items():
        if key == "geometry.layers[3].material":
            raw["geometry"]["layers"][3]["material"] = value
        else:
            raw[key] = value
    path = tmp_path / "absurd.yaml"
    path.write_text(yaml.safe_dump(raw))
    assert cli.main(["validate", str(path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and expected in err[0], err


def test_limits_stages_can_be_raised(tmp_path):
    """A protocol longer than limits.stages validates once the case raises limits.stages."""
    with pytest.raises(CaseError, match=r"limits.stages = 1000"):
        with_protocol(["repeat 600: relax for 1 s; relax for 1 s"])
    assert len(with_protocol(["repeat 600: relax for 1 s; relax for 1 s"], limits={"stages": 1200}).protocol) == 1200


def test_set_drive_current_that_a_stage_replaces_is_refused(capsys):
    """--set drives[0].current with a protocol stage setting its own current exits 2 naming both keys."""
    case = str(CASES / "fig2_protocol.yaml")
    assert cli.main(["validate", case, "--set", "drives[0].current=0.1 A"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["femion: error: drives[0].current: set by --set, but protocol[1].current sets the current of that "
                   "stage; set protocol[1].current instead"], err
    assert cli.main(["validate", case, "--set", "drives[0].current=0.2 A"]) == 0  # the stage's own value: no conflict


def test_the_registry_is_the_one_list_of_actions():
    """The schema's allowed actions and one-line forms come from the registry, in its order; each
    action plans through its own class."""
    from femion.config.schema import Stage

    assert Stage.model_fields["action"].annotation.__args__ == protocol.ACTION_NAMES
    assert set(protocol.ACTIONS) == {"inject", "drive", "reverse", "relax", "remove_electrolyte"}
    assert protocol.with_metrics("motion") == ("drive", "reverse")
    assert protocol.with_metrics("relaxation") == ("relax", "remove_electrolyte")
    for name, action in protocol.ACTIONS.items():
        assert action.name == name and parse_stage(action.form)["action"] == name


def test_protocol_imports_neither_the_schema_nor_dolfinx():
    import subprocess
    import sys

    code = ("import sys, femion.protocol, femion.protocol.stages; "
            "bad = [m for m in sys.modules if m.startswith(('femion.config', 'dolfinx', 'pydantic'))]; "
            "print(bad); sys.exit(1 if bad else 0)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
