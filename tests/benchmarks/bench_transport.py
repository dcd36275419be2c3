"""Benchmark of the coupled transport solver (femion.transport.problem) on 2D sections and 3D stacks.

The problem is the driven closed cell of tests/test_transport.py (``closed_cell``) on a real
stack: glass 1.1 mm / bottom_ito 200 nm / oxide 500 nm / electrolyte 50 µm / top_ito 200 nm /
top_glass 1.1 mm. WO3-like oxide (c_max 1.3e4 mol/m³, D_s 1e-14 m²/s, U = 3 V − (RT/F) logit θ,
θ = 0.3 + 0.2 cos(πx/L)), LiClO4 (Li⁺ 2.6e-10, ClO4⁻ 4e-10 m²/s, 1000 mol/m³), Butler–Volmer
i0 = 1 A/m², oxide sheet conductance 0.125 S with electron contacts φ_e = 0.1 V at x = 0 and
0 V at x = L; steps of 1 s, BDF2 (the first step is BDF1).

* 2D: x–z sections (build_section_mesh) of a 50 mm x 20 mm strip, electrolyte in 4 elements;
* 3D: stacks (build_stack_mesh) of a 10 mm x 4 mm plate, electrolyte in 2 elements; a size is
  skipped when the previous one predicts > --max-step seconds per step (x8 per halving).

Columns: case; parent-mesh cells; transport DOFs (sum over the transport fields); mesh time;
setup time (TransportProblem construction incl. form JIT — the FFCx cache makes later runs
faster; each new mesh size compiles anew, the forms embedding h²/σ_max as a float); first step; mean step over all
measured steps;
mean Newton iterations per step; P1 Poisson DOFs on the parent mesh; Poisson solve time
(−Δu = 1, u = 0 on ``bottom``, preonly/lu/mumps like the transport: numeric factorisation + solve,
timed after one warm-up solve, with the matrix re-assembled so MUMPS refactorises as every
Newton iteration does); the same solve reusing the factors (triangular solves only); the ratio
step / Poisson; peak RSS (MB, max over ranks).

``--linear-solver iterative`` solves Newton's linear systems by FGMRES on a field split
(femion/transport/linear.py) instead of MUMPS; the extra line then gives the Krylov iterations
per linear solve (one per Newton iteration). Both print the time spent in the linear solves.

Run:  .venv/bin/python tests/benchmarks/bench_transport.py [--steps 5] [--max-step 60] [--linear-solver iterative]
      .venv/bin/mpiexec -n 2 .venv/bin/python tests/benchmarks/bench_transport.py
Not collected by pytest.
"""

from __future__ import annotations

import argparse
import gc
import resource
import time

import numpy as np

from femion._dolfinx import MPI, PETSc, dolfinx, ufl
from femion.constants import FARADAY, GAS_CONSTANT
from femion.geometry import mesh as geometry
from femion.transport.domain import TransportDomain
from femion.transport.models import ElectrolyteModel, Ion, KineticsModel, OxideModel
from femion.transport.newton import TransportSolveError
from femion.transport.problem import TransportProblem

MM, UM, NM = 1e-3, 1e-6, 1e-9
T = 298.15
RT_F = GAS_CONSTANT * T / FARADAY
T_OX = 500 * NM
DRIVE = 0.1  # V between the electron contacts


def layers(el_elements: int):
    L = geometry.LayerSpec
    return (L("glass", 1.1 * MM), L("bottom_ito", 200 * NM), L("oxide", T_OX),
            L("electrolyte", 50 * UM, elements=el_elements), L("top_ito", 200 * NM), L("top_glass", 1.1 * MM))


def transport_problem(stack, length: float, prefix: str, linear_solver: str = "direct") -> TransportProblem:
    """``closed_cell`` of tests/test_transport.py on a stack mesh (2D section or 3D)."""
    dom = TransportDomain.from_stack(stack)
    oxide = OxideModel(c_max=1.3e4, diffusivity=lambda th, xp: 1e-14,
                       open_circuit_potential=lambda th, xp: 3.0 - RT_F * xp.log(th / (1 - th)),
                       theta_initial=lambda x: 0.3 + 0.2 * np.cos(np.pi * x[0] / length),
                       conductance=0.125, thickness=T_OX)
    el = ElectrolyteModel([Ion("Li", 1, 2.6e-10, 1000.0), Ion("ClO4", -1, 4e-10, 1000.0)], exchanging="Li")
    contacts = [(lambda x: np.isclose(x[0], 0.0, rtol=0, atol=1e-9), DRIVE),
                (lambda x: np.isclose(x[0], length, rtol=0, atol=1e-9), 0.0)]
    return TransportProblem(dom, oxide, el, KineticsModel(exchange_current_density=1.0),
                            electron_contacts=contacts, prefix=prefix, linear_solver=linear_solver)


def poisson_times(stack, prefix: str):
    """(dofs, factorise+solve s, solve-only s) for P1 −Δu = 1, u = 0 on ``bottom``, MUMPS LU."""
    msh = stack.mesh
    comm = msh.comm
    V = dolfinx.fem.functionspace(msh, ("Lagrange", 1))
    u, v = ufl.TrialFunction(V), ufl.TestFunction(V)
    a = dolfinx.fem.form(ufl.inner(ufl.grad(u), ufl.grad(v)) * ufl.dx)
    L = dolfinx.fem.form(dolfinx.fem.Constant(msh, PETSc.ScalarType(1.0)) * v * ufl.dx)
    fdim = msh.topology.dim - 1
    dofs = dolfinx.fem.locate_dofs_topological(V, fdim, stack.facets("bottom"))
    bc = dolfinx.fem.dirichletbc(PETSc.ScalarType(0.0), dofs, V)
    A = dolfinx.fem.petsc.assemble_matrix(a, bcs=[bc])
    A.assemble()
    b = dolfinx.fem.petsc.assemble_vector(L)
    dolfinx.fem.petsc.apply_lifting(b, [a], bcs=[[bc]])
    b.ghostUpdate(addv=PETSc.InsertMode.ADD, mode=PETSc.ScatterMode.REVERSE)
    dolfinx.fem.petsc.set_bc(b, [bc])
    x = A.createVecRight()
    ksp = PETSc.KSP().create(comm)
    ksp.setOptionsPrefix(prefix)
    opts = PETSc.Options()
    for k, val in (("ksp_type", "preonly"), ("pc_type", "lu"), ("pc_factor_mat_solver_type", "mumps")):
        opts[f"{prefix}{k}"] = val
    ksp.setFromOptions()
    ksp.setOperators(A)
    ksp.solve(b, x)  # warm-up: symbolic + numeric factorisation
    assert ksp.getConvergedReason() > 0
    # re-assemble (same pattern, new state) so the timed solve refactorises like a Newton iteration
    A.zeroEntries()
    dolfinx.fem.petsc.assemble_matrix(A, a, bcs=[bc])
    A.assemble()
    comm.barrier()
    t0 = time.perf_counter()
    ksp.solve(b, x)
    t_factor = comm.allreduce(time.perf_counter() - t0, op=MPI.MAX)
    comm.barrier()
    t0 = time.perf_counter()
    ksp.solve(b, x)  # factors reused
    t_solve = comm.allreduce(time.perf_counter() - t0, op=MPI.MAX)
    ndofs = V.dofmap.index_map.size_global
    for k in ("ksp_type", "pc_type", "pc_factor_mat_solver_type"):
        opts.delValue(f"{prefix}{k}")
    ksp.destroy(), A.destroy(), b.destroy(), x.destroy()
    return ndofs, t_factor, t_solve


def rss_mb(comm) -> float:
    return comm.allreduce(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0, op=MPI.MAX)


HEADER = (f"{'case':<14} {'cells':>7} {'dofs':>7} {'mesh s':>7} {'setup s':>8} {'step1 s':>8} {'step s':>8} "
          f"{'newton':>6} {'P dofs':>7} {'poisson s':>9} {'P solve s':>9} {'ratio':>7} {'RSS MB':>7}")


def run_case(comm, label: str, build, spec, length: float, nsteps: int, tag: str, linear_solver: str = "direct"):
    comm.barrier()
    t0 = time.perf_counter()
    stack = build(spec, comm)
    t_mesh = comm.allreduce(time.perf_counter() - t0, op=MPI.MAX)
    tdim = stack.mesh.topology.dim
    ncells = stack.mesh.topology.index_map(tdim).size_global
    comm.barrier()
    t0 = time.perf_counter()
    p = transport_problem(stack, length, prefix=f"bt_{tag}_", linear_solver=linear_solver)
    t_setup = comm.allreduce(time.perf_counter() - t0, op=MPI.MAX)
    ndofs = sum(V.dofmap.index_map.size_global for V in p.spaces.values())
    totals0 = p.totals()
    step_times, its, note = [], [], ""
    for _ in range(nsteps):
        comm.barrier()
        t0 = time.perf_counter()
        try:
            n = p.step(1.0, order=2, dt_prev=1.0)
        except TransportSolveError as exc:
            note = f"step failed: {exc}"
            break
        step_times.append(comm.allreduce(time.perf_counter() - t0, op=MPI.MAX))
        its.append(n)
    totals1 = p.totals()
    li0, li1 = totals0["oxide"] + totals0["Li"], totals1["oxide"] + totals1["Li"]
    drift = abs(li1 - li0) / li0
    current = p.integrate(FARADAY * abs(p.j), "interface")  # net exchange is ~0 in a closed cell
    pdofs, t_pf, t_ps = poisson_times(stack, prefix=f"bp_{tag}_")
    t_step = float(np.mean(step_times)) if step_times else float("nan")
    row = (f"{label:<14} {ncells:>7} {ndofs:>7} {t_mesh:7.2f} {t_setup:8.2f} "
           f"{(step_times[0] if step_times else float('nan')):8.3g} {t_step:8.3g} "
           f"{(np.mean(its) if its else float('nan')):6.1f} {pdofs:>7} {t_pf:9.3g} {t_ps:9.3g} "
           f"{t_step / t_pf:7.1f} {rss_mb(comm):7.0f}")
    extra = f"    Li drift {drift:.1e}, integral |F j| {current:.3e} A{'/m' if tdim == 2 else ''}, Newton its {its}"
    nw = p.newton
    if nw.linear_solves:  # rank 0's time in the linear solves (the rest: assembly, residuals, bounds)
        extra += (f"\n    linear solves {nw.linear_solves}, {nw.linear_seconds / nw.linear_solves:.3g} s each "
                  f"({nw.linear_seconds / max(sum(step_times), 1e-300):.0%} of the step time)")
        if linear_solver == "iterative":
            extra += (f", Krylov its per Newton iteration {nw.krylov_iterations / nw.linear_solves:.1f} "
                      f"({nw.krylov_iterations} in all)")
    # per-rank work (owned transport dofs) and halo (ghost dofs), for a weak-scaling projection
    owned = comm.gather(sum(V.dofmap.index_map.size_local for V in p.spaces.values()), root=0)
    ghosts = comm.gather(sum(V.dofmap.index_map.num_ghosts for V in p.spaces.values()), root=0)
    if comm.rank == 0 and comm.size > 1:
        extra += f"\n    owned dofs per rank {owned}, ghost (halo) dofs per rank {ghosts}"
    if note:
        extra += f"; {note}"
    del p, stack
    gc.collect()
    return row, extra, t_step


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=5, help="time steps per case (default 5)")
    ap.add_argument("--sizes-2d", type=float, nargs="*", default=[2.0, 1.0, 0.5, 0.25], help="mm")
    ap.add_argument("--sizes-3d", type=float, nargs="*", default=[1.0, 0.5, 0.25, 0.125, 0.0625, 0.03125], help="mm")
    ap.add_argument("--max-step", type=float, default=60.0,
                    help="skip a 3D size whose predicted step time (x8 per halving) exceeds this (s)")
    ap.add_argument("--linear-solver", choices=("direct", "iterative"), default="direct",
                    help="Newton's linear solver: MUMPS (direct) or FGMRES on a field split (iterative)")
    args = ap.parse_args()
    comm = MPI.COMM_WORLD
    out = print if comm.rank == 0 else (lambda *a, **k: None)

    out(f"femion transport benchmark: {comm.size} rank(s), {args.steps} steps of 1 s (BDF1 then BDF2), "
        f"dolfinx {dolfinx.__version__}, {args.linear_solver} linear solver")
    out("closed cell: WO3-like oxide 500 nm, LiClO4 50 um, BV i0 = 1 A/m2, G = 0.125 S, 0.1 V across x")
    out("transport dofs = w, phi_e (oxide) + u_Li, psi (electrolyte); Poisson = P1 on the whole parent mesh")

    out("\n2D x-z sections, strip 50 mm (layers: glass 1, bottom_ito 1, oxide 1, electrolyte 4, top_ito 1, "
        "top_glass 1 elements)")
    out(HEADER)
    L2 = 50 * MM
    for h in args.sizes_2d:
        spec = geometry.StackSpec(L2, 20 * MM, layers(4), {}, h * MM)
        row, extra, _ = run_case(comm, f"2D h={h:g}mm", geometry.build_section_mesh, spec, L2, args.steps,
                                 f"s{h:g}".replace(".", "p"), args.linear_solver)
        out(row)
        out(extra)

    out("\n3D stacks, plate 10 mm x 4 mm (electrolyte 2 elements, other layers 1)")
    out(HEADER)
    L3 = 10 * MM
    prev = None  # (h, step time)
    for h in args.sizes_3d:
        if prev is not None:
            predicted = prev[1] * 8.0 ** np.log2(prev[0] / h)
            if predicted > args.max_step:
                out(f"3D h={h:g}mm    skipped: predicted {predicted:.0f} s per step > {args.max_step:g} s")
                continue
        spec = geometry.StackSpec(L3, 4 * MM, layers(2), {}, h * MM)
        row, extra, t_step = run_case(comm, f"3D h={h:g}mm", geometry.build_stack_mesh, spec, L3, args.steps,
                                      f"h{h:g}".replace(".", "p"), args.linear_solver)
        out(row)
        out(extra)
        prev = (h, t_step)
    out("\nsetup includes FFCx/JIT form compilation (1-9 s when cold); with a warm cache (a second run) it is "
        "mostly submesh/space creation (the forms do not depend on the mesh size, so one compilation serves "
        "all sizes of a cell type).")
    out("poisson s = numeric LU factorisation + solve (after one warm-up); P solve s = solve reusing the factors; "
        "ratio = step s / poisson s.")


if __name__ == "__main__":
    main()
