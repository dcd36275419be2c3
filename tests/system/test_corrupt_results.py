"""Damaged results directories: ``femion report``/``femion plot`` exit 2 with one line naming the
file, and ``open_result``/``probe`` raise OutputError naming it (no traceback, no silent report).

One small transport run (x–z section, 2 mm cells, 20 s) is made once and copied for each damage.
"""

from __future__ import annotations

import json
import shutil

import pytest

from femion import cli
from femion.results import OutputError
from femion.results.reader import open_result

from ..conftest import CASES


@pytest.fixture(scope="module")
def result(tmp_path_factory, comm):
    if comm.size > 1:
        pytest.skip("serial: the damaged copies are read on one rank")
    out = tmp_path_factory.mktemp("corrupt") / "strip"
    assert cli.main(["run", str(CASES / "strip_transport.yaml"), "--out", str(out), "--no-progress",
                     "--set", "mesh.cell_size=2 mm", "--set", "transport.duration=20 s",
                     "--set", "transport.outputs=2", "--set", "output.figures=false"]) == 0
    return out


def _truncate(file, keep: float = 0.5):
    data = file.read_bytes()
    file.write_bytes(data[: int(len(data) * keep)])
    return file


def _summary(path, edit):
    file = path / "summary.json"
    file.write_text(json.dumps(edit(json.loads(file.read_text()))))
    return file


def _drop(*keys):
    return lambda s: {k: v for k, v in s.items() if k not in keys}


def _not_a_directory(path):
    shutil.rmtree(path)
    path.write_text("not a result\n")
    return path


def _variants_parent(path, entry):
    """``path`` made a parent of one variant ``a`` (the run), with summary ``entry``."""
    run = path.with_name("run")
    path.rename(run)
    path.mkdir()
    run.rename(path / "a")
    (path / "summary.json").write_text(json.dumps(entry))
    return path


# damage: (make it -> the file the message must name, entry points that must fail[, words the message has])
# "open": open_result raises; "probe <field>": open_result works, that probe raises
ALL = ("report", "plot", "open")
DAMAGE = {
    "truncated summary.json": (lambda p: _truncate(p / "summary.json"), ALL),
    "empty-object summary.json": (lambda p: _summary(p, lambda s: {}), ALL),
    "summary.json without plate_m, times_s": (lambda p: _summary(p, _drop("plate_m", "times_s")), ALL),
    "summary.json with a bad transport block": (lambda p: _summary(p, lambda s: {**s, "transport": {}}), ALL),
    "summary.json a list": (lambda p: _summary(p, lambda s: [s]), ALL),
    "truncated theta.vtkhdf": (lambda p: _truncate(p / "fields" / "theta.vtkhdf"),
                               ("report", "plot", "probe theta")),
    "truncated phi_s_bottom_ito.vtkhdf": (lambda p: _truncate(p / "fields" / "phi_s_bottom_ito.vtkhdf"),
                                          ("plot", "probe phi_s")),
    "empty B_interface.vtkhdf": (lambda p: _truncate(p / "fields" / "B_interface.vtkhdf", 0.0), ("plot",)),
    "deleted sheets.npz": (lambda p: (p / "sheets.npz").unlink() or p / "sheets.npz", ALL),
    "truncated sheets.npz": (lambda p: _truncate(p / "sheets.npz"), ("probe B",)),
    "not a directory": (_not_a_directory, ALL, "not a directory"),
    "variants summary with variants not a list": (
        lambda p: _variants_parent(p, {"case": "strip_transport", "variants": "a"}) / "summary.json", ALL),
    "variant with a truncated B_interface.vtkhdf": (
        lambda p: _truncate(_variants_parent(p, {"case": "strip_transport", "variants": ["a"]})
                            / "a" / "fields" / "B_interface.vtkhdf"), ("plot",)),
}


def _probe(res, field):
    s = res.summary
    z_oxide = sum(s["layer_z_m"]["oxide"]) / 2
    if field == "B":
        return res.probe("B", [[0.025, 0.01, 1.10073e-3]])
    if field == "phi_s":
        return res.probe("phi_s", [[0.0125, 0.01, 1.1001e-3]])
    return res.probe(field, [[0.025, 0.01, z_oxide]], time=res.times[-1])


@pytest.mark.parametrize("damage", list(DAMAGE))
def test_damaged_result(result, tmp_path, capfd, damage):
    make, fails, *words = DAMAGE[damage]
    path = tmp_path / "strip"
    shutil.copytree(result, path)
    name = str(make(path))
    capfd.readouterr()

    def one_line(msg: str) -> None:
        assert msg.startswith(f"{name}:") and "\n" not in msg and all(w in msg for w in words), msg

    # plot is left out where it should work: drawing an intact run takes 10 s
    for command in [c for c in ("report", "plot") if c in fails or c == "report"]:
        rc = cli.main([command, str(path)])
        err = capfd.readouterr().err
        if command in fails:
            assert rc == 2, f"{command}: {err}"
            assert err.startswith("femion: error: ") and err.count("\n") == 1, f"{command}: {err}"
            one_line(err.removeprefix("femion: error: ").rstrip("\n"))
        else:  # the damage is in a file this command does not read
            assert rc == 0, f"{command}: {err}"

    if "open" in fails:
        with pytest.raises(OutputError) as exc:
            open_result(path)
        one_line(str(exc.value))
        return
    res = open_result(path)
    for field in [f.split()[1] for f in fails if f.startswith("probe")]:
        with pytest.raises(OutputError) as exc:
            _probe(res, field)
        one_line(str(exc.value))
        assert capfd.readouterr().err == ""  # and no VTK/HDF5 error dump


def test_intact_copy_reads(result, tmp_path):
    """The checks pass an intact result: every probe the damage tests use works."""
    path = tmp_path / "strip"
    shutil.copytree(result, path)
    res = open_result(path)
    for field in ("B", "phi_s", "theta", "c_Li"):
        if field == "c_Li":
            z = sum(res.summary["layer_z_m"]["electrolyte"]) / 2
            assert res.probe("c_Li", [[0.025, 0.01, z]], time=res.times[-1]).shape == (1,)
        else:
            assert len(_probe(res, field)) == 1
