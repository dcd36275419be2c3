"""`femion validate` checks a case with the schema alone: DOLFINx and PETSc stay unloaded."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from ..conftest import CASES, ROOT

HEAVY = ("dolfinx", "petsc4py", "gmsh", "ufl", "basix", "pyvista")

SCRIPT = f"""
import json, sys
from femion.cli import main
status = main(["validate", sys.argv[1]])
print(json.dumps({{"status": status, "loaded": [m for m in {HEAVY!r} if m in sys.modules]}}))
"""


def _validate_in_fresh_process(case):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.run([sys.executable, "-c", SCRIPT, str(case)], capture_output=True, text=True, env=env,
                          cwd=ROOT, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1]), proc.stdout


def test_validate_does_not_load_dolfinx_or_petsc():
    """Validating the paper's Model III case succeeds without importing DOLFINx, PETSc, gmsh or pyvista."""
    result, out = _validate_in_fresh_process(CASES / "fig4_model_III.yaml")
    assert result["status"] == 0 and "ok: case 'fig4_model_III'" in out
    assert result["loaded"] == [], result
