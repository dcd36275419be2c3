"""Benchmark: the stages before the transport (mesh, conductor, B) at 1e4..1e6 plan cells, 1 and 2 ranks.

The strip_drive case (0.2 A along the 20 mm x 50 mm bottom ITO, contacts on the two short edges,
so K = I/W uniform) at cell sizes giving about 1e4, 1e5, 1e6 plan cells. Per size and rank count:
wall time and CPU time of each stage (slowest rank; on a shared machine the CPU time is what the
wall time would be with a core per rank), peak RSS of each stage (largest rank; the peak is reset
before each stage), B's targets per rank, and B's error on the interface against the exact
field of the uniform strip (the strip as one panel): max |B − B_exact| / |B_exact|, and the ratio
of B's wall time to the conductor stage's. Then the 2-rank speedup of each stage. Prints figures only.

Run from the repository root:  python tests/benchmarks/bench_field_scale.py [--cells 1e4 1e5 1e6] [--ranks 1 2]
[--method auto|grid|fmm: B's path (magnetic.method)]
[--structured: the plan mesh a structured grid made by DOLFINx, where gmsh takes too long]
Each (size, ranks) runs in its own `mpiexec -n R python bench_field_scale.py --worker H` process,
with OMP_NUM_THREADS=1 (one core per rank) and the mesh cache off (the mesh stage meshes).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
CASE = ROOT / "cases" / "strip_drive.yaml"
PLATE_AREA = 50e-3 * 20e-3  # m²


def _rss(field: str) -> float:
    """VmRSS or VmHWM (peak) of this process, GB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1e6
    return float("nan")


def _reset_peak() -> None:
    """Reset VmHWM to the current RSS (Linux: 5 > /proc/self/clear_refs)."""
    with contextlib.suppress(OSError):
        Path("/proc/self/clear_refs").write_text("5")


def structured_plan_mesh(spec, comm):
    """The strip_drive plan mesh as a structured quad grid made in parallel by DOLFINx (no gmsh):
    a stand-in where gmsh's all-quad meshing takes too long (every layer of strip_drive but the
    electrolyte covers the plate; the conductor stage needs only the plate's cells and edges)."""
    from femion._dolfinx import dolfinx
    from femion.geometry.mesh import PlanMesh, plan_fragments

    layout = plan_fragments(spec)
    nx, ny = round(spec.length / spec.cell_size), round(spec.width / spec.cell_size)
    msh = dolfinx.mesh.create_rectangle(comm, [[0.0, 0.0], [spec.length, spec.width]], [nx, ny],
                                        dolfinx.mesh.CellType.quadrilateral,
                                        ghost_mode=dolfinx.mesh.GhostMode.shared_facet)
    tdim = msh.topology.dim
    msh.topology.create_connectivity(tdim - 1, tdim)
    imap = msh.topology.index_map(tdim)
    cells = np.arange(imap.size_local + imap.num_ghosts, dtype=np.int32)
    tags = dolfinx.mesh.meshtags(msh, tdim, cells, np.ones_like(cells))
    facets = dolfinx.mesh.meshtags(msh, tdim - 1, np.zeros(0, np.int32), np.zeros(0, np.int32))
    return PlanMesh(msh, tags, facets, {1: frozenset()}, {"fragment_1": 1}, layout)


def worker(cell_size_mm: float, tolerance: float | None, structured: bool, solver: str, method: str) -> None:
    from femion._dolfinx import MPI
    from femion.config import load_case
    from femion.geometry import mesh as geometry
    from femion.geometry import plan
    from femion.magnetic.biot_savart import SheetCurrent, panel_field_exact
    from femion.runner.sheets import magnetic_field, solve_conductors

    comm = MPI.COMM_WORLD
    sets = [f"mesh.cell_size={cell_size_mm} mm", f"mesh.solver={solver}", "limits.cells=1000000000",
            "magnetic.points=[]", f"magnetic.method={method}"]
    if tolerance is not None:
        sets.append(f"magnetic.tolerance={tolerance}")
    case = load_case(CASE, sets)
    out: dict = {"ranks": comm.size}

    def stage(name, work):
        comm.barrier()
        _reset_peak()
        t0, c0 = time.perf_counter(), time.process_time()
        result = work()
        dt, dc = time.perf_counter() - t0, time.process_time() - c0
        out[f"{name}_s"] = comm.allreduce(dt, op=MPI.MAX)
        out[f"{name}_cpu"] = comm.allreduce(dc, op=MPI.MAX)
        out[f"{name}_GB"] = comm.allreduce(_rss("VmHWM"), op=MPI.MAX)
        return result

    build = structured_plan_mesh if structured else geometry.build_plan_mesh
    pm = stage("mesh", lambda: build(plan.stack_spec(case), comm))
    sols = stage("conductor", lambda: solve_conductors(case, pm))
    field = stage("B", lambda: magnetic_field(case, pm, [s.panels() for s in sols]))
    out["cells"] = pm.mesh.topology.index_map(2).size_global
    out["targets"] = field.n_targets
    n_owned = field.B.function_space.dofmap.index_map.size_local
    out["targets_per_rank"] = comm.allgather(int(n_owned))
    # error against the exact field of the uniform strip (one panel at the sheet's height)
    sol = sols[0]
    L, W = case.geometry.plate.length, case.geometry.plate.width
    whole = SheetCurrent(np.array([[[0, 0], [L, 0], [L, W], [0, W]]]), np.array([[sol.current / W, 0.0]]), sol.z)
    xy = field.B.function_space.tabulate_dof_coordinates()[:n_owned, :2]
    x = np.c_[xy, np.full(n_owned, field.interface.z)]
    exact = panel_field_exact(whole, x)
    B = field.B.x.array[: 3 * n_owned].reshape(-1, 3)
    err = np.linalg.norm(B - exact, axis=1) / np.linalg.norm(exact, axis=1)
    out["B_error"] = comm.allreduce(float(err.max()) if err.size else 0.0, op=MPI.MAX)
    if comm.rank == 0:
        print("RESULT " + json.dumps(out), flush=True)


def run(cell_size_mm: float, ranks: int, tolerance: float | None, structured: bool, solver: str, method: str) -> dict:
    mpiexec = Path(sys.executable).with_name("mpiexec")
    cmd = [str(mpiexec), "-n", str(ranks), sys.executable, __file__, "--worker", str(cell_size_mm), "--solver", solver,
           "--method", method]
    if structured:
        cmd.append("--structured")
    if tolerance is not None:
        cmd += ["--tolerance", str(tolerance)]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "FEMION_MESH_CACHE": "off",
           "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT)
    for line in proc.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[7:])
    raise RuntimeError(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stderr[-2000:]}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--cells", type=float, nargs="+", default=[1e4, 1e5, 1e6], help="plan cells (about)")
    ap.add_argument("--ranks", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--tolerance", type=float, default=None, help="magnetic.tolerance (default: the case's)")
    ap.add_argument("--structured", action="store_true",
                    help="plan mesh: a DOLFINx structured quad grid instead of gmsh (see structured_plan_mesh)")
    ap.add_argument("--solver", choices=["direct", "iterative"], default="direct",
                    help="conductor solver (mesh.solver): MUMPS or CG+GAMG")
    ap.add_argument("--method", choices=["auto", "grid", "fmm"], default="auto", help="magnetic.method")
    ap.add_argument("--worker", type=float, default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker is not None:
        worker(args.worker, args.tolerance, args.structured, args.solver, args.method)
        return
    stages = ("mesh", "conductor", "B")
    print(f"{'cells':>8} {'ranks':>5} {'targets/rank':>15} "
          + " ".join(f"{s + ' s':>11} {'cpu s':>7} {'GB':>5}" for s in stages) + f" {'B error':>9} {'B/cond.':>7}",
          flush=True)
    for n in args.cells:
        h_mm = 1e3 * float(np.sqrt(PLATE_AREA / n))
        res = {}
        for r in args.ranks:
            res[r] = o = run(round(h_mm, 4), r, args.tolerance, args.structured, args.solver, args.method)
            per = "/".join(str(t) for t in o["targets_per_rank"])
            print(f"{o['cells']:8d} {r:5d} {per:>15} "
                  + " ".join(f"{o[s + '_s']:11.2f} {o[s + '_cpu']:7.2f} {o[s + '_GB']:5.2f}" for s in stages)
                  + f" {o['B_error']:9.2e} {o['B_s'] / o['conductor_s']:7.2f}", flush=True)
        if 1 in res and 2 in res:
            print(f"{'':8} {'':5} {'2-rank speedup':>15} "
                  + " ".join(f"{res[1][s + '_s'] / res[2][s + '_s']:11.2f} "
                             f"{res[1][s + '_cpu'] / res[2][s + '_cpu']:7.2f} {'':5}" for s in stages), flush=True)


if __name__ == "__main__":
    main()
