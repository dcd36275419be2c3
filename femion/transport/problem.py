"""The coupled transport problem of one time step, composed of the parts in this package.

What is solved (equations, units) is in models.py; the residual blocks are in terms.py, the
Dirichlet sets in constraints.py, the Newton in newton.py. :meth:`TransportProblem.initialise`
builds it in named steps; the public methods advance it, set its controls and measure it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from types import SimpleNamespace

import numpy as np

from femion._dolfinx import MPI, PETSc, dolfinx, ufl
from femion.constants import FARADAY, GAS_CONSTANT
from femion.laws.kinetics import ufl_math
from femion.transport import terms
from femion.transport.bfield import MagneticField, max_hall_parameter
from femion.transport.conservation import SpeciesBalance
from femion.transport.constraints import Constraints, nonlinear_problem
from femion.transport.domain import EL, GAMMA, OX, TransportDomain
from femion.transport.fields import Fields

# the models and TransportSolveError stay importable from here (femion.transport.problem.X)
from femion.transport.models import ElectrolyteModel, Ion, KineticsModel, LorentzModel, OxideModel, TopElectrode  # noqa: F401
from femion.transport.newton import BoundedNewton, TransportSolveError  # noqa: F401
from femion.transport.shell import ShellDomain


class TransportProblem:
    """The coupled nonlinear problem for one time step (see module doc).

    ``temperature``: K, a number, a dolfinx Constant or a field (femion.thermal.TemperatureField)
    on ``domain.mesh`` (then shared with the laws that take it, e.g. the host's U(θ));
    :attr:`before_step` (t_new → None), if set, is called as each step begins, e.g. to set the
    temperature at the step's end time; ``electron_contacts``: [(locate(x), V)];
    ``dirichlet``: {field: (locate(x), value(x, t))}; ``sources``: manufactured sources, a dict of
    UFL or (x, t) → dict (terms.manufactured_sources); ``magnetic_field``: x → B(x) (T);
    ``linear_solver``: the Newton's linear solves, ``direct`` (MUMPS) or ``iterative`` (GMRES on a
    field split: transport/linear.py); ``petsc_options``: options added to those (no prefix).
    """

    def __init__(
        self,
        domain: TransportDomain | ShellDomain,
        oxide: OxideModel,
        electrolyte: ElectrolyteModel,
        kinetics: KineticsModel,
        *,
        temperature: float | dolfinx.fem.Constant | dolfinx.fem.Function = 298.15,
        top: TopElectrode | None = None,
        electron_contacts: Sequence[tuple[Callable, float]] = (),
        sources: dict | Callable | None = None,
        dirichlet: dict | None = None,
        electrolyte_initial: dict[str, Callable] | None = None,
        prefix: str = "femion_transport_",
        quadrature_degree: int = 4,
        lumped_mass: bool = True,
        magnetic_field: Callable[[np.ndarray], np.ndarray] | None = None,
        lorentz: LorentzModel | None = None,
        linear_solver: str = "direct",
        petsc_options: dict | None = None,
    ):
        self.domain, self.oxide, self.electrolyte, self.kinetics = domain, oxide, electrolyte, kinetics
        self.top_electrode = top
        self.lorentz = lorentz or LorentzModel()
        self.comm = domain.mesh.comm
        self._given = SimpleNamespace(temperature=temperature, contacts=list(electron_contacts), sources=sources,
                                      dirichlet=dirichlet, electrolyte_initial=electrolyte_initial or {},
                                      magnetic_field=magnetic_field, prefix=prefix, linear_solver=linear_solver,
                                      petsc_options=dict(petsc_options or {}),
                                      quadrature={"quadrature_degree": quadrature_degree, "lumped_mass": lumped_mass})
        self.initialise()

    def initialise(self) -> None:
        """Build the problem, each step from what the ones before made."""
        self._define_measures()
        self._define_fields()
        self._define_constants()
        self._define_magnetic_field()
        self._set_initial_state()
        self._define_formulation()
        self._define_constraints()
        self._define_solver()
        self._define_balance()

    # ------------------------------------------------------------ initialise steps
    def _define_measures(self) -> None:
        has_top = self.top_electrode is not None
        self.measures = m = self.domain.measures(top=has_top, **self._given.quadrature)
        self.ox_mesh, self.el_mesh, self.entity_maps = m.ox_mesh, m.el_mesh, m.entity_maps
        self.dx, self.dx_mass, self.dS, self.ds = m.dx, m.dx_mass, m.dS, m.ds

    def _define_fields(self) -> None:
        top = self.top_electrode
        # a shell (no through-film axis) carries the filling at the film's face beside its mean
        self.fields = Fields(self.domain.mesh, self.ox_mesh, self.el_mesh, self.oxide, self.electrolyte,
                             store_psi=top is not None and top.capacitance > 0,
                             surface_filling=self.measures.through_axis is None)
        self.u, self.spaces, self.names = self.fields.u, self.fields.spaces, self.fields.names

    def _define_constants(self) -> None:
        msh = self.domain.mesh
        T = self._given.temperature
        #: temperature (K), uniform or a field: every form sees it through RT/F, Arrhenius and the host law
        self.temperature = T if isinstance(T, (dolfinx.fem.Constant, dolfinx.fem.Function)) \
            else dolfinx.fem.Constant(msh, float(T))
        self.f_RT = FARADAY / (GAS_CONSTANT * self.temperature)  # F/(RT), 1/V (UFL)
        self.dt = dolfinx.fem.Constant(msh, 1.0)
        self.time = dolfinx.fem.Constant(msh, 0.0)  # t at the new level (for sources)
        #: 1 with electrolyte on the film, 0 once it is removed; 1 while the counter electrode is connected
        self.exchange_on = dolfinx.fem.Constant(msh, PETSc.ScalarType(1.0))
        self.top_connected = dolfinx.fem.Constant(msh, PETSc.ScalarType(1.0))
        self.t = 0.0
        self.before_step: Callable[[float], None] | None = None
        self._monitors = None  # compiled forms of the per-step measurements (_monitor_forms)

    @property
    def f_RT_value(self) -> float:
        """F/(RT) (1/V) at the temperature's present value, for numpy-side guesses."""
        return FARADAY / (GAS_CONSTANT * float(self.temperature.value))

    def _define_magnetic_field(self) -> None:
        self.magnetic = MagneticField(self.ox_mesh, self.el_mesh, self.comm)
        self.B = self.magnetic.B  # magnetic flux density (T) as 3-vectors on both submeshes
        if self._given.magnetic_field is not None:
            self.magnetic.set(self._given.magnetic_field)
        self.max_B = self.magnetic.max_norm()
        #: largest Hall parameter |β| = |z| F D |B| / RT over the ions (reported whether or not the
        #: bulk term is switched on)
        self.max_hall_parameter = max_hall_parameter(self.electrolyte.ions, self.max_B, float(self.temperature.value))

    def _set_initial_state(self) -> None:
        g = self._given
        self.fields.set_initial(g.electrolyte_initial, [v for _, v in g.contacts], self.top_electrode,
                                self.f_RT_value, self.comm)

    def _define_formulation(self) -> None:
        """The residual: the blocks of terms.py, summed in a fixed order."""
        f, m, xp = self.fields, self.measures, ufl_math()
        ox, el, dt, T, f_RT = self.oxide, self.electrolyte, self.dt, self.temperature, self.f_RT
        ex = terms.exchange_flux(f, m, ox, el, self.kinetics, f_RT=f_RT, T=T, exchange_on=self.exchange_on, xp=xp)
        self.j, self.z_ex = ex.j, ex.z
        F = terms.oxide_balance(f, m, ox, ex.j, dt, xp)
        if self.lorentz.closure:
            F -= terms.lorentz_closure(f, m, self.lorentz, self.B["oxide"], ex, dt, ox.c_max, xp)
        conc = f.concentration_exprs(f.u)
        flux = terms.nernst_planck_fluxes(conc, f.u["psi"], el, self.lorentz, self.B["electrolyte"], T,
                                          self.domain.mesh.geometry.dim, xp)
        if el.poisson:
            F += terms.poisson(f, m, el, conc, f_RT)
        else:
            F += terms.charge_balance(f, m, el, flux, ex.j, ex.z, dt)
        F += terms.ion_balances(f, m, el, conc, flux, ex.j, dt)
        self.sigma, sig, e_scale = terms.electron_conductivity(ox, m, self.domain.oxide_cells, self.comm)
        F += terms.electron_conduction(f, m, sig, e_scale, ex.j, ex.z)
        self.j_top = None
        if m.ds is not None:
            top = self.top_electrode
            #: the counter electrode's potential φ_top (V) on the electrolyte mesh: uniform, or the
            #: driven top sheet's φ_s(x) (seed 000 Model IV); a protocol sets it
            self.top_potential = dolfinx.fem.Function(self.spaces["psi"], name="phi_top")
            self.top_potential.x.array[:] = top.potential
            c_ex = el.ion(el.exchanging).concentration
            self.j_top = terms.top_exchange_flux(conc[el.exchanging], f.u["psi"], top, ex.z, c_ex, f_RT,
                                                 self.top_potential, self.top_connected)
            F += terms.top_electrode(f, m, el, self.j_top, ex.z, dt)
            if not el.poisson and top.capacitance > 0:
                F += terms.double_layer(f, m, top, self.top_connected, f_RT)
        if f.cahn_hilliard:
            F += terms.chemical_potential(f, m, ox, f_RT, T, xp)
        if "w_s" in f.u:
            F += terms.surface_filling(f, m, ox, ex.j, xp)
        sources = self._given.sources
        if callable(sources):  # manufactured solutions: sources(x, t) with UFL x and t
            sources = sources(ufl.SpatialCoordinate(self.domain.mesh), self.time)
        if sources:
            F -= terms.manufactured_sources(sources, f, m, ox, el, dt, e_scale)
        self.residual = F

    def _define_constraints(self) -> None:
        self.constraints = Constraints(
            self.fields, {"psi": self.el_mesh, "phi_e": self.ox_mesh}, self.domain.mesh.geometry.dim, self.comm,
            electron_contacts=self._given.contacts, dirichlet=self._given.dirichlet,
            no_exchange=self.kinetics.exchange_current_density == 0.0, has_top=self.ds is not None)
        self.contact_potentials = self.constraints.contact_potentials

    def _define_solver(self) -> None:
        # Residual rows are (change of concentration / reference) x cell volume, so an absolute
        # tolerance has to follow the size of the domain: 1e-14 of its volume.
        one = dolfinx.fem.Constant(self.domain.mesh, 1.0)
        self.volume = self.integrate(one, "oxide") + self.integrate(one, "electrolyte")
        self.newton = BoundedNewton(self.names, self.spaces, self.comm, self.volume, self._given.linear_solver)
        self._activate()

    def _define_balance(self) -> None:
        # manufactured sources, or species held at given values on a boundary (an open end: a
        # verification set-up), exchange amounts with the outside: no balance to keep there
        open_ends = any(n == "w" or n.startswith("u_") for n in (self._given.dirichlet or {}))
        self.balance = None if self._given.sources or open_ends else SpeciesBalance(self)

    def _activate(self) -> None:
        """Use the nonlinear problem whose Dirichlet set matches the controls (made once each)."""
        exchange = float(self.exchange_on.value) > 0
        top = self.j_top is not None and float(self.top_connected.value) > 0
        self.constraints.select(self.u, exchange, top, lambda bcs, n: nonlinear_problem(
            self.residual, [self.u[name] for name in self.names], bcs, self.entity_maps, f"{self._given.prefix}{n}_",
            self.volume, self.newton.converged, self._given.linear_solver, self._given.petsc_options))

    # ------------------------------------------------------------ stepping
    def step(self, dt: float, order: int = 1, dt_prev: float | None = None, budget: int | None = None) -> int:
        """Advance by ``dt`` (s); BDF2 when ``order`` = 2 and a previous step exists; ``budget``:
        at most that many Newton iterations and no second attempt (for a caller that would rather
        take a smaller step).

        Returns Newton iterations; raises TransportSolveError (state restored) on failure.
        """
        if self.before_step is not None:
            self.before_step(self.t + dt)
        self.fields.set_bdf(dt, order, dt_prev)
        self.dt.value = dt
        self.time.value = self.t + dt
        self.constraints.set_time(self.t + dt)
        saved = self.fields.values()

        def start():  # the state at the step's start, with the active Dirichlet values
            self.fields.set_values(saved)
            self.constraints.apply(self.u)

        start()
        its = self.newton.solve_step(self.constraints.problem, [self.u[n] for n in self.names], start,
                                     restore=lambda: self.fields.set_values(saved),
                                     what=f"transport step of {dt:.3g} s at t = {self.t:.6g} s", budget=budget)
        if self.balance is not None:
            self.balance.correct(dt)  # the species balance to round-off, not to Newton's floor
        self.fields.accept(dt)
        self.t += dt
        return its

    # ------------------------------------------------------------ state
    def close(self) -> None:
        """Free the solvers (and with them the meshes) now; the problem cannot step afterwards."""
        self._monitors = None
        self.constraints.close()

    def __enter__(self) -> TransportProblem:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def snapshot(self) -> dict:
        """The full state (copies): unknowns, BDF history and time. :meth:`restore` puts it back."""
        return {"t": self.t, **self.fields.snapshot()}

    def restore(self, snapshot: dict) -> None:
        """Put back a state taken by :meth:`snapshot`."""
        self.t = snapshot["t"]
        self.fields.restore(snapshot)

    def restart_at_first_order(self) -> None:
        """The next step is BDF1 (the controls jumped: the older level no longer applies)."""
        self.fields.restart()

    def reset_history(self) -> None:
        """Make the present state the whole history (a state set by hand starts from rest)."""
        self.fields.reset_history()

    # ------------------------------------------------------------ controls
    @property
    def contacts_connected(self) -> tuple[bool, ...]:
        return self.constraints.contacts_connected

    def set_contacts_connected(self, connected: bool | Sequence[bool]) -> None:
        """Connect the electron contacts (drive on) or leave the conductor floating (drive off):
        one flag for all, or one per contact in the order they were given."""
        n = len(self.contact_potentials)
        flags = (bool(connected),) * n if np.ndim(connected) == 0 else tuple(bool(c) for c in connected)
        if len(flags) != n:
            raise ValueError(f"expected {n} contact flags, got {len(flags)}")
        self.constraints.contacts_connected = flags
        self._activate()

    def set_contact_potentials(self, values: Sequence[float]) -> None:
        """New potentials (V) of the electron contacts, in the order they were given."""
        if len(values) != len(self.contact_potentials):
            raise ValueError(f"expected {len(self.contact_potentials)} contact potentials, got {len(values)}")
        for c, v in zip(self.contact_potentials, values, strict=False):
            c.value = v

    def set_top_potential(self, value: float | Callable[[np.ndarray], np.ndarray]) -> None:
        """Potential φ_top (V) of the counter electrode on the electrolyte's top face: a number, or
        x → φ_top(x) (a driven top sheet). Connects the electrode."""
        if self.j_top is None:
            raise ValueError("this problem has no counter electrode")
        if callable(value):
            self.top_potential.interpolate(lambda x: np.asarray(value(x), dtype=float))
        else:
            self.top_potential.x.array[:] = value
        self.top_potential.x.scatter_forward()
        self.top_connected.value = 1.0
        self._activate()

    def set_top_connected(self, connected: bool) -> None:
        """Connect the counter electrode to its source, or leave it open (no current at all)."""
        if self.j_top is None:
            if connected:
                raise ValueError("this problem has no counter electrode")
            return
        self.top_connected.value = 1.0 if connected else 0.0
        self._activate()

    def set_magnetic_field(self, field: Callable[[np.ndarray], np.ndarray] | dict) -> None:
        """New B (T): x → B(x) ((3, N)), or {"oxide": array, "electrolyte": array} of nodal 3-vectors."""
        self.magnetic.set(field)
        self.max_B = max(self.max_B, self.magnetic.max_norm())
        self.max_hall_parameter = max_hall_parameter(self.electrolyte.ions, self.max_B, float(self.temperature.value))

    def set_exchange(self, on: bool) -> None:
        """Switch the oxide|electrolyte exchange on (electrolyte coated) or off (removed)."""
        self.exchange_on.value = 1.0 if on else 0.0
        self._activate()

    # ------------------------------------------------------------ diagnostics
    theta_expr = staticmethod(Fields.theta_expr)

    def concentration_exprs(self, u: dict) -> dict:
        """c_i (mol/m³) of every ion as UFL, the eliminated one by electroneutrality."""
        return self.fields.concentration_exprs(u)

    def integrate(self, expr, where: str, mass: bool = False) -> float:
        """∫ expr over the oxide ("oxide"), electrolyte ("electrolyte") or Γ ("interface");
        ``mass=True`` uses the (lumped) quadrature of the time-derivative terms, under which the
        species totals are conserved exactly."""
        return self._assemble(self._integral_form(expr, where, mass))

    def _integral_form(self, expr, where: str, mass: bool = False):
        dx = self.dx_mass if mass else self.dx
        measure = {"oxide": dx(OX), "electrolyte": dx(EL), "interface": self.dS(GAMMA)}[where]
        return dolfinx.fem.form(expr * measure, entity_maps=self.entity_maps)

    def _assemble(self, form) -> float:
        return self.comm.allreduce(dolfinx.fem.assemble_scalar(form), op=MPI.SUM)

    def _monitor_forms(self) -> dict:
        """The compiled forms of :meth:`totals` and :meth:`exchange_current`, made once: they are
        measured after every step, and making a form costs more than assembling it."""
        if self._monitors is None:
            conc = self.concentration_exprs(self.u)
            forms = {"oxide": self._integral_form(self.oxide.c_max * self.theta_expr(self.u["w"]), "oxide", True)}
            forms.update({name: self._integral_form(c, "electrolyte", True) for name, c in conc.items()})
            self._monitors = {"totals": forms,
                              "exchange": self._integral_form(self.z_ex * FARADAY * self.j, "interface")}
        return self._monitors

    def totals(self) -> dict[str, float]:
        """Amount (mol, or mol per metre of width in a 2D section) of each species in each domain."""
        return {name: self._assemble(f) for name, f in self._monitor_forms()["totals"].items()}

    def counter_electrode_release(self) -> float:
        """Cation released by the counter electrode into the electrolyte, ∫ j_top ds (mol/s, or
        mol s⁻¹ m⁻¹ in a section); 0 without one."""
        return 0.0 if self.balance is None else self.balance.top_source()

    def exchange_current(self) -> float:
        """Total faradaic current into the oxide, zF∫j dΓ (A, or A/m in a section)."""
        return self._assemble(self._monitor_forms()["exchange"])
