"""`femion validate` checks a case with the schema alone: DOLFINx and PETSc stay unloaded."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import yaml

from ..conftest import CASES, ROOT

HEAVY = ("dolfinx", "petsc4py", "gmsh", "ufl", "basix", "pyvista")

SCRIPT = f"""
import json, sys
from femion.cli import main
status = main(["validate", sys.argv[1]])
print(json.dumps({{"status": status, "loaded": [m for m in {HEAVY!r} if m in sys.modules]}}))
"""


def _validate_in_fresh_process(case):
    """(status and heavy modules loaded, stdout, stderr) of ``femion validate case`` in a new interpreter."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.run([sys.executable, "-c", SCRIPT, str(case)], capture_output=True, text=True, env=env,
                          cwd=ROOT, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1]), proc.stdout, proc.stderr


def test_validate_does_not_load_dolfinx_or_petsc():
    """Validating the paper's Model III case succeeds without importing DOLFINx, PETSc, gmsh or pyvista."""
    result, out, _ = _validate_in_fresh_process(CASES / "fig4_model_III.yaml")
    assert result["status"] == 0 and "ok: case 'fig4_model_III'" in out
    assert result["loaded"] == [], result


def test_validate_rejects_a_bad_shape_without_dolfinx(tmp_path):
    """A self-crossing electrolyte mask is refused (exit 2, one line) by a fresh `femion validate` with
    nothing but the schema loaded: the shape checks need no module that only the mesher imports."""
    data = yaml.safe_load((CASES / "strip_drive.yaml").read_text())
    data["geometry"]["layers"][4]["pattern"] = {"unit": "mm", "polygon": [[5, 5], [20, 15], [20, 5], [5, 15]]}
    case = tmp_path / "bad.yaml"
    case.write_text(yaml.safe_dump(data))
    result, _, err = _validate_in_fresh_process(case)
    assert result["status"] == 2 and result["loaded"] == [], result
    assert err.strip().splitlines() == [
        "femion: error: geometry.layers[4].pattern.include[0]: polygon is not simple (Self-intersection[0.0125 0.01])"]


def test_dolfinx_version_gate():
    """femion runs on DOLFINx 0.11 only: any other version stops with one line saying what to install."""
    from femion._versions import DolfinxVersionError, check_dolfinx_version

    for ok in ("0.11.0", "0.11.2", "0.11.0.dev0"):
        check_dolfinx_version(ok)
    for bad in ("0.10.0", "0.12.0", "1.0.0", "unknown"):
        with pytest.raises(DolfinxVersionError, match=rf"needs DOLFINx 0\.11 \(found {bad}\)"):
            check_dolfinx_version(bad)


def test_an_unsupported_dolfinx_exits_2_with_one_line(tmp_path):
    """A DOLFINx 0.10 on the path (here a stand-in package) is refused as femion loads it: exit 2, one line."""
    (tmp_path / "dolfinx").mkdir()
    (tmp_path / "dolfinx" / "__init__.py").write_text('__version__ = "0.10.0"\n')
    env = {**os.environ, "PYTHONPATH": f"{tmp_path}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    done = subprocess.run([sys.executable, "-m", "femion", "info"], env=env, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [done.stderr.strip()]
    assert "femion needs DOLFINx 0.11 (found 0.10.0)" in done.stderr
