"""The one place that imports DOLFINx.

The PyPI wheel ``dolfinx-solver-real`` vendors MPI/PETSc and must be
initialised (``import dolfinx_solver``) before ``dolfinx`` or ``petsc4py``
are imported. conda-forge builds and the official FEniCS containers have no
such package, and need nothing. Every femion module that needs DOLFINx or
PETSc imports them from here; MPI alone, without DOLFINx, comes from :mod:`femion._mpi`.
"""

from __future__ import annotations

import os
import time
import warnings
from pathlib import Path

# femion._mpi first: it initialises the wheel (import dolfinx_solver) when that is installed
# isort: off
from femion._mpi import MPI, WHEEL
from femion._versions import DolfinxVersionError, check_dolfinx_version
import dolfinx
check_dolfinx_version(dolfinx.__version__)  # before its modules: another version's may not even load
import dolfinx.fem  # noqa: E402
import dolfinx.fem.petsc  # noqa: E402
import dolfinx.io  # noqa: E402
import dolfinx.jit  # noqa: E402
import dolfinx.mesh  # noqa: E402
import ufl  # noqa: E402
from petsc4py import PETSc  # noqa: E402
# isort: on

#: FFCx JIT wait (s) for another process compiling the same form, unless $FEMION_JIT_TIMEOUT says
JIT_TIMEOUT = 600
#: age (s) after which a ``<module>.c`` without ``<module>.c.cached`` is a killed compile's leftover
STALE_COMPILE_S = 30 * 60

__all__ = ["MPI", "WHEEL", "DolfinxVersionError", "PETSc", "check_dolfinx_version", "dolfinx", "geometry_dofmap",
           "ufl"]


def geometry_dofmap(msh):
    """(num_cells, nodes_per_cell) geometry dofmap; ``dofmaps[0]`` from 0.11, ``dofmap`` before."""
    geom = msh.geometry
    return geom.dofmaps[0] if hasattr(type(geom), "dofmaps") else geom.dofmap


def jit_timeout() -> int:
    """The JIT wait: $FEMION_JIT_TIMEOUT (s) if set to a positive number, else JIT_TIMEOUT."""
    value = os.environ.get("FEMION_JIT_TIMEOUT")
    if value is None:
        return JIT_TIMEOUT
    try:
        timeout = int(float(value))
        if timeout > 0:
            return timeout
    except ValueError:
        pass
    warnings.warn(f"FEMION_JIT_TIMEOUT={value!r} is not a positive number of seconds; using {JIT_TIMEOUT}",
                  stacklevel=2)
    return JIT_TIMEOUT


def remove_stale_compiles(cache_dir: Path, age: float = STALE_COMPILE_S) -> list[Path]:
    """Rename each ``*.c`` in ``cache_dir`` that has no ``.c.cached`` and is older than ``age`` s to
    ``.c.failed``; return the renamed files.

    FFCx creates ``<module>.c`` to claim a compile and ``<module>.c.cached`` when it is done; every
    other process finding the ``.c`` waits for ``.c.cached``. A process killed in between leaves
    the ``.c`` behind and every later run times out on it. FFCx itself renames the file to
    ``.c.failed`` when a compile fails; we do the same for compiles that cannot still be running
    (they take seconds). Concurrent sweeps are harmless: whoever renames second finds no file.
    """
    renamed = []
    now = time.time()
    try:
        candidates = list(Path(cache_dir).glob("*.c"))
    except OSError:  # no cache yet, or unreadable: nothing to clean
        return renamed
    for c_file in candidates:
        try:
            if c_file.with_suffix(".c.cached").exists() or now - c_file.stat().st_mtime < age:
                continue
            os.replace(c_file, c_file.with_suffix(".c.failed"))
            renamed.append(c_file)
        except FileNotFoundError:  # finished, or renamed by another process meanwhile
            pass
    return renamed


def _configure_jit() -> None:
    """A JIT wait long enough for concurrent runs, and no wait on a killed compile's leftovers.

    Several processes starting on a cold cache compile the same forms: FFCx lets one compile and
    the others wait, by default 10 s, less than a compile takes on a loaded machine ("JIT
    compilation timed out"). DOLFINx reads DOLFINX_DEFAULT_JIT_OPTIONS on every compile, so the
    default set here applies to every form; a user's dolfinx_jit_options.json still overrides it.
    Only rank 0 sweeps the cache: the other ranks never compile (DOLFINx compiles on rank 0 first).
    """
    try:
        _, doc = dolfinx.jit.DOLFINX_DEFAULT_JIT_OPTIONS["timeout"]
        dolfinx.jit.DOLFINX_DEFAULT_JIT_OPTIONS["timeout"] = (jit_timeout(), doc)
    except (AttributeError, KeyError, TypeError, ValueError):  # pragma: no cover - another DOLFINx layout
        pass
    if MPI.COMM_WORLD.rank == 0:
        try:
            cache_dir = dolfinx.jit.get_options()["cache_dir"]
        except Exception:  # pragma: no cover - unreadable user JIT options: DOLFINx will say so
            return
        remove_stale_compiles(cache_dir)


_configure_jit()
