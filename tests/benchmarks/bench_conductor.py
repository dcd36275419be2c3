"""Benchmark: plan mesh, conductor solve and B on the interface for growing strip meshes.

Prints, per cell size: plan cells, DOFs, mesh time, conductor solve time (direct and CG+GAMG),
B evaluation time and number of interface points, and the error of B at the plate centre
against the thin-strip formula. Run: `python tests/benchmarks/bench_conductor.py`
(or under `mpiexec -n 2`). Not collected by pytest.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
from scipy.constants import mu_0

from femion._dolfinx import MPI
from femion.config import load_case
from femion.geometry import mesh as geometry
from femion.geometry import plan
from femion.runner.sheets import interface_field, interface_of, solve_conductors

CASE = Path(__file__).resolve().parents[2] / "cases" / "strip_drive.yaml"


def main(sizes=("1 mm", "0.5 mm", "0.25 mm", "0.1 mm")):
    comm = MPI.COMM_WORLD
    if comm.rank == 0:
        print(f"strip 50 x 20 mm, 0.2 A, {comm.size} rank(s)")
        print(f"{'cell':>8} {'cells':>8} {'dofs':>8} {'mesh s':>7} {'direct s':>8} {'gamg s':>7} "
              f"{'R ohm':>10} {'B pts':>8} {'B s':>7} {'B err':>9}")
    for h in sizes:
        case = load_case(CASE, [f"mesh.cell_size={h}"])
        t0 = time.perf_counter()
        pm = geometry.build_plan_mesh(plan.stack_spec(case), comm)
        t_mesh = time.perf_counter() - t0
        times = {}
        for solver in ("direct", "iterative"):
            c = load_case(CASE, [f"mesh.cell_size={h}", f"mesh.solver={solver}"])
            comm.barrier()
            t0 = time.perf_counter()
            (sol,) = solve_conductors(c, pm)
            times[solver] = time.perf_counter() - t0
        sheets = [sol.panels()]
        itf = interface_of(case)
        comm.barrier()
        t0 = time.perf_counter()
        _, _, npts = interface_field(case, pm, sheets, itf)
        t_b = time.perf_counter() - t0
        from femion.magnetic.biot_savart import magnetic_flux_density

        z = itf.z - sol.z
        B = magnetic_flux_density(sheets, np.array([[0.025, 0.01, itf.z]]))
        exact = mu_0 * 0.2 / (2 * 0.02) * (2 / np.pi) * np.arctan(0.02 / (2 * z))
        err = abs(abs(B[0, 1]) - exact) / exact
        ndofs = sol.potential.function_space.dofmap.index_map.size_global
        ncells = pm.mesh.topology.index_map(2).size_global
        if comm.rank == 0:
            print(f"{h:>8} {ncells:>8} {ndofs:>8} {t_mesh:7.2f} {times['direct']:8.3f} {times['iterative']:7.3f} "
                  f"{sol.resistance:10.6f} {npts:>8} {t_b:7.2f} {err:9.2e}")


if __name__ == "__main__":
    main()
