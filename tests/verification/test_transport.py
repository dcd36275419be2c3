"""Coupled transport: manufactured solutions, conservation, parallel agreement, analytic limits."""

from __future__ import annotations

import numpy as np
import pytest

from femion._dolfinx import MPI, dolfinx, ufl
from femion.constants import FARADAY, VACUUM_PERMITTIVITY
from femion.constants import GAS_CONSTANT as GAS
from femion.laws.kinetics import reaction_rates, ufl_math
from femion.transport.domain import TransportDomain
from femion.transport.models import ElectrolyteModel, Ion, KineticsModel, LorentzModel, OxideModel, TopElectrode
from femion.transport.problem import TransportProblem
from femion.transport.shell import ShellDomain
from femion.transport.stepping import StepControl, StepFailure, Stepper

from ..conftest import CASES

T = 298.15
RT_F = GAS * T / FARADAY


def section(comm, nx, n_ox, n_el, length=1.0, t_ox=1.0, h_el=1.0, cell=dolfinx.mesh.CellType.quadrilateral,
            top=False):
    """x–z section: oxide z in [0, t_ox], electrolyte above up to t_ox + h_el, nx x (n_ox + n_el) cells."""
    msh = dolfinx.mesh.create_rectangle(comm, [[0, 0], [1, 1]], [nx, n_ox + n_el], cell,
                                        ghost_mode=dolfinx.mesh.GhostMode.shared_facet)
    y = msh.geometry.x[:, 1].copy()
    split = n_ox / (n_ox + n_el)
    msh.geometry.x[:, 0] *= length
    msh.geometry.x[:, 1] = np.where(y <= split + 1e-12, y / split * t_ox, t_ox + (y - split) / (1 - split) * h_el)
    tdim = 2
    ox = dolfinx.mesh.locate_entities(msh, tdim, lambda x: x[1] <= t_ox * (1 + 1e-9))
    el = dolfinx.mesh.locate_entities(msh, tdim, lambda x: x[1] >= t_ox * (1 - 1e-9))
    msh.topology.create_connectivity(tdim - 1, tdim)
    gam = dolfinx.mesh.locate_entities(msh, tdim - 1, lambda x: np.isclose(x[1], t_ox, rtol=0, atol=1e-9 * t_ox))
    top_facets = None
    if top:
        top_facets = dolfinx.mesh.locate_entities_boundary(msh, tdim - 1, lambda x: np.isclose(x[1], t_ox + h_el))
    return TransportDomain(msh, ox, el, gam, top_facets)


def ideal_U(theta, xp, U0=0.0):
    """U = U0 − (RT/F) ln(θ/(1−θ))."""
    return U0 - RT_F * xp.log(theta / (1 - theta))


def binary(D_plus=1.0, D_minus=1.5, c=1.0):
    return ElectrolyteModel([Ion("Li", 1, D_plus, c), Ion("ClO4", -1, D_minus, c)], exchanging="Li")


def l2(problem, expr, where):
    return np.sqrt(problem.integrate(ufl.inner(expr, expr), where))


def rates(errors):
    e = np.asarray(errors)
    return np.log2(e[:-1] / e[1:])


# --------------------------------------------------------------- manufactured solutions


def _boundary_except_gamma(t_ox, top):
    def locate(x):
        return np.isclose(x[0], 0.0) | np.isclose(x[0], 1.0) | np.isclose(x[1], 0.0) | np.isclose(x[1], top)
    return locate


def run_mms(comm, n, exact, *, exchange: float, dt=0.1):
    """One BDF1 step to t = dt of a problem whose exact solution is linear in time (so exact in time)."""
    dom = section(comm, n, n, n)
    xs = ufl.SpatialCoordinate(dom.mesh)
    t_end = dolfinx.fem.Constant(dom.mesh, dt)
    oxide = OxideModel(c_max=1.0, diffusivity=lambda th, xp: 1.0 - 0.5 * th, open_circuit_potential=ideal_U,
                       theta_initial=lambda x: exact["theta_np"](x, 0.0), conductance=1.0, thickness=1.0,
                       vertical_conductivity=1.0)
    el = binary()
    kin = KineticsModel(exchange_current_density=exchange * FARADAY)
    logit = lambda th: np.log(th / (1 - th))  # noqa: E731
    dirichlet = {
        "w": (lambda x: (x[1] <= 1 + 1e-9) & (np.isclose(x[0], 0) | np.isclose(x[0], 1) | np.isclose(x[1], 0)),
              lambda x, t: logit(exact["theta_np"](x, t))),
        "phi_e": (lambda x: (x[1] <= 1 + 1e-9) & (np.isclose(x[0], 0) | np.isclose(x[0], 1) | np.isclose(x[1], 0)),
                  lambda x, t: exact["phi_np"](x, t)),
        "u_Li": (lambda x: (x[1] >= 1 - 1e-9) & (np.isclose(x[0], 0) | np.isclose(x[0], 1) | np.isclose(x[1], 2)),
                 lambda x, t: np.log(exact["c_np"](x, t))),
        "psi": (lambda x: (x[1] >= 1 - 1e-9) & (np.isclose(x[0], 0) | np.isclose(x[0], 1) | np.isclose(x[1], 2)),
                lambda x, t: exact["psi_np"](x, t)),
    }

    def sources(x, t):
        th, c, psi, phi = (exact[k](x, t) for k in ("theta", "c", "psi", "phi"))
        dth, dc = exact["dtheta"](x), exact["dc"](x)
        D = 1.0 - 0.5 * th
        N_ox = -D * ufl.grad(th)
        N_p = -1.0 * (ufl.grad(c) + c * ufl.grad(psi))
        N_m = -1.5 * (ufl.grad(c) - c * ufl.grad(psi))
        n = ufl.FacetNormal(dom.mesh)("+")  # out of the oxide
        f_RT = 1.0 / RT_F
        eta = f_RT * (phi - ideal_U(th, ufl_math())) - psi
        # the laws the solver uses, evaluated on the exact fields (c_ref: the Li of binary())
        r_in, r_out = reaction_rates("butler_volmer", eta, th, c, theta_ref=0.5, xp=ufl_math(), alpha_a=0.5,
                                     alpha_c=0.5)
        j = exchange * (r_in - r_out)
        return {
            "oxide": dth + ufl.div(N_ox),
            "Li": dc + ufl.div(N_p),
            "charge": ufl.div(N_p - N_m),
            "electron": -ufl.div(ufl.grad(phi)),
            "interface_oxide": -ufl.dot(N_ox, n) - j,
            "interface_Li": j + ufl.dot(N_p, n),
            "interface_charge": j + ufl.dot(N_p - N_m, n),
            "interface_electron": ufl.dot(ufl.grad(phi), n) - FARADAY * j,
        }

    prob = TransportProblem(dom, oxide, el, kin, sources=sources, dirichlet=dirichlet,
                            electrolyte_initial={"Li": lambda x: exact["c_np"](x, 0.0)})
    prob.u["psi"].interpolate(lambda x: exact["psi_np"](x, 0.0))
    prob.u["phi_e"].interpolate(lambda x: exact["phi_np"](x, 0.0))
    prob.step(dt, order=1)
    th_h = prob.theta_expr(prob.u["w"])
    c_h = prob.concentration_exprs(prob.u)["Li"]
    errs = {}
    for name, uh, ue, where in (("theta", th_h, exact["theta"](xs, t_end), "oxide"),
                                ("c", c_h, exact["c"](xs, t_end), "electrolyte"),
                                ("psi", prob.u["psi"], exact["psi"](xs, t_end), "electrolyte"),
                                ("phi", prob.u["phi_e"], exact["phi"](xs, t_end), "oxide")):
        errs[name] = (l2(prob, uh - ue, where), l2(prob, ufl.grad(uh - ue), where))
    return errs


S, C = ufl.sin, ufl.cos
PI = np.pi
EXACT = {
    "theta": lambda x, t: 0.5 + 0.2 * (1 + t) * S(PI * x[0]) * C(PI * x[1] / 2),
    "theta_np": lambda x, t: 0.5 + 0.2 * (1 + t) * np.sin(PI * x[0]) * np.cos(PI * x[1] / 2),
    "dtheta": lambda x: 0.2 * S(PI * x[0]) * C(PI * x[1] / 2),
    "c": lambda x, t: 1.0 + 0.3 * (1 + t) * C(PI * x[0]) * S(PI * x[1] / 2),
    "c_np": lambda x, t: 1.0 + 0.3 * (1 + t) * np.cos(PI * x[0]) * np.sin(PI * x[1] / 2),
    "dc": lambda x: 0.3 * C(PI * x[0]) * S(PI * x[1] / 2),
    "psi": lambda x, t: 0.5 * C(PI * x[0]) * (x[1] - 1.0) + 0.2,
    "psi_np": lambda x, t: 0.5 * np.cos(PI * x[0]) * (x[1] - 1.0) + 0.2,
    "phi": lambda x, t: 0.01 * S(PI * x[0]) * (1 + x[1]),
    "phi_np": lambda x, t: 0.01 * np.sin(PI * x[0]) * (1 + x[1]),
}


@pytest.mark.parametrize("exchange", [0.0, 1.0], ids=["uncoupled", "butler_volmer"])
def test_manufactured_solution_convergence(comm, exchange):
    """P1 converges at L2 order ≈ 2 and H1 order ≈ 1 for θ (oxide diffusion), c and ψ (Nernst–Planck
    with migration) and φ_e, uncoupled and coupled across the interface by Butler–Volmer."""
    results = [run_mms(comm, n, EXACT, exchange=exchange) for n in (4, 8, 16)]
    for name in ("theta", "c", "psi", "phi"):
        l2e = [r[name][0] for r in results]
        h1e = [r[name][1] for r in results]
        r2, r1 = rates(l2e)[-1], rates(h1e)[-1]
        assert r2 > 1.85, (name, l2e, rates(l2e))
        assert 0.9 < r1 < 1.3, (name, h1e, rates(h1e))


# --------------------------------------------------------------- physical checks

WO3_LIKE = {"c_max": 1.3e4, "thickness": 0.5e-6}


def plan_strip(comm, nx, length, t_ox, h_el):
    """The shell of :func:`section`: a plan strip [0, length] x [0, length/nx] of nx quads, oxide and
    electrolyte (thicknesses t_ox, h_el) over all of it."""
    msh = dolfinx.mesh.create_rectangle(comm, [[0, 0], [length, length / nx]], [nx, 1],
                                        dolfinx.mesh.CellType.quadrilateral)
    imap = msh.topology.index_map(2)
    cells = np.arange(imap.size_local + imap.num_ghosts, dtype=np.int32)
    return ShellDomain(msh, cells, cells, None, t_ox, h_el)


def box_stack(comm, nx, ny, n_ox, n_el, length, width, t_ox, h_el):
    """The 3D stack of :func:`section`: a [0, length] x [0, width] plate of nx x ny hexahedra, oxide
    z in [0, t_ox] (n_ox layers), electrolyte above up to t_ox + h_el (n_el layers)."""
    msh = dolfinx.mesh.create_box(comm, [[0, 0, 0], [1, 1, 1]], [nx, ny, n_ox + n_el],
                                  dolfinx.mesh.CellType.hexahedron, ghost_mode=dolfinx.mesh.GhostMode.shared_facet)
    z = msh.geometry.x[:, 2].copy()
    split = n_ox / (n_ox + n_el)
    msh.geometry.x[:, 0] *= length
    msh.geometry.x[:, 1] *= width
    msh.geometry.x[:, 2] = np.where(z <= split + 1e-12, z / split * t_ox, t_ox + (z - split) / (1 - split) * h_el)
    ox = dolfinx.mesh.locate_entities(msh, 3, lambda x: x[2] <= t_ox * (1 + 1e-9))
    el = dolfinx.mesh.locate_entities(msh, 3, lambda x: x[2] >= t_ox * (1 - 1e-9))
    msh.topology.create_connectivity(2, 3)
    gam = dolfinx.mesh.locate_entities(msh, 2, lambda x: np.isclose(x[2], t_ox, rtol=0, atol=1e-9 * t_ox))
    return TransportDomain(msh, ox, el, gam, None)


def closed_cell(comm, nx=20, drive=0.1, i0=1.0, order=2, shell=False, box=False, linear_solver="direct"):
    """A 1 mm x (0.5 µm oxide + 20 µm LiClO4) section, θ varying along x, a 0.1 V drive along the
    conductor; ``shell``: its thin-film limit on a plan strip one cell wide; ``box``: a 3D stack
    of it, 0.3 mm wide in 3 cells; ``linear_solver``: Newton's (direct or iterative)."""
    L, tox, hel = 1e-3, WO3_LIKE["thickness"], 20e-6
    if shell:
        dom = plan_strip(comm, nx, L, tox, hel)
    elif box:
        dom = box_stack(comm, nx, 3, 1, 2, L, 0.3e-3, tox, hel)
    else:
        dom = section(comm, nx, 2, 2, length=L, t_ox=tox, h_el=hel)
    oxide = OxideModel(c_max=WO3_LIKE["c_max"], diffusivity=lambda th, xp: 1e-14,
                       open_circuit_potential=lambda th, xp: ideal_U(th, xp, 3.0),
                       theta_initial=lambda x: 0.3 + 0.2 * np.cos(np.pi * x[0] / L), conductance=0.125, thickness=tox)
    el = ElectrolyteModel([Ion("Li", 1, 2.6e-10, 1000.0), Ion("ClO4", -1, 4e-10, 1000.0)], exchanging="Li")
    contacts = [(lambda x: np.isclose(x[0], 0.0), drive), (lambda x: np.isclose(x[0], L), 0.0)]
    return TransportProblem(dom, oxide, el, KineticsModel(exchange_current_density=i0), electron_contacts=contacts,
                            prefix=f"closed{'_shell' if shell else ''}{'_box' if box else ''}{comm.size}_"
                                   f"{'it_' if linear_solver == 'iterative' else ''}",
                            linear_solver=linear_solver)


@pytest.mark.mpi
def test_closed_cell_conserves_every_species(comm):
    """Over 120 BDF2 steps of a driven closed cell, Li (oxide + electrolyte) and ClO4 drift < 1e-10 relative."""
    p = closed_cell(comm)
    t0 = p.totals()
    li0 = t0["oxide"] + t0["Li"]
    for _ in range(120):
        p.step(1.0, order=2, dt_prev=1.0)
    t1 = p.totals()
    assert abs(t1["oxide"] + t1["Li"] - li0) / li0 < 1e-10
    assert abs(t1["ClO4"] - t0["ClO4"]) / t0["ClO4"] < 1e-10
    # something did happen: Li crosses Γ in both directions (the drive moves it between oxide
    # regions through the electrolyte), yet the net exchange of the closed cell is zero
    gross = p.integrate(FARADAY * abs(p.j), "interface")
    assert gross > 0
    assert abs(p.exchange_current()) < 1e-6 * gross
    theta = 1 / (1 + np.exp(-p.u["w"].x.array))
    assert comm.allreduce(theta.max(), op=MPI.MAX) - comm.allreduce(theta.min(), op=MPI.MIN) < 0.4


def _gather_sorted(f):
    """(coordinates, values) of all owned dofs of f on rank 0, sorted by coordinates."""
    V = f.function_space
    n = V.dofmap.index_map.size_local
    x = V.tabulate_dof_coordinates()[:n]
    v = f.x.array[:n]
    comm = V.mesh.comm
    xs, vs = comm.gather(x, root=0), comm.gather(v, root=0)
    if comm.rank != 0:
        return None, None
    x, v = np.concatenate(xs), np.concatenate(vs)
    order = np.lexsort((np.round(x[:, 1], 15), np.round(x[:, 0], 12)))
    return x[order], v[order]


@pytest.mark.mpi
@pytest.mark.parametrize("shell", [False, True], ids=["section", "shell"])
def test_one_and_two_ranks_give_the_same_fields(comm, shell):
    """The driven closed cell (its resolved section, and its shell on a plan strip) on all ranks
    equals the same run on one rank to 1e-8 in every field."""
    if comm.size == 1:
        pytest.skip("compares a run on several ranks with a serial one: run under mpiexec -n 2")
    drive = 0.3 if shell else 0.1
    par, ser = closed_cell(comm, drive=drive, shell=shell), closed_cell(MPI.COMM_SELF, drive=drive, shell=shell)
    for _ in range(10 if shell else 20):
        par.step(2.0, order=2, dt_prev=2.0)
        ser.step(2.0, order=2, dt_prev=2.0)
    for name in par.names:
        xp_, vp = _gather_sorted(par.u[name])
        xs, vs = _gather_sorted(ser.u[name])
        if comm.rank == 0:
            assert np.allclose(xp_, xs, rtol=0, atol=1e-12)
            scale = max(np.abs(vs).max(), 1e-30)
            assert np.abs(vp - vs).max() <= 1e-8 * scale, name


@pytest.mark.mpi
@pytest.mark.parametrize("box", [False, True], ids=["section", "stack3d"])
def test_iterative_linear_solver_gives_the_direct_solvers_state(comm, box):
    """The driven closed cell (x–z section, and a 3D stack of it) with Newton's linear systems
    solved by FGMRES on the field split (transport/linear.py) equals the MUMPS run: θ to 1e-8, the
    other fields to 1e-8 of their size, the same Newton iterations; Li and ClO4 conserved."""
    direct, iterative = closed_cell(comm, box=box), closed_cell(comm, box=box, linear_solver="iterative")
    t0 = iterative.totals()
    for _ in range(5):
        assert direct.step(2.0, order=2, dt_prev=2.0) == iterative.step(2.0, order=2, dt_prev=2.0)
    assert iterative.newton.krylov_iterations > iterative.newton.linear_solves > 0  # it did iterate
    th_d, th_i = (1 / (1 + np.exp(-p.u["w"].x.array)) for p in (direct, iterative))
    assert comm.allreduce(np.abs(th_i - th_d).max(), op=MPI.MAX) < 1e-8
    for name in direct.names:
        a, b = direct.u[name].x.array, iterative.u[name].x.array
        scale = max(comm.allreduce(np.abs(a).max(), op=MPI.MAX), 1.0)
        assert comm.allreduce(np.abs(a - b).max(), op=MPI.MAX) < 1e-8 * scale, name
    t1 = iterative.totals()
    assert abs(t1["oxide"] + t1["Li"] - t0["oxide"] - t0["Li"]) / (t0["oxide"] + t0["Li"]) < 1e-10
    assert abs(t1["ClO4"] - t0["ClO4"]) / t0["ClO4"] < 1e-10
    assert np.ptp(th_d) > 0 and abs(iterative.exchange_current()) < 1e-6 * iterative.integrate(
        FARADAY * abs(iterative.j), "interface")
    direct.close(), iterative.close()


def _film_mean_along_x(p, shell: bool):
    """(x of the nodes, the film's mean θ there): the trapezoid rule over a section's oxide levels."""
    V = p.spaces["w"]
    xz = V.tabulate_dof_coordinates()
    theta = 1 / (1 + np.exp(-p.u["w"].x.array))
    xs = np.unique(np.round(xz[:, 0], 12))
    out = []
    for v in xs:
        at = np.isclose(xz[:, 0], v, rtol=0, atol=1e-12)
        z, th = xz[at, 1], theta[at]
        order = np.argsort(z)
        out.append(th.mean() if shell else np.trapezoid(th[order], z[order]) / np.ptp(z))
    return xs, np.array(out)


def test_the_shell_limit_of_a_thin_cell_matches_the_resolved_section():
    """The closed cell (0.5 µm film, 20 µm electrolyte, 1 mm, a 0.3 V drive) as a shell on a plan
    strip (transport/shell.py) beside its resolved x–z section: the film's mean θ agrees within
    0.01 at every 10th of 40 one-second steps (measured 0.0064 at most, in the first seconds when
    the through-film profile is not yet quadratic), while the drive moves θ by > 0.3; the shell
    conserves Li to 1e-12."""
    comm = MPI.COMM_SELF
    section_cell, shell_cell = closed_cell(comm, drive=0.3), closed_cell(comm, drive=0.3, shell=True)
    before = shell_cell.totals()
    for k in range(40):
        for p in (section_cell, shell_cell):
            p.step(1.0, order=2 if k else 1, dt_prev=1.0 if k else None)
        if k % 10 == 9:
            (xa, a), (xb, b) = _film_mean_along_x(section_cell, False), _film_mean_along_x(shell_cell, True)
            assert np.allclose(xa, xb, rtol=0, atol=1e-12)
            assert np.abs(a - b).max() < 0.01, (k + 1, np.abs(a - b).max())
    assert np.ptp(a) > 0.3
    after = shell_cell.totals()
    li0 = before["oxide"] + before["Li"]
    assert abs(after["oxide"] + after["Li"] - li0) / li0 < 1e-12


def test_butler_volmer_linear_regime_gives_charge_transfer_resistance(comm):
    """A 1 mV step of the electrode potential draws i = η/R_ct with R_ct = RT/(F i0) (within 1 %)."""
    i0 = 2.0
    p = closed_cell(comm, nx=4, drive=0.0, i0=i0)
    p.u["w"].x.array[:] = 0.0  # θ = 1/2, where U = U0 = 3 V and i0 = i0_ref
    p.u["u_Li"].x.array[:] = 0.0  # c = c_ref
    p.u["psi"].x.array[:] = 0.0  # φ_l = 0
    eta = 1e-3
    p.u["phi_e"].x.array[:] = 3.0 + eta  # φ_e − φ_l − U = 1 mV
    i_local = p.integrate(FARADAY * p.j, "interface") / 1e-3  # A per m² of interface (1 mm long section)
    R_ct = RT_F / i0
    assert -eta / i_local == pytest.approx(R_ct, rel=1e-2)


def test_temperature_constant_sets_the_charge_transfer_resistance(comm):
    """T is a Constant in the forms: at 330 K with E_a = 40 kJ/mol, a 1 mV step draws i = η/R_ct with
    R_ct = RT/(F i0(T)), i0(T) = i0 exp[−(E_a/R)(1/T − 1/T_ref)] (within 1 %), with no rebuild."""
    from femion.laws.kinetics import arrhenius

    i0, Ea, T_hot = 2.0, 40e3, 330.0
    L, tox = 1e-3, WO3_LIKE["thickness"]
    dom = section(comm, 4, 2, 2, length=L, t_ox=tox, h_el=20e-6)
    oxide = OxideModel(c_max=WO3_LIKE["c_max"], diffusivity=lambda th, xp: 1e-14,
                       open_circuit_potential=lambda th, xp: ideal_U(th, xp, 3.0), conductance=0.125, thickness=tox)
    el = ElectrolyteModel([Ion("Li", 1, 2.6e-10, 1000.0), Ion("ClO4", -1, 4e-10, 1000.0)], exchanging="Li")
    p = TransportProblem(dom, oxide, el, KineticsModel(exchange_current_density=i0, activation_energy=Ea),
                         electron_contacts=[(lambda x: np.isclose(x[0], 0.0), 0.0)], prefix="hot_")
    p.u["w"].x.array[:] = 0.0  # θ = 1/2, where U = U0 = 3 V and i0 = i0_ref
    p.u["u_Li"].x.array[:] = 0.0
    p.u["psi"].x.array[:] = 0.0
    eta = 1e-3
    p.u["phi_e"].x.array[:] = 3.0 + eta
    for T_now in (T, T_hot):
        p.temperature.value = T_now
        i_local = p.integrate(FARADAY * p.j, "interface") / L
        R_ct = GAS * T_now / (FARADAY * arrhenius(i0, Ea, T_now))
        assert -eta / i_local == pytest.approx(R_ct, rel=1e-2), T_now


def test_binary_electrolyte_relaxes_with_ambipolar_diffusivity(comm):
    """A cosine of LiClO4 along x decays with D_amb = 2D₊D₋/(D₊+D₋) (within 1 %), no exchange."""
    L = 1e-4
    Dp, Dm = 2.6e-10, 4.0e-10
    dom = section(comm, 48, 1, 2, length=L, t_ox=1e-6, h_el=5e-6)
    oxide = OxideModel(c_max=1e4, diffusivity=lambda th, xp: 1e-14, open_circuit_potential=ideal_U,
                       conductance=0.0, thickness=1e-6)
    el = ElectrolyteModel([Ion("Li", 1, Dp, 1000.0), Ion("ClO4", -1, Dm, 1000.0)], exchanging="Li")
    eps = 0.01
    p = TransportProblem(dom, oxide, el, KineticsModel(exchange_current_density=0.0), prefix="amb_",
                         electrolyte_initial={"Li": lambda x: 1000.0 * (1 + eps * np.cos(np.pi * x[0] / L))})
    D_amb = 2 * Dp * Dm / (Dp + Dm)
    tau = L**2 / (np.pi**2 * D_amb)
    xs = ufl.SpatialCoordinate(dom.mesh)

    def amplitude():
        c = p.concentration_exprs(p.u)["Li"]
        return p.integrate((c - 1000.0) * ufl.cos(np.pi * xs[0] / L), "electrolyte")

    a0 = amplitude()
    n = 40
    for _ in range(n):
        p.step(tau / n, order=2, dt_prev=tau / n)
    assert -np.log(amplitude() / a0) == pytest.approx(1.0, rel=1e-2)


def test_oxide_cosine_mode_decays_with_diffusion_time(comm):
    """A cosine of θ along the oxide decays with τ = L²/(π²D) (within 1 %), no exchange."""
    L, D = 1e-5, 1e-14
    dom = section(comm, 48, 2, 1, length=L, t_ox=0.5e-6, h_el=2e-6)
    oxide = OxideModel(c_max=1e4, diffusivity=lambda th, xp: D, open_circuit_potential=ideal_U,
                       theta_initial=lambda x: 0.5 + 0.01 * np.cos(np.pi * x[0] / L), conductance=0.0,
                       thickness=0.5e-6)
    el = binary(2.6e-10, 4e-10, 1000.0)
    p = TransportProblem(dom, oxide, el, KineticsModel(exchange_current_density=0.0), prefix="cos_")
    xs = ufl.SpatialCoordinate(dom.mesh)
    tau = L**2 / (np.pi**2 * D)

    def amplitude():
        return p.integrate((p.theta_expr(p.u["w"]) - 0.5) * ufl.cos(np.pi * xs[0] / L), "oxide")

    a0 = amplitude()
    for _ in range(40):
        p.step(tau / 40, order=2, dt_prev=tau / 40)
    assert -np.log(amplitude() / a0) == pytest.approx(1.0, rel=1e-2)


def test_drift_dominated_transport_stays_positive(comm):
    """A trace cation (H⁺) front driven by migration at cell Péclet 25 through LiClO4 stays positive
    (no undershoot), overshoots < 5 % and arrives where v = D|∇ψ| puts it (within one cell)."""
    L, n = 1e-4, 40
    dom = section(comm, n, 1, 1, length=L, t_ox=0.5e-6, h_el=2e-6)
    oxide = OxideModel(c_max=1.3e4, diffusivity=lambda th, xp: 1e-14, open_circuit_potential=ideal_U,
                       conductance=0.0, thickness=0.5e-6)
    el = ElectrolyteModel([Ion("Li", 1, 2.6e-10, 1000.0), Ion("H", 1, 1e-9, 1.0), Ion("ClO4", -1, 4e-10, 1001.0)],
                          exchanging="Li")
    dpsi = 25.0 * n  # 25 RT/F per cell

    def front(x, x0):
        return 1e-4 + (1 - 1e-4) * 0.5 * (1 - np.tanh((x - x0) / (2 * L / n)))

    ends = lambda x: np.isclose(x[0], 0) | np.isclose(x[0], L)  # noqa: E731
    p = TransportProblem(dom, oxide, el, KineticsModel(exchange_current_density=0.0), prefix="drift_",
                         electrolyte_initial={"H": lambda x: front(x[0], 0.2 * L)},
                         dirichlet={"psi": (ends, lambda x, t: np.where(np.isclose(x[0], 0), 0.0, -dpsi)),
                                    "u_Li": (ends, lambda x, t: 0.0 * x[0]),
                                    "u_H": (lambda x: np.isclose(x[0], 0), lambda x, t: 0.0 * x[0])})
    p.u["psi"].interpolate(lambda x: -dpsi * x[0] / L)
    v = 1e-9 * dpsi / L
    t_end = 0.5 * L / v
    Stepper(p, StepControl(dt_initial=1e-6, dt_min=1e-10, dt_max=0.5 * L / n / v, order=1)).advance_to(t_end)
    Q = dolfinx.fem.functionspace(p.el_mesh, ("DG", 0))
    pe = dolfinx.fem.Function(Q)
    pe.interpolate(dolfinx.fem.Expression(ufl.sqrt(ufl.inner(ufl.grad(p.u["psi"]), ufl.grad(p.u["psi"]))) * L / n,
                                          Q.element.interpolation_points))
    assert comm.allreduce(float(pe.x.array.min()), op=MPI.MIN) >= 20
    V = p.spaces["u_H"]
    nown = V.dofmap.index_map.size_local
    x = np.concatenate(comm.allgather(V.tabulate_dof_coordinates()[:nown, 0]))
    c = np.concatenate(comm.allgather(np.exp(p.u["u_H"].x.array[:nown])))
    assert np.isfinite(c).all() and c.min() > 0
    inner = x < 0.95 * L  # the blocking wall at x = L collects H⁺, as it should
    assert c[inner].max() < 1.05  # 3.4 % behind the front with the lumped mass (0.05 % consistent)
    o = np.argsort(x[inner])
    xo, co = x[inner][o], c[inner][o]
    x_front = np.interp(0.5, co[::-1], xo[::-1])
    assert abs(x_front - (0.2 * L + v * t_end)) < L / n


def test_stepper_lands_on_times_and_stops_cleanly(comm):
    """Steps land exactly on requested times; a failing solve cuts the step and then stops at dt_min."""
    p = closed_cell(comm, nx=4)
    s = Stepper(p, StepControl(dt_initial=0.7, dt_min=0.01, dt_max=5.0))
    for t in (1.0, 2.5, 10.0):
        s.advance_to(t)
        assert p.t == pytest.approx(t, abs=1e-12)
    assert max(r.dt for r in s.history) > 0.7  # it grew

    def always_fail(dt, order=1, dt_prev=None, budget=None):
        from femion.transport.newton import TransportSolveError

        raise TransportSolveError("forced")

    state = p.u["w"].x.array.copy()
    p.step = always_fail
    with pytest.raises(StepFailure) as info:
        s.advance_to(20.0)
    assert info.value.t_last_good == pytest.approx(10.0)
    assert np.array_equal(p.u["w"].x.array, state)


# --------------------------------------------------------------- Lorentz terms

B_STRIP = 4e-7 * np.pi * 0.2 / (2 * 0.02)  # µ0 I/(2W): 0.2 A in the 20 mm strip, 6.28 µT


def uniform_field(By):
    return lambda x: np.vstack([0.0 * x[0], np.full(x.shape[1], By), 0.0 * x[0]])


def lorentz_cell(comm, lorentz, By=-B_STRIP, drive=0.1, prefix="lor"):
    p = closed_cell(comm, nx=10, drive=drive)
    # rebuild with the field and the chosen Lorentz terms, everything else as closed_cell
    dom, ox, el, kin = p.domain, p.oxide, p.electrolyte, p.kinetics
    L = 1e-3
    contacts = [(lambda x: np.isclose(x[0], 0.0), drive), (lambda x: np.isclose(x[0], L), 0.0)]
    return TransportProblem(dom, ox, el, kin, electron_contacts=contacts, magnetic_field=uniform_field(By),
                            lorentz=lorentz, prefix=f"{prefix}_")


def _fields(p):
    return {n: p.u[n].x.array.copy() for n in p.names}


def test_lorentz_terms_at_device_field_change_nothing(comm):
    """At the strip's 6.28 µT the Hall parameter is ~1e-14..1e-13; the bulk term on or off gives the same
    fields to 1e-10, and the closure with zero step length is exactly the closure off."""
    runs = {}
    for key, lor in (("off", LorentzModel()), ("bulk", LorentzModel(bulk=True)),
                     ("closure0", LorentzModel(closure=True, step_params={"lam0": 0.0}))):
        p = lorentz_cell(comm, lor, prefix=f"lor_{key}")
        for _ in range(10):
            p.step(2.0, order=2, dt_prev=2.0)
        runs[key] = (p, _fields(p))
    p_off = runs["off"][0]
    assert 1e-15 < p_off.max_hall_parameter < 1e-13
    for key in ("bulk", "closure0"):
        for n, ref in runs["off"][1].items():
            scale = max(np.abs(ref).max(initial=0.0), 1e-30)
            assert np.abs(runs[key][1][n] - ref).max(initial=0.0) <= 1e-10 * scale, (key, n)


def test_lorentz_closure_pumps_li_along_n_cross_b_and_conserves(comm):
    """With the closure on (B along +y, n̂ = +z), exchanged Li steps along n̂×B̂ = −x: Li gathers at the
    x = 0 end and leaves the x = L end, with Li conserved to 1e-10."""
    p = lorentz_cell(comm, LorentzModel(closure=True, step_params={"lam0": 1e-6}), By=+1e-3, drive=0.0,
                     prefix="pump")
    p.u["w"].x.array[:] = 0.0  # uniform θ = 1/2
    p.reset_history()  # the state set here is the start
    t0 = p.totals()
    for _ in range(30):
        p.step(5.0, order=1)
    t1 = p.totals()
    li0, li1 = t0["oxide"] + t0["Li"], t1["oxide"] + t1["Li"]
    assert abs(li1 - li0) / li0 < 1e-10
    V = p.spaces["w"]
    n_own = V.dofmap.index_map.size_local
    x = np.concatenate(comm.allgather(V.tabulate_dof_coordinates()[:n_own, 0]))
    th = np.concatenate(comm.allgather(1 / (1 + np.exp(-p.u["w"].x.array[:n_own]))))
    left, right = th[x < 1e-4].mean(), th[x > 9e-4].mean()
    assert left > 0.5 > right


# --------------------------------------------------------------- double layer and Poisson


def test_top_double_layer_stores_exactly_the_charge_the_oxide_takes(comm):
    """With a blocking counter electrode (C_dl only, no faradaic reaction), the Li the oxide takes up
    equals C_dl·Δ(φ_top − φ_l)·A/F and the bulk ClO4 falls by the same amount (charge kept in the layer)."""
    L, tox, hel = 1e-4, 0.5e-6, 5e-6
    dom = section(comm, 4, 1, 4, length=L, t_ox=tox, h_el=hel, top=True)
    oxide = OxideModel(c_max=1.3e4, diffusivity=lambda th, xp: 1e-14, open_circuit_potential=lambda th, xp: ideal_U(
        th, xp, 3.0), theta_initial=0.5, conductance=0.125, thickness=tox)
    el = binary(2.6e-10, 4e-10, 1000.0)
    C_dl = 0.2
    # the oxide's electrons held 50 mV below its equilibrium potential (3 V at θ = 1/2): Li goes in
    contacts = [(lambda x: np.isclose(x[0], 0.0), 2.95), (lambda x: np.isclose(x[0], L), 2.95)]
    p = TransportProblem(dom, oxide, el, KineticsModel(exchange_current_density=1.0), electron_contacts=contacts,
                         top=TopElectrode(potential=0.0, exchange_current_density=0.0, capacitance=C_dl),
                         prefix="dl_")
    # start in equilibrium with the oxide at φ_e = 3 V (θ = 1/2) and the layer uncharged
    p.u["phi_e"].x.array[:] = 3.0
    p.u["psi"].x.array[:] = 0.0
    p.reset_history()  # the state set here is the start
    t0 = p.totals()
    for _ in range(40):
        p.step(0.05, order=1)
    t1 = p.totals()
    taken = t1["oxide"] - t0["oxide"]  # mol per metre of width
    top_len = L
    phi_l_top = p.integrate(p.u["psi"] * RT_F, "electrolyte") / p.integrate(dolfinx.fem.Constant(dom.mesh, 1.0),
                                                                             "electrolyte")
    stored = C_dl * (0.0 - phi_l_top) * top_len / FARADAY
    assert taken > 0
    assert taken == pytest.approx(stored, rel=2e-2)  # φ_l is near-uniform by then
    assert t1["ClO4"] - t0["ClO4"] == pytest.approx(-taken, rel=1e-8)
    assert t1["oxide"] + t1["Li"] == pytest.approx(t0["oxide"] + t0["Li"], rel=1e-12)


def test_poisson_option_gives_the_debye_screening_length(comm):
    """With Poisson instead of electroneutrality, a 0.1 RT/F potential at a wall decays into a dilute
    1:1 electrolyte as exp(−z/λ_D), λ_D = sqrt(ε RT/(2F²c)) (within 3 %)."""
    c0, er = 1e-3, 65.0
    lam = np.sqrt(VACUUM_PERMITTIVITY * er * GAS * T / (2 * FARADAY**2 * c0))
    tox, hel = 0.1e-6, 8 * lam
    dom = section(comm, 2, 1, 80, length=hel, t_ox=tox, h_el=hel)
    oxide = OxideModel(c_max=1e4, diffusivity=lambda th, xp: 1e-14, open_circuit_potential=ideal_U,
                       conductance=0.0, thickness=tox)
    el = ElectrolyteModel([Ion("Li", 1, 1e-9, c0), Ion("ClO4", -1, 1e-9, c0)], exchanging="Li", poisson=True,
                          relative_permittivity=er)
    wall = lambda x: np.isclose(x[1], tox) & (x[1] >= tox * (1 - 1e-9))  # noqa: E731
    far = lambda x: np.isclose(x[1], tox + hel)  # noqa: E731
    p = TransportProblem(dom, oxide, el, KineticsModel(exchange_current_density=0.0), prefix="pois_",
                         dirichlet={"psi": (lambda x: wall(x) | far(x),
                                            lambda x, t: np.where(np.isclose(x[1], tox), 0.1, 0.0)),
                                    "u_Li": (far, lambda x, t: 0.0 * x[0]),
                                    "u_ClO4": (far, lambda x, t: 0.0 * x[0])})
    p.u["psi"].interpolate(lambda x: 0.1 * np.exp(-(x[1] - tox) / lam))
    Stepper(p, StepControl(dt_initial=1e-6, dt_min=1e-12, dt_max=1e-2, order=2)).advance_to(20 * hel**2 / 1e-9)
    V = p.spaces["psi"]
    n_own = V.dofmap.index_map.size_local
    z = np.concatenate(comm.allgather(V.tabulate_dof_coordinates()[:n_own, 1])) - tox
    psi = np.concatenate(comm.allgather(p.u["psi"].x.array[:n_own]))
    sel = (z > 0.5 * lam) & (z < 3 * lam)
    slope = np.polyfit(z[sel], np.log(psi[sel]), 1)[0]
    assert -1 / slope == pytest.approx(lam, rel=3e-2)


def test_cahn_hilliard_gradient_term_speeds_up_short_modes_as_linear_theory_says(comm):
    """With a gradient energy κ (ideal host, θ0 = 1/2), a cosine of wavenumber k decays at
    D k² (1 + κ k² θ0(1−θ0)/RT): κ = 4RT/k² doubles the rate (within 1 %); Li is conserved."""
    L, D = 1e-5, 1e-14
    k = np.pi / L
    RT = GAS * T
    dom = section(comm, 48, 2, 1, length=L, t_ox=0.5e-6, h_el=2e-6)
    oxide = OxideModel(c_max=1e4, diffusivity=lambda th, xp: D + 0.0 * th, open_circuit_potential=ideal_U,
                       theta_initial=lambda x: 0.5 + 0.001 * np.cos(np.pi * x[0] / L), conductance=0.0,
                       thickness=0.5e-6, gradient_energy=4 * RT / k**2)
    p = TransportProblem(dom, oxide, binary(2.6e-10, 4e-10, 1000.0), KineticsModel(exchange_current_density=0.0),
                         prefix="chlin_")
    xs = ufl.SpatialCoordinate(dom.mesh)

    def amplitude():
        return p.integrate((p.theta_expr(p.u["w"]) - 0.5) * ufl.cos(np.pi * xs[0] / L), "oxide")

    tau = 1.0 / (2 * D * k**2)  # expected e-folding time with the gradient term
    a0, m0 = amplitude(), p.totals()["oxide"]
    for _ in range(40):
        p.step(tau / 40, order=2, dt_prev=tau / 40)
    assert -np.log(amplitude() / a0) == pytest.approx(1.0, rel=1e-2)
    assert abs(p.totals()["oxide"] - m0) / m0 < 1e-12


def test_oxide_without_conductor_beneath_stays_nearly_floating(comm):
    """Conductor under the first quarter only, its ends held ±35 mV about equilibrium: oxide 1.5 mm beyond
    it, whose electrons come only through the film's own sheet conductance, gains < 0.1 % of the Li it
    gains with a conductor under it (G_ox = 6e-8 S, decay length √(G_ox R_ct) ≈ 40 µm), and < 10 % with
    blue WO3's own 6e-6 S (≈ 0.4 mm: the film itself spreads electrons that far)."""
    L, tox = 4e-3, 0.5e-6
    U0 = 3.0 + RT_F * np.log(0.7 / 0.3)  # U(θ = 0.3)
    changes = {}
    for G_far in (6e-8, 6e-6, 0.125):
        dom = section(comm, 80, 2, 2, length=L, t_ox=tox, h_el=20e-6)
        oxide = OxideModel(c_max=1.3e4, diffusivity=lambda th, xp: 1e-14,
                           open_circuit_potential=lambda th, xp: ideal_U(th, xp, 3.0), theta_initial=0.3,
                           conductance=lambda x, G=G_far: np.where(x[0] < L / 4, 0.125, G), thickness=tox)
        contacts = [(lambda x: np.isclose(x[0], 0.0), U0 + 0.035),
                    (lambda x: np.isclose(x[0], L / 4) & (x[1] <= tox * 1.01), U0 - 0.035)]
        p = TransportProblem(dom, oxide, binary(2.6e-10, 4e-10, 1000.0), KineticsModel(exchange_current_density=1.0),
                             electron_contacts=contacts, prefix=f"float{len(changes)}_")
        xs = ufl.SpatialCoordinate(dom.mesh)
        far = ufl.conditional(ufl.gt(xs[0], 0.625 * L), 1.0, 0.0)

        def amount(p=p, far=far):
            return p.integrate(p.oxide.c_max * p.theta_expr(p.u["w"]) * far, "oxide", mass=True)

        f0 = amount()
        Stepper(p, StepControl(dt_initial=0.1, dt_min=1e-6, dt_max=5.0)).advance_to(60.0)
        changes[G_far] = abs(amount() - f0)
    connected = changes[0.125]
    assert connected > 0
    assert changes[6e-8] < 1e-3 * connected
    assert changes[6e-8] < changes[6e-6] < 0.1 * connected


def test_reversing_the_drive_reverses_the_motion_and_removing_the_electrolyte_freezes_it(comm):
    """Driving with reversed contact potentials moves Li the other way (mirror image of the forward run),
    and with the exchange switched off (electrolyte removed) the distribution no longer changes."""
    L = 1e-3
    runs = {}
    for sign in (+1, -1):
        p = closed_cell(comm, nx=20, drive=0.0)
        p.oxide.theta_initial = 0.3
        p.u["w"].x.array[:] = np.log(0.3 / 0.7)
        p.reset_history()  # the state set here is the start
        p.set_contact_potentials([sign * 0.1, 0.0])
        Stepper(p, StepControl(dt_initial=0.5, dt_min=1e-6, dt_max=5.0)).advance_to(30.0)
        V = p.spaces["w"]
        n_own = V.dofmap.index_map.size_local
        x = np.concatenate(comm.allgather(V.tabulate_dof_coordinates()[:n_own, 0]))
        th = np.concatenate(comm.allgather(1 / (1 + np.exp(-p.u["w"].x.array[:n_own]))))
        runs[sign] = (x, th, p)
    (x, fwd, p), (_, back, _) = runs[+1], runs[-1]
    left, right = x < 0.2 * L, x > 0.8 * L
    assert fwd[left].mean() < 0.3 < fwd[right].mean()  # from the positive contact toward the grounded one
    assert back[left].mean() > 0.3 > back[right].mean()
    # freeze: no exchange, keep driving: the lateral distribution no longer changes (only the
    # 0.5 µm columns even out vertically; lateral oxide diffusion over 50 µm cells is negligible)
    p.set_exchange(False)
    xs = ufl.SpatialCoordinate(p.domain.mesh)
    bins = [ufl.conditional(ufl.And(ufl.ge(xs[0], a * L), ufl.lt(xs[0], (a + 0.1) * L)), 1.0, 0.0)
            for a in np.arange(0.0, 1.0, 0.1)]

    def profile():
        return np.array([p.integrate(p.oxide.c_max * p.theta_expr(p.u["w"]) * b, "oxide", mass=True) for b in bins])

    before = profile()
    Stepper(p, StepControl(dt_initial=0.5, dt_min=1e-6, dt_max=5.0)).advance_to(60.0)
    assert np.abs(profile() - before).max() < 1e-3 * before.max()


def test_drive_off_leaves_the_film_floating_and_it_relaxes(comm):
    """After a drive, disconnecting the contacts (P3) leaves the film floating: the oxide keeps its total
    Li (no electrons in or out) while the driven-in gradient relaxes through the electrolyte."""
    p = closed_cell(comm, nx=20, drive=0.0)
    p.u["w"].x.array[:] = np.log(0.3 / 0.7)
    p.reset_history()  # the state set here is the start
    U0 = 3.0 + RT_F * np.log(0.7 / 0.3)  # U(θ = 0.3); start in equilibrium with φ_l = 0
    p.u["phi_e"].x.array[:] = U0
    p.u["psi"].x.array[:] = 0.0
    p.set_contact_potentials([U0 + 0.05, U0 - 0.05])
    stepper = Stepper(p, StepControl(dt_initial=0.5, dt_min=1e-6, dt_max=5.0))
    stepper.advance_to(30.0)

    def spread():
        th = 1 / (1 + np.exp(-p.u["w"].x.array))
        return comm.allreduce(float(th.max()), op=MPI.MAX) - comm.allreduce(float(th.min()), op=MPI.MIN)

    driven, ox0 = spread(), p.totals()["oxide"]
    p.set_contacts_connected(False)
    stepper.advance_to(600.0)
    assert abs(p.totals()["oxide"] - ox0) / ox0 < 1e-9
    assert spread() < 0.5 * driven


def test_counter_electrode_potential_injects_li(comm):
    """Raising the counter electrode above the film (P1: top ITO positive) drives Li into the oxide, and
    the Li the oxide gains is the Li the counter electrode releases (total Li in the cell grows by it)."""
    L, tox, hel = 1e-4, 0.5e-6, 5e-6
    dom = section(comm, 4, 1, 4, length=L, t_ox=tox, h_el=hel, top=True)
    oxide = OxideModel(c_max=1.3e4, diffusivity=lambda th, xp: 1e-14,
                       open_circuit_potential=lambda th, xp: ideal_U(th, xp, 3.0), theta_initial=0.1,
                       conductance=0.125, thickness=tox)
    U0 = 3.0 + RT_F * np.log(0.9 / 0.1)  # the film's open-circuit potential vs the counter electrode
    contacts = [(lambda x: np.isclose(x[0], 0.0), U0), (lambda x: np.isclose(x[0], L), U0)]
    p = TransportProblem(dom, oxide, binary(2.6e-10, 4e-10, 1000.0), KineticsModel(exchange_current_density=1.0),
                         electron_contacts=contacts, top=TopElectrode(potential=0.0, exchange_current_density=10.0),
                         prefix="inject_")
    t0 = p.totals()
    p.set_top_potential(0.2)  # counter electrode 0.2 V above equilibrium: it releases Li⁺, the film takes it
    Stepper(p, StepControl(dt_initial=0.01, dt_min=1e-7, dt_max=1.0)).advance_to(5.0)
    t1 = p.totals()
    gained = t1["oxide"] - t0["oxide"]
    assert gained > 0
    # ClO4 is conserved; the electrolyte's Li is restored by the counter electrode
    assert t1["ClO4"] == pytest.approx(t0["ClO4"], rel=1e-10)
    assert t1["Li"] == pytest.approx(t0["Li"], rel=1e-10)


@pytest.mark.parametrize("valence", [1, 2])
def test_film_settles_at_the_nernst_filling_of_a_z_valent_ion(comm, valence):
    """Film held at V against a counter electrode at rest (0 V): exchange stops where
    V = U(θ) = U0 − (RT/zF) ln(θ/(1−θ)), i.e. θ = 1/(1 + exp(zF(V − U0)/RT)); a divalent ion
    (Zn²⁺) fills the film less than Li⁺ at the same potential, and the anion is conserved."""
    L, tox, hel = 1e-4, 0.5e-6, 5e-6
    U0, V = 0.0, 0.02
    dom = section(comm, 2, 1, 2, length=L, t_ox=tox, h_el=hel, top=True)
    oxide = OxideModel(c_max=1.3e4, diffusivity=lambda th, xp: 1e-14,
                       open_circuit_potential=lambda th, xp: U0 - RT_F / valence * xp.log(th / (1 - th)),
                       theta_initial=0.5, conductance=0.125, thickness=tox)
    contacts = [(lambda x: np.isclose(x[0], 0.0), V), (lambda x: np.isclose(x[0], L), V)]
    c_salt = 1000.0
    el = ElectrolyteModel([Ion("M", valence, 5e-10, c_salt), Ion("ClO4", -1, 4e-10, valence * c_salt)],
                          exchanging="M")
    p = TransportProblem(dom, oxide, el, KineticsModel(exchange_current_density=100.0),
                         electron_contacts=contacts, top=TopElectrode(potential=0.0, exchange_current_density=1000.0),
                         prefix=f"nernst{valence}_")
    t0 = p.totals()
    # C_film (R_ct + R_top) ~ 2 s: 100 s is fifty relaxation times
    Stepper(p, StepControl(dt_initial=0.01, dt_min=1e-7, dt_max=5.0)).advance_to(100.0)
    t1 = p.totals()
    volume = p.integrate(dolfinx.fem.Constant(dom.mesh, 1.0), "oxide")
    theta = t1["oxide"] / (oxide.c_max * volume)
    expected = 1.0 / (1.0 + np.exp(valence * (V - U0) / RT_F))
    assert theta == pytest.approx(expected, abs=2e-4)
    assert t1["ClO4"] == pytest.approx(t0["ClO4"], rel=1e-10)
    # electroneutral: the counter electrode gave back the metal the film took
    assert t1["M"] == pytest.approx(t0["M"], rel=1e-10)


@pytest.mark.mpi
def test_one_sided_integral_over_an_interior_layer_face_takes_the_named_side(comm):
    """The top electrode's face (electrolyte|top ITO) is interior to the stack mesh: the ds integral
    must take its cell from the electrolyte side on every rank whatever the numbering, and ∫ds 1 is
    the face's area."""
    from femion.transport.domain import one_sided_entities

    msh = dolfinx.mesh.create_box(comm, [[0, 0, 0], [2, 1, 1]], [4, 2, 4], dolfinx.mesh.CellType.hexahedron,
                                  ghost_mode=dolfinx.mesh.GhostMode.shared_facet)
    tdim = 3
    below = dolfinx.mesh.locate_entities(msh, tdim, lambda x: x[2] <= 0.5 + 1e-12)
    above = dolfinx.mesh.locate_entities(msh, tdim, lambda x: x[2] >= 0.5 - 1e-12)
    msh.topology.create_connectivity(tdim - 1, tdim)
    face = dolfinx.mesh.locate_entities(msh, tdim - 1, lambda x: np.isclose(x[2], 0.5))
    for cells in (below, above):
        data = one_sided_entities(msh, face, cells).reshape(-1, 2)
        assert np.isin(data[:, 0], cells).all()
        ds = ufl.Measure("ds", domain=msh, subdomain_data=[(1, data.ravel())])
        area = comm.allreduce(dolfinx.fem.assemble_scalar(dolfinx.fem.form(
            dolfinx.fem.Constant(msh, 1.0) * ds(1))), op=MPI.SUM)
        assert area == pytest.approx(2.0, rel=1e-12)
    # a true boundary face (the box's top) works too
    top = dolfinx.mesh.locate_entities_boundary(msh, tdim - 1, lambda x: np.isclose(x[2], 1.0))
    data = one_sided_entities(msh, top, above)
    ds = ufl.Measure("ds", domain=msh, subdomain_data=[(1, data)])
    area = comm.allreduce(dolfinx.fem.assemble_scalar(dolfinx.fem.form(dolfinx.fem.Constant(msh, 1.0) * ds(1))),
                          op=MPI.SUM)
    assert area == pytest.approx(2.0, rel=1e-12)


def test_a_closed_problem_frees_its_meshes(comm):
    """After close() and del, the problem's meshes are collected: a run does not hold on to MPI
    communicators (MPICH has 2048 per process; a test suite or a sweep of runs would run out)."""
    import gc
    import weakref

    p = closed_cell(comm, nx=4)
    p.step(0.1)
    meshes = [weakref.ref(p.ox_mesh), weakref.ref(p.el_mesh)]
    p.close()
    del p
    gc.collect()
    assert all(m() is None for m in meshes)


def test_laws_added_in_a_test_run_in_the_solver(monkeypatch, tmp_path):
    """A rate law and a diffusivity law registered here (laws/ only: nothing else is edited) are
    accepted by the case schema and used by the solver: Butler–Volmer with α_c = 1/4 at θ = 0.2
    has i0 = i0_ref θ^¼(1−θ)^¾/(θ_ref^¼(1−θ_ref)^¾) = 1.131 i0_ref (the symmetric one 0.8 i0_ref),
    seen in R_ct; a case naming both runs through the whole chain."""
    from femion import cli
    from femion.laws import host, kinetics
    from femion.laws.registry import Law

    def bv_quarter(eta, *, xp):
        return kinetics.butler_volmer(eta, xp=xp, alpha_a=0.75, alpha_c=0.25)

    def half_filled_faster(theta, *, xp, D0):
        return D0 * (1 + 4 * theta * (1 - theta))

    monkeypatch.setitem(kinetics.LAWS, "bv_quarter", Law("bv_quarter", bv_quarter, ()))
    monkeypatch.setitem(host.DIFFUSIVITY_LAWS, "half_filled_faster",
                        Law("half_filled_faster", half_filled_faster, ("D0",)))
    i0, eta, theta = 2.0, 1e-3, 0.2
    L, tox = 1e-3, WO3_LIKE["thickness"]
    dom = section(MPI.COMM_SELF, 4, 2, 2, length=L, t_ox=tox, h_el=20e-6)
    oxide = OxideModel(c_max=WO3_LIKE["c_max"], diffusivity=lambda th, xp: 1e-14,
                       open_circuit_potential=lambda th, xp: ideal_U(th, xp, 3.0), conductance=0.125, thickness=tox)
    el = ElectrolyteModel([Ion("Li", 1, 2.6e-10, 1000.0), Ion("ClO4", -1, 4e-10, 1000.0)], exchanging="Li")
    p = TransportProblem(dom, oxide, el, KineticsModel(law="bv_quarter", exchange_current_density=i0),
                         electron_contacts=[(lambda x: np.isclose(x[0], 0.0), 0.0)], prefix="bv_quarter_")
    p.u["w"].x.array[:] = np.log(theta / (1 - theta))
    p.u["u_Li"].x.array[:] = 0.0
    p.u["psi"].x.array[:] = 0.0
    p.u["phi_e"].x.array[:] = ideal_U(theta, np, 3.0) + eta
    i_local = p.integrate(FARADAY * p.j, "interface") / L
    i0_here = i0 * theta**0.25 * (1 - theta) ** 0.75 / 0.5
    assert -eta / i_local == pytest.approx(RT_F / i0_here, rel=1e-2)
    p.close()
    out = tmp_path / "run"
    assert cli.main(["run", str(CASES / "strip_transport.yaml"), "--out", str(out), "--no-progress",
                     "--set", "mesh.cell_size=2 mm", "--set", "output.figures=false", "--set", "transport.duration=2 s",
                     "--set", "transport.outputs=1", "--set", "transport.kinetics.law=bv_quarter",
                     "--set", "transport.oxide.diffusivity_law=half_filled_faster"]) == 0
    assert "bv_quarter" in (out / "case.yaml").read_text()


def test_each_step_keeps_the_discrete_species_balance_exactly(comm):
    """Injection through the counter electrode, BDF1 and BDF2 steps: every step the cell's Li grows by
    exactly Δt·∫j_top (BDF1) or its BDF2 combination, and ClO4 not at all, to 1e-13 of the amount
    (Newton alone leaves its floor, ~1e-10 of the volume per step)."""
    L, tox, hel = 1e-4, 0.5e-6, 5e-6
    dom = section(comm, 4, 1, 4, length=L, t_ox=tox, h_el=hel, top=True)
    oxide = OxideModel(c_max=1.3e4, diffusivity=lambda th, xp: 1e-14,
                       open_circuit_potential=lambda th, xp: ideal_U(th, xp, 3.0), theta_initial=0.1,
                       conductance=0.125, thickness=tox)
    U0 = 3.0 + RT_F * np.log(0.9 / 0.1)
    contacts = [(lambda x: np.isclose(x[0], 0.0), U0), (lambda x: np.isclose(x[0], L), U0)]
    p = TransportProblem(dom, oxide, binary(2.6e-10, 4e-10, 1000.0), KineticsModel(exchange_current_density=1.0),
                         electron_contacts=contacts, top=TopElectrode(potential=0.0, exchange_current_density=10.0),
                         prefix="balance_")
    p.set_top_potential(0.2)

    def li(t):
        return t["oxide"] + t["Li"]

    history = [p.totals()]
    dt = 0.05
    for k in range(8):
        order = 1 if k < 4 else 2
        p.step(dt, order=order, dt_prev=dt)
        history.append(p.totals())
        new, old = history[-1], history[-2]
        released = dt * p.counter_electrode_release()
        if order == 1:
            assert li(new) - li(old) == pytest.approx(released, rel=1e-9, abs=1e-13 * li(new))
        else:
            older = history[-3]
            # (3/2 M^{n+1} − 2 M^n + 1/2 M^{n−1}) = Δt S^{n+1} for equal steps
            assert 1.5 * li(new) - 2 * li(old) + 0.5 * li(older) == pytest.approx(
                released, rel=1e-9, abs=1e-13 * li(new))
        assert new["ClO4"] == pytest.approx(history[0]["ClO4"], rel=1e-13)
    assert li(history[-1]) > li(history[0])  # Li was injected
    p.close()


def test_step_control_meets_its_tolerance_at_second_order(comm):
    """With a local-error tolerance the stepper's error in the decay of a cosine mode of θ falls with
    the tolerance, and the number of steps grows as tolerance^(−1/3), the rate of a second-order
    method (BDF2 with its own error estimate)."""
    L, D = 1e-5, 1e-14
    dom = section(comm, 24, 2, 1, length=L, t_ox=0.5e-6, h_el=2e-6)
    tau = L**2 / (np.pi**2 * D)
    xs = ufl.SpatialCoordinate(dom.mesh)
    runs = {}
    for tol in (1e-5, 1e-7, 1e-10):
        oxide = OxideModel(c_max=1e4, diffusivity=lambda th, xp: D, open_circuit_potential=ideal_U,
                           theta_initial=lambda x: 0.5 + 0.05 * np.cos(np.pi * x[0] / L), conductance=0.0,
                           thickness=0.5e-6)
        p = TransportProblem(dom, oxide, binary(2.6e-10, 4e-10, 1000.0), KineticsModel(exchange_current_density=0.0),
                             prefix="tol_")
        s = Stepper(p, StepControl(dt_initial=1e-3 * tau, dt_min=1e-9 * tau, dt_max=tau, tolerance=tol))
        s.advance_to(2 * tau)
        amplitude = p.integrate((p.theta_expr(p.u["w"]) - 0.5) * ufl.cos(np.pi * xs[0] / L), "oxide")
        runs[tol] = (amplitude, len(s.history))
        p.close()
    exact = runs[1e-10][0]
    err = {tol: abs(runs[tol][0] - exact) / abs(exact) for tol in (1e-5, 1e-7)}
    assert err[1e-7] < err[1e-5] / 10  # 100^(2/3) = 21.5 for the global error of local control
    assert err[1e-5] < 1e-2
    ratio = runs[1e-7][1] / runs[1e-5][1]
    assert 100 ** (1 / 3) / 1.6 < ratio < 100 ** (1 / 3) * 1.6  # 4.6 for second order (21 for first)


def test_an_end_emptied_by_the_drive_costs_newton_nothing(comm):
    """A drive of 1 V empties the film at one end to its bound (θ = e^−25): the nodes held there are
    an active set, not an unsolved residual, so Newton keeps converging in a few iterations per step
    and the species stay conserved."""
    p = closed_cell(comm, nx=20, drive=1.0)
    totals = p.totals()
    li0 = totals["oxide"] + totals["Li"]
    s = Stepper(p, StepControl(dt_initial=0.1, dt_min=1e-6, dt_max=20.0, tolerance=1e-3))
    s.advance_to(600.0)
    theta = 1 / (1 + np.exp(-p.u["w"].x.array))
    assert comm.allreduce(float(theta.min(initial=1.0)), op=MPI.MIN) < 1e-8  # emptied (from 0.1)
    late = [r for r in s.history if r.t > 300.0]
    assert late and np.mean([r.newton_iterations for r in late]) <= 4.0
    assert max(r.dt for r in late) >= 10.0  # the step is not held back by the emptied end
    totals = p.totals()
    assert abs(totals["oxide"] + totals["Li"] - li0) / li0 < 1e-12


@pytest.mark.parametrize("law, params", [("butler_volmer", {}), ("marcus", {"reorganization": 19.5}),
                                         ("mhc", {"reorganization": 19.5})])
def test_an_emptied_film_refills_at_the_rate_of_its_law(comm, law, params):
    """A film emptied to θ = 1e-9, its electrode held 0.1 V below the formal potential (ξ = −3.9) and
    the electrolyte at φ_l ≈ 0 by a fast counter electrode, takes Li back at the insertion rate of
    its law, i0_ref/F · r_in(ξ, θ → 0) (femion.laws.kinetics.reaction_rates): after 2 s the film's
    mean filling is that rate × t / (c_max t_ox) within 2 % for Butler–Volmer, Marcus and MHC
    (with the symmetric √(θ(1−θ)) prefactor MHC inserted ~1e-3 of it)."""
    L, tox, hel, i0 = 1e-4, 0.5e-6, 5e-6, 0.1
    dom = section(comm, 4, 2, 4, length=L, t_ox=tox, h_el=hel, top=True)
    U0 = 3.0
    oxide = OxideModel(c_max=1.3e4, diffusivity=lambda th, xp: 1e-14,
                       open_circuit_potential=lambda th, xp: ideal_U(th, xp, U0), theta_initial=1e-9,
                       conductance=0.125, thickness=tox)
    phi_e = U0 - 0.1
    contacts = [(lambda x: np.isclose(x[0], 0.0), phi_e), (lambda x: np.isclose(x[0], L), phi_e)]
    p = TransportProblem(dom, oxide, binary(2.6e-10, 4e-10, 1000.0),
                         KineticsModel(law=law, exchange_current_density=i0, params=params),
                         electron_contacts=contacts, top=TopElectrode(potential=0.0, exchange_current_density=1e4),
                         prefix=f"refill_{law}_")
    t_end = 2.0
    for _ in range(4):
        p.step(t_end / 4, order=1)
    theta_mean = p.totals()["oxide"] / (oxide.c_max * tox * L)
    xi = (phi_e - U0) / RT_F
    th0 = 1e-12  # the rate into an empty film: at fixed electrode potential η̃ = ξ − ln((1−θ)/θ)
    bv = {"alpha_a": 0.5, "alpha_c": 0.5} if law == "butler_volmer" else params
    r_in = reaction_rates(law, xi - np.log((1 - th0) / th0), th0, 1.0, **bv)[0]
    expected = i0 / FARADAY * r_in * t_end / (oxide.c_max * tox)
    assert theta_mean == pytest.approx(expected, rel=0.02)
    assert expected > 1e-3  # a refill, not round-off
    p.close()
