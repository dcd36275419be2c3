"""The heat equation of the layer stack (femion.thermal) against analytic limits, and Joule's source."""

from __future__ import annotations

import numpy as np
import pytest

from femion._dolfinx import MPI, dolfinx, ufl
from femion.thermal import (
    HeatProblem,
    ThermalMaterial,
    joule_heat_flux,
    plate_properties,
    radiative_coefficient,
    stack_properties,
)

GLASS = ThermalMaterial(1.0, 2500.0, 840.0)
ITO = ThermalMaterial(5.0, 7100.0, 340.0)
ELECTROLYTE = ThermalMaterial(0.2, 1250.0, 2000.0)
MM, UM, NM = 1e-3, 1e-6, 1e-9
#: glass 1.1 mm / ITO 200 nm (the source) / electrolyte 100 µm / glass 1.1 mm, bottom to top
STACK = [(GLASS, 1.1 * MM, 4), (ITO, 200 * NM, 1), (ELECTROLYTE, 100 * UM, 2), (GLASS, 1.1 * MM, 4)]


def stack_section(comm, width: float, nx: int, layers=STACK):
    """x–z rectangle [0, width] × the layers' thicknesses, tags 1, 2, ... per layer (bottom up)."""
    nz = sum(n for _, _, n in layers)
    msh = dolfinx.mesh.create_rectangle(comm, [[0, 0], [1, 1]], [nx, nz], dolfinx.mesh.CellType.quadrilateral)
    edges = np.concatenate([[0.0], np.cumsum([t for _, t, _ in layers])])
    levels = np.concatenate([[0.0], np.cumsum([n for _, _, n in layers])]) / nz
    s = msh.geometry.x[:, 1].copy()
    msh.geometry.x[:, 1] = np.interp(s, levels, edges)
    msh.geometry.x[:, 0] *= width
    tdim = 2
    cells, tags = [], []
    for k in range(len(layers)):
        c = dolfinx.mesh.locate_entities(
            msh, tdim, lambda x, k=k: (x[1] >= edges[k] - 1e-12) & (x[1] <= edges[k + 1] + 1e-12))
        cells.append(c)
        tags.append(np.full(c.size, k + 1, dtype=np.int32))
    cells, tags = np.concatenate(cells), np.concatenate(tags)
    cells, first = np.unique(cells, return_index=True)
    ct = dolfinx.mesh.meshtags(msh, tdim, cells, tags[first])
    return msh, ct, edges


def heat(msh, ct, materials, **kw) -> HeatProblem:
    """The heat problem of a stack with ``materials`` {cell tag: ThermalMaterial}."""
    return HeatProblem(msh, *stack_properties(msh, ct, materials), **kw)


def sheet_source(q: float, z0: float, z1: float):
    """s = q/t in the ITO layer z0 < z < z1 (W/m³), 0 elsewhere."""
    return lambda x: np.where((x[1] > z0) & (x[1] < z1), q / (z1 - z0), 0.0)


def value_at(problem: HeatProblem, x: float, z: float) -> float:
    """T at the node nearest (x, z), gathered on all ranks."""
    V = problem.T.function_space
    n = V.dofmap.index_map.size_local
    xz = V.tabulate_dof_coordinates()[:n, :2]
    d = np.hypot(xz[:, 0] - x, xz[:, 1] - z)
    k = int(np.argmin(d)) if n else -1
    best = problem.mesh.comm.allgather((float(d[k]) if n else np.inf, float(problem.T.x.array[k]) if n else 0.0))
    return min(best)[1]


def test_steady_stack_under_a_sheet_source_matches_the_1d_solution(comm):
    """A wide plate (200 mm) heated by q = 400 W/m² in its ITO: at its middle the ITO sits at
    T_∞ + q R₁R₂/(R₁ + R₂), R₁ = 1/h + H_glass/k_glass below, R₂ = 1/h + Σ H/k above (within 0.5 %),
    and the steady plate loses exactly what the source puts in."""
    width, q, h, T_inf = 200 * MM, 400.0, 12.0, 298.15
    msh, ct, z = stack_section(comm, width, 400)
    p = heat(msh, ct, {k + 1: m for k, (m, _, _) in enumerate(STACK)}, h=h, T_ambient=T_inf)
    p.set_source(sheet_source(q, z[1], z[2]))
    p.steady()
    R1 = 1 / h + STACK[0][1] / GLASS.conductivity + STACK[1][1] / 2 / ITO.conductivity
    R2 = 1 / h + STACK[1][1] / 2 / ITO.conductivity + STACK[2][1] / ELECTROLYTE.conductivity \
        + STACK[3][1] / GLASS.conductivity
    expected = q * R1 * R2 / (R1 + R2)
    assert value_at(p, width / 2, 0.5 * (z[1] + z[2])) - T_inf == pytest.approx(expected, rel=5e-3)
    assert p.heat_loss() == pytest.approx(p.heat_input(), rel=1e-7)  # LU round-off at k/h ratios of 1e4
    assert p.heat_input() == pytest.approx(q * width, rel=1e-12)


def test_a_thin_heated_plate_warms_with_its_lumped_time_constant(comm):
    """Biot number hH/k = 0.03: the plate is one lump, T − T_∞ = ΔT_ss (1 − e^{−t/τ}), τ = ρc_p H/(2h),
    ΔT_ss = sH/(2h): at t = τ the mean rise is (1 − 1/e) ΔT_ss within 1 % (backward Euler, Δt = τ/200)."""
    H, h, s = 2.2 * MM, 15.0, 2e5
    layers = [(GLASS, H, 4)]
    width = 400 * MM
    msh, ct, _ = stack_section(comm, width, 100, layers)
    p = heat(msh, ct, {1: GLASS}, h=h, T_ambient=298.15)
    p.set_source(lambda x: np.full(x.shape[1], s))
    tau = GLASS.volumetric_heat_capacity * H / (2 * h)
    for _ in range(200):
        p.step(tau / 200)
    _, mean = p.extremes()
    steady = s * H / (2 * h)
    assert mean == pytest.approx((1 - np.exp(-1)) * steady, rel=1e-2)


def test_energy_is_conserved_step_by_step(comm):
    """Backward Euler: the stored heat grows by Δt (input − loss at the step's end) every step, to 1e-7."""
    msh, ct, z = stack_section(comm, 20 * MM, 40)
    p = heat(msh, ct, {k + 1: m for k, (m, _, _) in enumerate(STACK)}, h=10.0, T_ambient=298.15)
    p.set_source(sheet_source(800.0, z[1], z[2]))
    stored = p.stored_heat()
    for dt in (1.0, 5.0, 20.0):
        p.step(dt)
        now = p.stored_heat()
        assert now - stored == pytest.approx(dt * (p.heat_input() - p.heat_loss()), rel=1e-7)
        stored = now


def test_clamped_faces_draw_heat_and_lower_the_peak(comm):
    """Faces held at T_∞ (the copper clamps at the plate's ends) take heat the faces' h cannot: the
    steady loss through h falls below the input and the peak falls."""
    msh, ct, z = stack_section(comm, 50 * MM, 100)
    mats = {k + 1: m for k, (m, _, _) in enumerate(STACK)}
    free = heat(msh, ct, mats, h=10.0, T_ambient=298.15, prefix="free_")
    msh.topology.create_connectivity(1, 2)
    ends = dolfinx.mesh.locate_entities_boundary(msh, 1, lambda x: np.isclose(x[0], 0) | np.isclose(x[0], 50 * MM))
    clamped = heat(msh, ct, mats, h=10.0, T_ambient=298.15, fixed=ends, prefix="clamped_")
    for p in (free, clamped):
        p.set_source(sheet_source(800.0, z[1], z[2]))
        p.steady()
    assert clamped.extremes()[0] < 0.9 * free.extremes()[0]
    assert clamped.heat_loss() < 0.95 * clamped.heat_input()


def test_the_plate_limit_matches_the_stack(comm):
    """The thin-film limit on the plan (a plate: K = Σkt, C = Σρc_p t, two faces losing 2h, its edges
    hH) beside the resolved stack (section) under the same sheet source: the mean rise after 60 s
    within 1 %, the steady rise within 2 % of the ITO's at the middle (the stack's through-thickness
    drop is of the order of the Biot number) and the plate's energy balance exact."""
    width, q, h = 200 * MM, 400.0, 12.0
    msh, ct, z = stack_section(comm, width, 200)
    stack = heat(msh, ct, {k + 1: m for k, (m, _, _) in enumerate(STACK)}, h=h, T_ambient=298.15, prefix="st_")
    stack.set_source(sheet_source(q, z[1], z[2]))
    line = dolfinx.mesh.create_interval(comm, 200, [0.0, width])
    n = line.topology.index_map(1).size_local + line.topology.index_map(1).num_ghosts
    every = np.arange(n, dtype=np.int32)
    K, C = plate_properties([(t, m, every) for m, t, _ in STACK], n, GLASS)
    H = sum(t for _, t, _ in STACK)
    plate = HeatProblem(line, K, C, h * H, 298.15, face_loss=2 * h, prefix="plate_")
    plate.set_source(lambda x: np.full(x.shape[1], q))
    for p in (stack, plate):
        for _ in range(12):
            p.step(5.0)
    mid = 0.5 * (z[1] + z[2])
    # the mean rise (the plate's T is the stack's thickness average)
    assert plate.extremes()[1] == pytest.approx(stack.extremes()[1], rel=0.01)
    stack.steady()
    plate.steady()
    assert value_at(plate, width / 2, 0.0) - 298.15 == pytest.approx(value_at(stack, width / 2, mid) - 298.15,
                                                                     rel=0.02)
    assert plate.heat_loss() == pytest.approx(plate.heat_input(), rel=1e-9)


def test_radiative_coefficient():
    """h_rad = 4εσT³: 6.01 W/m²K for a black body at 298.15 K, ∝ ε."""
    assert radiative_coefficient(1.0, 298.15) == pytest.approx(6.011, rel=1e-3)
    assert radiative_coefficient(0.9, 298.15) == pytest.approx(0.9 * radiative_coefficient(1.0, 298.15))


def test_joule_heat_flux_integrates_to_i2r(comm):
    """q = G|∇φ_s|² of a solved strip (50 mm × 20 mm, 8 Ω/sq, 0.2 A) integrates to I²R = 0.8 W."""
    import shapely

    from femion.conductor import solve_sheet

    plan = dolfinx.mesh.create_rectangle(comm, [[0, 0], [50 * MM, 20 * MM]], [50, 20], dolfinx.mesh.CellType.triangle)
    cells = np.arange(plan.topology.index_map(2).size_local, dtype=np.int32)
    sol = solve_sheet(plan, cells, name="ito", sheet_conductance=1 / 8, z=0.0,
                      contact_from=shapely.box(-1e-3, 0, 0, 20 * MM),
                      contact_to=shapely.box(50 * MM, 0, 51 * MM, 20 * MM),
                      current=0.2)
    q = joule_heat_flux(sol.potential, 1 / 8)
    total = comm.allreduce(dolfinx.fem.assemble_scalar(dolfinx.fem.form(q * ufl.dx)), op=MPI.SUM)
    assert total == pytest.approx(0.2**2 * 20.0, rel=1e-9)
    assert total == pytest.approx(sol.joule_power, rel=1e-9)


@pytest.mark.mpi
def test_one_and_two_ranks_give_the_same_temperature(comm):
    """The steady stack on all ranks equals the serial one to 1e-8 (peak and mean rise)."""
    if comm.size == 1:
        pytest.skip("compares a run on several ranks with a serial one: run under mpiexec -n 2")
    out = []
    for c in (comm, MPI.COMM_SELF):
        msh, ct, z = stack_section(c, 20 * MM, 40)
        p = heat(msh, ct, {k + 1: m for k, (m, _, _) in enumerate(STACK)}, h=10.0, T_ambient=298.15,
                        prefix=f"ranks{c.size}_")
        p.set_source(sheet_source(800.0, z[1], z[2]))
        p.steady()
        p.step(10.0)
        out.append(p.extremes())
    assert out[0] == pytest.approx(out[1], rel=1e-8)  # LU round-off: 2e-10 measured
