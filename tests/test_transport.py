"""Coupled transport: manufactured solutions, conservation, parallel agreement, analytic limits."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.constants import R as GAS, physical_constants

from femion._dolfinx import MPI, dolfinx, ufl
from femion.timestepping import StepControl, StepFailure, Stepper
from femion.transport import (
    ElectrolyteModel,
    Ion,
    KineticsModel,
    OxideModel,
    TransportDomain,
    TransportProblem,
)

FARADAY = physical_constants["Faraday constant"][0]
T = 298.15
RT_F = GAS * T / FARADAY


def section(comm, nx, n_ox, n_el, length=1.0, t_ox=1.0, h_el=1.0, cell=dolfinx.mesh.CellType.quadrilateral):
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
    return TransportDomain(msh, ox, el, gam)


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
        eta = f_RT * (phi - ideal_U(th, _UFLX)) - psi
        i0 = exchange * FARADAY * c**0.5 * ((1 - th) / 0.5) ** 0.5 * (th / 0.5) ** 0.5
        j = i0 / FARADAY * (ufl.exp(-0.5 * eta) - ufl.exp(0.5 * eta))
        return {
            "oxide": dth + ufl.div(N_ox),
            "Li": dc + ufl.div(N_p),
            "charge": ufl.div(N_p - N_m),
            "electron": -ufl.div(ufl.grad(phi)),
            "interface_oxide": -ufl.dot(N_ox, n) - j,
            "interface_Li": j + ufl.dot(N_p, n),
            "interface_charge": j + ufl.dot(N_p - N_m, n),
            "interface_electron": ufl.dot(ufl.grad(phi), n) + FARADAY * j,
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


class _UFLX:
    log = staticmethod(ufl.ln)


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
