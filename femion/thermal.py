"""Joule heating of the driven conductor sheets and the temperature of the layer stack (physics.md §7).

A driven ITO sheet dissipates, per unit plan area, q = G|∇φ_s|² (W/m², G = 1/R_s the sheet
conductance), ∫q dA = I²R. The stack (glass, ITO, oxide, electrolyte, top ITO, top glass) then obeys

    ρc_p ∂T/∂t = ∇·(k∇T) + s            in the stack (2D x–z section or 3D),
    −k∇T·n = h (T − T_∞)                 on its outer faces,
    T = T_∞                              on clamped faces (copper clamps as heat sinks, optional),

with s = q/t in the cells of a sheet of thickness t (a surface source smeared over its one layer of
cells) and h = h_conv + 4εσT_∞³ (natural convection plus linearised radiation). Steady, or backward
Euler in time. A 2D section is a plate infinite in y (per metre of width).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from femion._dolfinx import MPI, PETSc, dolfinx, ufl
from femion.constants import STEFAN_BOLTZMANN


def joule_heat_flux(potential: dolfinx.fem.Function, sheet_conductance: float) -> dolfinx.fem.Function:
    """q = G|∇φ_s|² (W/m²) of a sheet with potential φ_s (V, P1) and conductance G (S), as a DG0
    function on the sheet's plan mesh (cell averages: ∫q dA = ∫G|∇φ_s|² dA = I²R exactly)."""
    msh = potential.function_space.mesh
    Q = dolfinx.fem.functionspace(msh, ("DG", 0))
    q = dolfinx.fem.Function(Q, name="joule_heat_flux")
    g = ufl.grad(potential)
    expr = dolfinx.fem.Expression(sheet_conductance * ufl.inner(g, g), Q.element.interpolation_points)
    q.interpolate(expr)
    return q


def radiative_coefficient(emissivity: float, T_ambient: float) -> float:
    """h_rad = 4εσT_∞³ (W m⁻² K⁻¹): radiation εσ(T⁴ − T_∞⁴) linearised about T_∞ (6.0 W/m²K at ε = 1, 298 K)."""
    return 4.0 * emissivity * STEFAN_BOLTZMANN * T_ambient**3


@dataclass(frozen=True)
class ThermalMaterial:
    """Thermal conductivity k (W m⁻¹ K⁻¹), density ρ (kg m⁻³) and specific heat c_p (J kg⁻¹ K⁻¹)."""

    conductivity: float
    density: float
    heat_capacity: float

    @property
    def volumetric_heat_capacity(self) -> float:
        """ρc_p (J m⁻³ K⁻¹)."""
        return self.density * self.heat_capacity


class TemperatureField(dolfinx.fem.Function):
    """T (K) as a P1 field on a mesh, usable wherever the uniform temperature Constant was: in UFL
    it is the field; its ``value`` (numpy-side estimates, such as a starting guess for a potential)
    is the mean of its nodal values on all ranks (collective), and setting ``value`` makes it
    uniform."""

    def __init__(self, mesh, T: float):
        super().__init__(dolfinx.fem.functionspace(mesh, ("Lagrange", 1)), name="T")
        self.value = T

    @property
    def value(self) -> float:
        n = self.function_space.dofmap.index_map.size_local
        comm = self.function_space.mesh.comm
        total = comm.allreduce(float(self.x.array[:n].sum()), op=MPI.SUM)
        return total / comm.allreduce(n, op=MPI.SUM)

    @value.setter
    def value(self, T: float) -> None:
        self.x.array[:] = float(T)


class ThermalSolveError(RuntimeError):
    """The linear solve of the heat equation failed."""


def stack_properties(mesh, cell_tags, cell_materials: dict[int, ThermalMaterial]) -> tuple[np.ndarray, np.ndarray]:
    """(k, ρc_p) per local cell (owned and ghost) of a stack mesh from {cell tag: ThermalMaterial};
    ValueError if a cell has none."""
    tdim = mesh.topology.dim
    imap = mesh.topology.index_map(tdim)
    k, rho_cp = np.full(imap.size_local + imap.num_ghosts, np.nan), np.full(imap.size_local + imap.num_ghosts, np.nan)
    for tag, mat in cell_materials.items():
        cells = cell_tags.find(tag)
        k[cells], rho_cp[cells] = mat.conductivity, mat.volumetric_heat_capacity
    missing = mesh.comm.allreduce(int(np.isnan(k).sum()), op=MPI.SUM)
    if missing:
        raise ValueError(f"{missing} cells of the stack have no thermal material")
    return k, rho_cp


def plate_properties(layers: list[tuple[float, ThermalMaterial, np.ndarray]], n_cells: int,
                     fill: ThermalMaterial) -> tuple[np.ndarray, np.ndarray]:
    """(K = Σ k_i t_i in W/K, C = Σ ρ_i c_p,i t_i in J m⁻² K⁻¹) per plan cell of a plate whose
    layers are (thickness t_i, material, the plan cells it covers); where a layer is absent its
    thickness holds ``fill`` (still air)."""
    K, C = np.zeros(n_cells), np.zeros(n_cells)
    for t, mat, cells in layers:
        here = np.zeros(n_cells, dtype=bool)
        here[cells] = True
        K += t * np.where(here, mat.conductivity, fill.conductivity)
        C += t * np.where(here, mat.volumetric_heat_capacity, fill.volumetric_heat_capacity)
    return K, C


class HeatProblem:
    """The heat equation of the module docstring for the temperature T (K, P1) on ``mesh``:

        c ∂T/∂t = ∇·(k∇T) + s − h_f (T − T∞)   in the mesh,   −k∇T·n = h (T − T∞) on its boundary.

    A stack (2D section or 3D): k (W m⁻¹ K⁻¹) and c = ρc_p (J m⁻³ K⁻¹) per cell
    (:func:`stack_properties`), s in W/m³, h_f = 0. A plate on its plan mesh (the thin-film limit,
    Biot number hH/k ≪ 1): k → K = Σk_i t_i (W/K), c → C = Σρ_i c_p,i t_i (J m⁻² K⁻¹)
    (:func:`plate_properties`), s = q in W/m², h_f = 2h for its two faces and h → hH on its edges.
    ``fixed``: boundary facets held at T∞ (or None); ``T_ambient``: T∞ (K), also the initial T.
    """

    def __init__(self, mesh, conductivity: np.ndarray, heat_capacity: np.ndarray, h: float, T_ambient: float, *,
                 face_loss: float = 0.0, fixed: np.ndarray | None = None, prefix: str = "femion_heat_"):
        self.mesh, self.T_ambient = mesh, float(T_ambient)
        tdim = mesh.topology.dim
        DG = dolfinx.fem.functionspace(mesh, ("DG", 0))
        self.k = dolfinx.fem.Function(DG, name="thermal_conductivity")
        self.rho_cp = dolfinx.fem.Function(DG, name="heat_capacity")
        self.source = dolfinx.fem.Function(DG, name="heat_source")  # s, W/m³ (stack) or W/m² (plate)
        self.k.x.array[:] = conductivity
        self.rho_cp.x.array[:] = heat_capacity
        V = dolfinx.fem.functionspace(mesh, ("Lagrange", 1))
        self.T = dolfinx.fem.Function(V, name="T")
        self.T.x.array[:] = self.T_ambient
        self._T_old = dolfinx.fem.Function(V)
        self.t = 0.0
        self.h = dolfinx.fem.Constant(mesh, float(h))
        self.h_f = dolfinx.fem.Constant(mesh, float(face_loss))
        self._inv_dt = dolfinx.fem.Constant(mesh, 0.0)  # 1/Δt; 0: steady
        T_inf = dolfinx.fem.Constant(mesh, self.T_ambient)
        u, v = ufl.TrialFunction(V), ufl.TestFunction(V)
        a = ((self._inv_dt * self.rho_cp + self.h_f) * u * v + self.k * ufl.inner(ufl.grad(u), ufl.grad(v))) * ufl.dx \
            + self.h * u * v * ufl.ds
        L = (self._inv_dt * self.rho_cp * self._T_old * v + (self.source + self.h_f * T_inf) * v) * ufl.dx \
            + self.h * T_inf * v * ufl.ds
        bcs = []
        if fixed is not None:
            mesh.topology.create_connectivity(tdim - 1, tdim)
            dofs = dolfinx.fem.locate_dofs_topological(V, tdim - 1, np.asarray(fixed, dtype=np.int32))
            bcs = [dolfinx.fem.dirichletbc(PETSc.ScalarType(self.T_ambient), dofs, V)]
        self._fixed = bcs
        self._problem = dolfinx.fem.petsc.LinearProblem(
            a, L, bcs=bcs, u=self.T, petsc_options_prefix=prefix,
            petsc_options={"ksp_type": "preonly", "pc_type": "lu", "pc_factor_mat_solver_type": "mumps"})
        self._loss = dolfinx.fem.form(self.h * (self.T - T_inf) * ufl.ds + self.h_f * (self.T - T_inf) * ufl.dx)
        self._input = dolfinx.fem.form(self.source * ufl.dx)
        self._stored = dolfinx.fem.form(self.rho_cp * (self.T - T_inf) * ufl.dx)
        # the mean rise, measured after every heat step: compiled once
        self._rise = dolfinx.fem.form((self.T - T_inf) * ufl.dx)
        self._volume = self._sum(dolfinx.fem.form(dolfinx.fem.Constant(mesh, 1.0) * ufl.dx))

    def close(self) -> None:
        """Destroy the solver's PETSc objects now, on every rank together (a collector run on one
        rank alone, e.g. while rank 0 draws, would otherwise destroy them there and hang)."""
        p = self._problem
        for obj in (p.solver, p.A, p.b, p.x):
            if obj is not None:
                obj.destroy()

    def set_source(self, density: Callable[[np.ndarray], np.ndarray] | None) -> None:
        """s(x) (W/m³) at cell midpoints ``x`` (3, N) of the stack mesh; None: no source."""
        if density is None:
            self.source.x.array[:] = 0.0
        else:
            self.source.interpolate(density)
        self.source.x.scatter_forward()

    def _solve(self) -> None:
        self._problem.solve()
        reason = self._problem.solver.getConvergedReason()
        if reason <= 0 or not np.all(np.isfinite(self.T.x.array)):
            raise ThermalSolveError(f"heat equation solve failed (KSP reason {reason})")
        self.T.x.scatter_forward()

    def steady(self) -> dolfinx.fem.Function:
        """The steady temperature under the present source."""
        self._inv_dt.value = 0.0
        self._solve()
        return self.T

    def step(self, dt: float) -> dolfinx.fem.Function:
        """One backward-Euler step of ``dt`` (s)."""
        self.T.x.petsc_vec.copy(self._T_old.x.petsc_vec)
        self._T_old.x.scatter_forward()
        self._inv_dt.value = 1.0 / dt
        self._solve()
        self.t += dt
        return self.T

    def _sum(self, form) -> float:
        return self.mesh.comm.allreduce(dolfinx.fem.assemble_scalar(form), op=MPI.SUM)

    def heat_loss(self) -> float:
        """∫ h (T − T_∞) ds over the outer faces (W; per metre of width in a 2D section); the heat
        drawn by clamped faces is not in it."""
        return self._sum(self._loss)

    def heat_input(self) -> float:
        """∫ s dx (W; per metre of width in a 2D section)."""
        return self._sum(self._input)

    def stored_heat(self) -> float:
        """∫ ρc_p (T − T_∞) dx (J; per metre of width in a 2D section)."""
        return self._sum(self._stored)

    def extremes(self) -> tuple[float, float]:
        """(max T − T_∞, volume-mean T − T_∞) in K."""
        n = self.T.function_space.dofmap.index_map.size_local
        local = float(self.T.x.array[:n].max(initial=-np.inf))
        top = self.mesh.comm.allreduce(local, op=MPI.MAX) - self.T_ambient
        return top, self._sum(self._rise) / self._volume
