"""What a transport run records: the declared output fields at the output times, a row of
transport.csv after every step, and the conservation monitor.

The transport.csv columns are a public contract (README): t_s, stage, dt_s, newton_iterations,
exchange_current_A, theta_min, theta_max, <species>_mol, total_<exchanged>_mol and the min/max of
every ion's concentration. A 2D x–z section stands for a metre of the plate's width: its current
and amounts are per metre, and their columns say so (exchange_current_A_per_m, <species>_mol_per_m,
total_<exchanged>_mol_per_m).
"""

from __future__ import annotations

import numpy as np

from femion._dolfinx import MPI, dolfinx
from femion.constants import FARADAY, GAS_CONSTANT
from femion.results.writer import CsvSeries, FieldSeries
from femion.runner import interrupts
from femion.transport.stepping import StepFailure


class ConservationMonitor:
    """Worst relative drift of what must be conserved, and the lowest concentration seen.

    The ions that are never exchanged are conserved always; the exchanged ion (film +
    electrolyte) while no external source feeds it (outside injection stages): each closed
    stretch after a source is measured from its own start.
    """

    def __init__(self, totals: dict, ions: list[str], exchanged: str):
        self.exchanged = exchanged
        self.conserved0 = {n: totals[n] for n in ions if n != exchanged}
        self.total0 = totals["oxide"] + totals[exchanged]
        self.closed = True
        self.drift = 0.0
        self.cmin = np.inf

    def exchanged_total(self, totals: dict) -> float:
        return sum(totals[k] for k in ("oxide", self.exchanged))

    def baseline(self, totals: dict) -> None:
        """The exchanged ion's total from here on is measured against ``totals``."""
        self.total0 = self.exchanged_total(totals)

    def enter(self, closed: bool, totals) -> None:
        """A stage begins; ``totals()`` gives the present totals if a new baseline is needed (a
        closed stage after a source fed the cell)."""
        if closed and not self.closed:
            self.baseline(totals())
        self.closed = closed

    def observe(self, totals: dict) -> float:
        """Update the drift with ``totals``; returns the exchanged ion's total (film + electrolyte)."""
        total = totals["oxide"] + totals[self.exchanged]
        for k, v0 in self.conserved0.items():
            self.drift = max(self.drift, abs(totals[k] - v0) / abs(v0))
        if self.closed:
            self.drift = max(self.drift, abs(total - self.total0) / abs(self.total0))
        return total


class Recorder:
    """The output fields (P1 interpolants of the state) written as two series, ``oxide`` and
    ``electrolyte`` (:attr:`fields` names them for summary.json), at the output times
    (:attr:`times`); a transport.csv row per step (:meth:`record`, the stepper's ``on_step``)."""

    def __init__(self, problem, writer, formats, comm, section_y: float | None = None):
        self.problem, self.comm = problem, comm
        self.section_y = section_y  # a 2D x–z section's y (m): its fields go out in the plate's frame
        self.per = "_per_m" if section_y is not None else ""  # a section's totals are per metre of width
        self.ions = [i.name for i in problem.electrolyte.ions]
        self.exchanged = problem.electrolyte.exchanging
        self._declare_fields()
        self.series = [FieldSeries(writer, "oxide", [self.theta, self.c_ox, self.phi_s], formats, section_y),
                       FieldSeries(writer, "electrolyte", [self.c_el[n] for n in self.ions] + [self.phi_l], formats,
                                   section_y)]
        self.fields = {"oxide": ["theta", "c_oxide", "phi_s"],
                       "electrolyte": [f"c_{n}" for n in self.ions] + ["phi_l"]}
        self.csv = CsvSeries(writer.path / "transport.csv", self._columns(), comm)
        self.monitor = ConservationMonitor(problem.totals(), self.ions, self.exchanged)
        self.stage = 0
        self.times = [0.0]
        self.progress = None  # femion.runner.progress.TransportProgress, told of every stage and step

    def add_series(self, group: str, functions: list, formats, writer) -> None:
        """One more series of fields (e.g. the stack's temperature T) written at the output times;
        the functions are kept up to date by their owner."""
        self.series.append(FieldSeries(writer, group, functions, formats, self.section_y))
        self.fields[group] = [f.name for f in functions]

    def _declare_fields(self) -> None:
        p = self.problem

        def P1(m, name):
            return dolfinx.fem.Function(dolfinx.fem.functionspace(m, ("Lagrange", 1)), name=name)

        self.theta, self.c_ox, self.phi_s = P1(p.ox_mesh, "theta"), P1(p.ox_mesh, "c_oxide"), P1(p.ox_mesh, "phi_s")
        self.c_el = {n: P1(p.el_mesh, f"c_{n}") for n in self.ions}
        self.phi_l = P1(p.el_mesh, "phi_l")
        conc = p.concentration_exprs(p.u)
        th_expr = p.theta_expr(p.u["w"])
        # φ_l = ψ RT/F: a temperature field lives on the parent mesh, and an Expression takes
        # coefficients of one mesh only, so it is carried to the electrolyte's mesh first
        self._T_el = None
        f_RT = p.f_RT
        if isinstance(p.temperature, dolfinx.fem.Function) and p.temperature.function_space.mesh is not p.el_mesh:
            self._T_el = P1(p.el_mesh, "T_electrolyte")
            n = p.el_mesh.topology.index_map(p.el_mesh.topology.dim)
            self._el_cells = np.arange(n.size_local + n.num_ghosts, dtype=np.int32)
            self._parent_cells = p.measures.el_map.sub_topology_to_topology(self._el_cells, inverse=False)
            f_RT = FARADAY / (GAS_CONSTANT * self._T_el)
        exprs = [(self.theta, th_expr), (self.c_ox, p.oxide.c_max * th_expr), (self.phi_s, p.u["phi_e"]),
                 (self.phi_l, p.u["psi"] / f_RT)] + [(self.c_el[n], conc[n]) for n in self.ions]
        self._compiled = [(f, dolfinx.fem.Expression(e, f.function_space.element.interpolation_points))
                          for f, e in exprs]

    def _columns(self) -> list[str]:
        ions = self.ions
        per = self.per
        return (["t_s", "stage", "dt_s", "newton_iterations", f"exchange_current_A{per}", "theta_min", "theta_max"]
                + [f"{k}_mol{per}" for k in ["oxide", *ions]] + [f"total_{self.exchanged}_mol{per}"]
                + [f"c_{n}_min_mol_m3" for n in ions] + [f"c_{n}_max_mol_m3" for n in ions])

    def update(self) -> None:
        """Interpolate the output fields from the present state."""
        if self._T_el is not None:
            self._T_el.interpolate(self.problem.temperature, cells0=self._parent_cells, cells1=self._el_cells)
            self._T_el.x.scatter_forward()
        for f, e in self._compiled:
            f.interpolate(e)
            f.x.scatter_forward()

    def _min(self, f) -> float:
        return self.comm.allreduce(float(f.x.array.min(initial=np.inf)), op=MPI.MIN)

    def _max(self, f) -> float:
        return self.comm.allreduce(float(f.x.array.max(initial=-np.inf)), op=MPI.MAX)

    def start(self) -> None:
        """The settled initial state: the conservation baseline, the first row, the fields at t = 0."""
        self.monitor.baseline(self.problem.totals())
        self.record(None)
        for f in self.series:
            f.write(0.0)

    def enter(self, stage) -> None:
        """A planned stage begins (its index goes into the rows)."""
        self.monitor.enter(stage.controls.closed, self.problem.totals)
        self.stage = stage.index
        if self.progress is not None:
            self.progress.stage(stage.index, stage.label, stage.t_start, stage.t_end)

    def record(self, rec) -> None:
        """One transport.csv row of the present state (``rec``: the step's record, None at the
        start); StepFailure on a non-physical concentration; a stop request is honoured here."""
        p, ions = self.problem, self.ions
        self.update()
        tot = p.totals()
        total = self.monitor.observe(tot)
        mins = {n: self._min(self.c_el[n]) for n in ions}
        if not all(np.isfinite(list(mins.values()))) or min(mins.values()) < 0:
            raise StepFailure(f"non-physical concentration at t = {p.t:g} s: {mins}", p.t)
        self.monitor.cmin = min(self.monitor.cmin, self._min(self.c_ox), *mins.values())
        row = {"t_s": p.t, "stage": self.stage, "dt_s": rec.dt if rec else 0.0,
               "newton_iterations": rec.newton_iterations if rec else 0,
               f"exchange_current_A{self.per}": p.exchange_current(), "theta_min": self._min(self.theta),
               "theta_max": self._max(self.theta), f"oxide_mol{self.per}": tot["oxide"],
               f"total_{self.exchanged}_mol{self.per}": total}
        row.update({f"{n}_mol{self.per}": tot[n] for n in ions})
        row.update({f"c_{n}_min_mol_m3": mins[n] for n in ions})
        row.update({f"c_{n}_max_mol_m3": self._max(self.c_el[n]) for n in ions})
        self.csv.row(row)
        if rec is not None and self.progress is not None:
            self.progress.step(p.t, rec.dt, rec.newton_iterations)
        if rec is not None:
            interrupts.check(self.comm, f"at t = {p.t:g} s")

    def output(self, t: float) -> None:
        """Write the output fields (interpolated at the last step) at output time ``t``."""
        for f in self.series:
            f.write(t)
        self.times.append(t)

    def output_last_state(self) -> None:
        """Write the present state as the last output (a run that stopped early)."""
        self.update()
        self.output(self.problem.t)

    def state(self) -> dict:
        """Where the record stands (for checkpoints): output times, rows, stage, the monitor."""
        m = self.monitor
        return {"times": list(self.times), "csv_rows": self.csv.rows, "stage": self.stage,
                "monitor": {"conserved0": m.conserved0, "total0": m.total0, "closed": m.closed,
                            "drift": m.drift, "cmin": m.cmin if np.isfinite(m.cmin) else None}}

    def load_state(self, state: dict, csv_source) -> None:
        """Continue from :meth:`state`; the first rows of transport.csv come from ``csv_source``."""
        self.times, self.stage = list(state["times"]), state["stage"]
        mon = state["monitor"]
        m = self.monitor
        m.conserved0, m.total0, m.closed, m.drift = mon["conserved0"], mon["total0"], mon["closed"], mon["drift"]
        m.cmin = np.inf if mon["cmin"] is None else mon["cmin"]
        self.csv.copy_rows(csv_source, state["csv_rows"])

    def rewrite_output(self, t: float) -> None:
        """Write the output fields of the present state at output time ``t`` (a resumed run
        rebuilding its field series from the checkpoints of its earlier output times)."""
        self.update()
        for f in self.series:
            f.write(t)

    def close(self) -> None:
        for f in self.series:
            f.close()
        self.csv.close()
