"""Shared fixtures and the test tiers.

Tiers by folder, each a marker set here: ``unit`` (laws, schema, protocol: no DOLFINx solve),
``verification`` (analytic limits, manufactured solutions, conservation), ``system`` (``femion``
commands end to end, results directories, faults), ``paper`` (the paper's cases, also ``slow``).
Tests marked ``mpi`` also run under ``mpiexec -n 2 pytest -m mpi``.
"""

from __future__ import annotations

import gc
import os
import shutil
import tempfile
from pathlib import Path

import pytest

os.environ.setdefault("VTK_DEFAULT_OPENGL_WINDOW", "vtkEGLRenderWindow")

ROOT = Path(__file__).resolve().parent.parent
CASES = ROOT / "cases"


@pytest.fixture(autouse=True)
def _free_meshes():
    """Collect each test's meshes when it ends: every dolfinx mesh holds MPI communicators, and
    MPICH has 2048 per process; a suite that leaves them to the cyclic garbage collector runs out
    and MPI aborts the whole process (exit status 15, MPI_ERR_OTHER) near its end."""
    yield
    gc.collect()


@pytest.fixture(scope="session")
def comm():
    from femion._dolfinx import MPI

    return MPI.COMM_WORLD


@pytest.fixture
def shared_tmp(comm):
    """One temporary directory shared by all MPI ranks (rank 0 makes and removes it)."""
    path = tempfile.mkdtemp(prefix="femion-test-") if comm.rank == 0 else None
    path = Path(comm.bcast(path, root=0))
    yield path
    comm.barrier()
    if comm.rank == 0:
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="module")
def ufl_eval():
    """Evaluate a scalar UFL expression of a Constant as ∫ expr dx over the unit square (area 1)."""
    from femion._dolfinx import MPI, dolfinx, ufl

    msh = dolfinx.mesh.create_unit_square(MPI.COMM_SELF, 1, 1)
    const = dolfinx.fem.Constant(msh, 0.5)

    def compile_(expr_of):
        form = dolfinx.fem.form(expr_of(const) * ufl.dx(domain=msh))

        def value(x):
            const.value = x
            return dolfinx.fem.assemble_scalar(form)

        return value

    return compile_


TIERS = ("unit", "verification", "system", "paper")


def pytest_collection_modifyitems(config, items):
    """Mark every test with the tier of its folder; the paper cases are also ``slow``."""
    for item in items:
        tier = Path(str(item.fspath)).parent.name
        if tier in TIERS:
            item.add_marker(tier)
            if tier == "paper":
                item.add_marker("slow")


def problems(stderr: str) -> list[str]:
    """The lines of a run's stderr that are not its progress log (``femion: stage ...``, INFO)."""
    return [line for line in stderr.strip().splitlines() if line and not line.startswith("femion: stage ")]
