"""Run a case: geometry → conductor currents → magnetic field → results.

This module wires the physics modules together in the order of the design
chain. It reads no files and parses no options: the CLI hands it a validated
:class:`~femion.config.schema.Case` and an output directory.
"""

from __future__ import annotations

import platform
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from femion import __version__
from femion.transport import device
from femion.geometry import mesh as geometry
from femion.run import interrupts
from femion.geometry import plan
from femion.protocol import stages as protocol
from femion._dolfinx import MPI, PETSc, dolfinx
from femion.config import Case, dump_case
from femion.conductor import SheetSolution, solve_sheet
from femion.magnetic.biot_savart import magnetic_flux_density
from femion.results.io import CsvSeries, FieldSeries, ResultWriter
from femion.run.progress import Stages
from femion.transport.stepping import StepControl, StepFailure, Stepper
from femion.constants import FARADAY, GAS_CONSTANT
from femion.transport.problem import TransportSolveError

STAGES = ["mesh", "conductor", "magnetic field", "transport", "write fields", "figures"]


class RunStopped(RuntimeError):
    """The transport stopped early (``status`` "stopped": the step collapsed; "interrupted": by
    signal ``signum``); the results directory ``path`` holds the last good state."""

    def __init__(self, reason: str, path: Path, status: str = "stopped", signum: int = 0):
        super().__init__(f"{reason} (results with the last good state: {path})")
        self.reason, self.path, self.status, self.signum = reason, path, status, signum

    @property
    def exit_status(self) -> int:
        """1 for a solver failure, 128 + signal number for an interrupt (the shell's convention)."""
        return 128 + self.signum if self.signum else 1


@dataclass
class Stop:
    """Why a run ended early: ``status`` "stopped" (the step collapsed) or "interrupted"."""

    status: str
    reason: str
    signum: int = 0

    def error(self, path: Path) -> RunStopped:
        return RunStopped(self.reason, path, self.status, self.signum)


@dataclass
class Interface:
    """Where B is reported: the top of the oxide (under the electrolyte coverage)."""

    name: str
    z: float
    region: object  # shapely geometry of the plan region where the interface exists


def interface_of(case: Case) -> Interface:
    """The oxide|electrolyte interface, or the top of the first driven conductor if no oxide."""
    layers = case.geometry.layers
    zs = case.layer_z()
    plate = case.geometry.plate
    for i, layer in enumerate(layers):
        if layer.kind == "oxide":
            above = layers[i + 1] if i + 1 < len(layers) else None
            if above is not None and above.kind == "electrolyte":
                region = plan.pattern_geometry(above.pattern, plate).intersection(
                    plan.pattern_geometry(layer.pattern, plate)
                )
                return Interface(f"{layer.name}|{above.name}", zs[layer.name][1], region)
            return Interface(f"{layer.name}|top", zs[layer.name][1], plan.pattern_geometry(layer.pattern, plate))
    first = case.drives[0].conductor
    return Interface(f"{first}|top", zs[first][1], plan.plate_polygon(plate))


def versions() -> dict[str, str]:
    import gmsh

    return {
        "femion": __version__,
        "dolfinx": dolfinx.__version__,
        "petsc": ".".join(map(str, PETSc.Sys.getVersion())),
        "gmsh": gmsh.__version__,
        "python": platform.python_version(),
    }


@dataclass
class RunResult:
    path: Path
    summary: dict
    sheets: list[SheetSolution] = field(default_factory=list)


def solve_conductors(case: Case, plan_mesh: "geometry.PlanMesh") -> list[SheetSolution]:
    """Solve every driven conductor sheet of the case."""
    g = case.geometry
    planes = case.conductor_planes()
    contacts = {c.name: plan.contact_geometry(c, g.plate) for c in g.contacts}
    out = []
    for d in case.drives:
        layer = case.layer(d.conductor)
        out.append(
            solve_sheet(
                plan_mesh.mesh,
                plan_mesh.cells(layer.name),
                name=layer.name,
                sheet_conductance=layer.sheet_conductance,
                z=planes[layer.name],
                contact_from=contacts[d.from_],
                contact_to=contacts[d.to],
                current=d.current,
                voltage=d.voltage,
                solver=case.mesh.solver,
            )
        )
    return out


def interface_field(case: Case, plan_mesh, sheets, interface: Interface):
    """B (T) on the interface at the plan mesh's nodes, as a P1 3-vector on the plan mesh."""
    msh = plan_mesh.mesh
    V = dolfinx.fem.functionspace(msh, ("Lagrange", 1, (3,)))
    B = dolfinx.fem.Function(V, name="B_interface")
    n_owned = V.dofmap.index_map.size_local
    xy = V.tabulate_dof_coordinates()[:n_owned, :2]
    targets = np.c_[xy, np.full(n_owned, interface.z)]
    values = magnetic_flux_density(
        sheets, targets, external_field=case.magnetic.external_field, method=case.magnetic.method
    )
    B.x.array[: 3 * n_owned] = values.ravel()
    B.x.scatter_forward()
    covered = plan.points_in(interface.region, xy[:, 0], xy[:, 1], 1e-9)
    local_max = float(np.linalg.norm(values[covered], axis=1).max()) if covered.any() else 0.0
    max_b = msh.comm.allreduce(local_max, op=MPI.MAX)
    return B, max_b, int(msh.comm.allreduce(int(n_owned), op=MPI.SUM))


def run_case(case: Case, out: str | Path, comm: MPI.Comm = MPI.COMM_WORLD, *, progress: bool = True) -> RunResult:
    """Run ``case`` and write its results directory ``out`` (see :mod:`femion.results.io`)."""
    t_start = time.perf_counter()
    writer = ResultWriter(out, comm)
    stopped = None
    names = [s for s in STAGES if s != "transport" or case.transport is not None]
    try:
        with Stages(names, comm.rank, enabled=progress) as stages:
            with stages.stage("mesh"):
                spec = plan.stack_spec(case)
                plan_mesh = geometry.build_plan_mesh(spec, comm)
            interrupts.check(comm, "after the mesh stage; nothing written")
            with stages.stage("conductor"):
                solutions = solve_conductors(case, plan_mesh)
            interrupts.check(comm, "after the conductor stage; nothing written")
            with stages.stage("magnetic field"):
                interface = interface_of(case)
                sheets = [s.panels() for s in solutions]
                if case.magnetic.enabled:
                    B, max_b, n_targets = interface_field(case, plan_mesh, sheets, interface)
                    points = np.asarray(case.magnetic.points, dtype=float).reshape(-1, 3)
                    B_points = (
                        magnetic_flux_density(sheets, points, external_field=case.magnetic.external_field)
                        if len(points)
                        else np.zeros((0, 3))
                    )
                else:
                    B, max_b, n_targets, points, B_points = None, None, 0, np.zeros((0, 3)), np.zeros((0, 3))
            interrupts.check(comm, "after the magnetic field stage; nothing written")
            transport_summary = None
            if case.transport is not None:
                with stages.stage("transport"):
                    transport_summary, stopped = run_transport(case, writer, spec, sheets, solutions, comm,
                                                               stages if progress else None)
            with stages.stage("write fields"):
                fmt = tuple(case.output.fields)
                for s in solutions:
                    writer.write_function(s.potential, f"phi_s_{s.name}", fmt)
                    writer.write_function(s.sheet_current, f"K_{s.name}", fmt)
                if B is not None:
                    writer.write_function(B, "B_interface", fmt)
                writer.write_sheets([(s.name, p) for s, p in zip(solutions, sheets)], case.magnetic.external_field)
                writer.write_text("case.yaml", dump_case(case))
                primary = solutions[0]
                summary = {
                    "case": case.name,
                    "description": case.description,
                    "observation": case.observation,
                    "resistance_ohm": primary.resistance,
                    "current_A": primary.current,
                    "voltage_V": primary.voltage,
                    "joule_power_W": primary.joule_power,
                    "max_B_interface_T": max_b,
                    "interface": {"name": interface.name, "z_m": interface.z},
                    "layer_z_m": {k: list(v) for k, v in case.layer_z().items()},
                    "plate_m": [[0.0, case.geometry.plate.length], [0.0, case.geometry.plate.width]],
                    "conductors": [s.name for s in solutions],
                    "drives": [
                        {
                            "conductor": s.name,
                            "current_A": s.current,
                            "voltage_V": s.voltage,
                            "resistance_ohm": s.resistance,
                            "joule_power_W": s.joule_power,
                            "sheet_conductance_S": s.sheet_conductance,
                            "sheet_z_m": s.z,
                            "solver_iterations": s.solver_iterations,
                        }
                        for s in solutions
                    ],
                    "magnetic_points": [
                        {"point_m": p.tolist(), "B_T": b.tolist()} for p, b in zip(points, B_points)
                    ],
                    "external_field_T": list(case.magnetic.external_field),
                    "mesh": {
                        "cell_size_m": case.mesh.cell_size,
                        "plan_cells": plan_mesh.mesh.topology.index_map(2).size_global,
                        "interface_points": n_targets,
                    },
                    "versions": versions(),
                    "mpi_size": comm.size,
                }
                if transport_summary is not None:
                    summary.update(transport_summary)
                writer.write_json("summary.json", summary)
            if stopped is None and interrupts.requested(comm):
                # all is written but the figures: keep it as an interrupted run, skip the drawing
                signum = interrupts.requested(comm)
                stopped = Stop("interrupted", str(interrupts.Interrupted(signum, "before the figures")), signum)
            if stopped is None or stopped.status != "interrupted":
                with stages.stage("figures"):
                    write_figures(case, writer, summary, transport_summary is not None)
        summary["stage_time_s"] = stages.times
        summary["wall_time_s"] = time.perf_counter() - t_start
        writer.write_json("summary.json", summary)
        path = writer.commit("completed" if stopped is None else stopped.status)
    except BaseException:
        writer.abandon()
        raise
    if stopped is not None:
        raise stopped.error(path)
    return RunResult(path=path, summary=summary, sheets=solutions)


def write_figures(case: Case, writer: ResultWriter, summary: dict, transport: bool) -> None:
    """Optics table, figures and report of a written run (rank 0 draws; errors reach every rank)."""

    def draw():
        if transport:
            from femion.post.optics import write_optics

            summary["optics"] = write_optics(writer.path)
        if case.output.figures:
            from femion.post.figures import render_result

            render_result(writer.path)
        from femion.post.report import write_report

        write_report(writer.path)
        return summary.get("optics")

    optics = writer.on_root(draw, "cannot draw the figures")
    if transport:
        summary["optics"] = optics


def run_variants(base: Case, runs, out: str | Path, comm: MPI.Comm = MPI.COMM_WORLD, *, progress: bool = True):
    """Run every variant of a case into ``out/<variant>``; ``out`` gets a summary listing them and
    a report comparing them. A variant whose transport stops keeps its last good state: ``out``
    then holds the variants run so far and the stopped one, and :class:`RunStopped` says which.
    Any other failure leaves no ``out``."""
    writer = ResultWriter(out, comm)
    results, done, stopped = [], [], None
    try:
        for name, case in runs:
            done.append(name)
            try:
                results.append(run_case(case, writer.path / name, comm, progress=progress))
            except RunStopped as exc:
                stopped = (name, Stop(exc.status, exc.reason, exc.signum))
                break
            except interrupts.Interrupted as exc:  # before the variant had anything to keep
                done.pop()
                stopped = (name, Stop("interrupted", str(exc), exc.signum))
                break
        writer.write_text("case.yaml", dump_case(base))
        entry = {"case": base.name, "description": base.description, "observation": base.observation,
                 "variants": done, "mpi_size": comm.size, "versions": versions()}
        if stopped is not None:
            entry["stopped"] = {"variant": stopped[0], "reason": stopped[1].reason, "status": stopped[1].status,
                                "not_run": [n for n, _ in runs if n not in done]}
        writer.write_json("summary.json", entry)

        def report():
            from femion.post.report import write_report

            write_report(writer.path)

        writer.on_root(report, "cannot write the report")
        path = writer.commit("completed" if stopped is None else stopped[1].status)
    except BaseException:
        writer.abandon()
        raise
    if stopped is not None:
        name, stop = stopped
        later = [n for n, _ in runs if n not in done]
        stop.reason = f"variant {name}: {stop.reason}" + (f"; not run: {', '.join(later)}" if later else "")
        raise stop.error(path / name if name in done else path)
    return path, results


def run_transport(case: Case, writer: ResultWriter, spec, sheets, solutions, comm, stages=None):
    """Transport stage: run the protocol (or the drives for ``duration``), writing fields at the
    output times and a CSV row for every step. Returns (summary entries, None) or, if the time
    step collapsed or a stop was requested, the entries of the last good state and a :class:`Stop`."""
    tr = case.transport
    stack = (geometry.build_stack_mesh(spec, comm) if case.mesh.dimension == 3
             else geometry.build_section_mesh(spec, comm))
    by_name = {s.name: s for s in solutions}
    dev = device.build_device(case, stack, {s.name: p for s, p in zip(solutions, sheets)}, by_name)
    problem = dev.problem
    voltages = {s.name: s.voltage for s in solutions}
    planned = protocol.plan_protocol(case, {s.name: (s.current, s.voltage) for s in solutions})
    RT_F = GAS_CONSTANT * tr.temperature / FARADAY

    def P1(m, name):
        return dolfinx.fem.Function(dolfinx.fem.functionspace(m, ("Lagrange", 1)), name=name)

    theta, c_ox, phi_s = P1(problem.ox_mesh, "theta"), P1(problem.ox_mesh, "c_oxide"), P1(problem.ox_mesh, "phi_s")
    ions = [i.name for i in problem.electrolyte.ions]
    c_el = {n: P1(problem.el_mesh, f"c_{n}") for n in ions}
    phi_l = P1(problem.el_mesh, "phi_l")
    conc = problem.concentration_exprs(problem.u)
    th_expr = problem.theta_expr(problem.u["w"])
    exprs = [(theta, th_expr), (c_ox, problem.oxide.c_max * th_expr), (phi_s, problem.u["phi_e"]),
             (phi_l, RT_F * problem.u["psi"])] + [(c_el[n], conc[n]) for n in ions]
    compiled = [(f, dolfinx.fem.Expression(e, f.function_space.element.interpolation_points)) for f, e in exprs]

    def update():
        for f, e in compiled:
            f.interpolate(e)
            f.x.scatter_forward()

    fmt = tuple(case.output.fields)
    series = [FieldSeries(writer, "oxide", [theta, c_ox, phi_s], fmt),
              FieldSeries(writer, "electrolyte", [c_el[n] for n in ions] + [phi_l], fmt)]
    ex = problem.electrolyte.exchanging
    columns = (["t_s", "stage", "dt_s", "newton_iterations", "exchange_current_A", "theta_min", "theta_max"]
               + [f"{k}_mol" for k in ["oxide"] + ions] + [f"total_{ex}_mol"]
               + [f"c_{n}_min_mol_m3" for n in ions] + [f"c_{n}_max_mol_m3" for n in ions])
    csv = CsvSeries(writer.path / "transport.csv", columns, comm)
    # What must be conserved: the ions that are never exchanged, always; the exchanged ion (film +
    # electrolyte) while no external source feeds it, i.e. outside injection stages.
    tot0 = problem.totals()
    conserved0 = {n: tot0[n] for n in ions if n != ex}
    track = {"drift": 0.0, "cmin": np.inf, "stage": 0, "closed": True, "total0": tot0["oxide"] + tot0[ex]}

    def gmin(f):
        return comm.allreduce(float(f.x.array.min(initial=np.inf)), op=MPI.MIN)

    def gmax(f):
        return comm.allreduce(float(f.x.array.max(initial=-np.inf)), op=MPI.MAX)

    def record(rec):
        update()
        tot = problem.totals()
        total = tot["oxide"] + tot[ex]
        for k, v0 in conserved0.items():
            track["drift"] = max(track["drift"], abs(tot[k] - v0) / abs(v0))
        if track["closed"]:
            track["drift"] = max(track["drift"], abs(total - track["total0"]) / abs(track["total0"]))
        mins = {n: gmin(c_el[n]) for n in ions}
        if not all(np.isfinite(list(mins.values()))) or min(mins.values()) < 0:
            raise StepFailure(f"non-physical concentration at t = {problem.t:g} s: {mins}", problem.t)
        track["cmin"] = min(track["cmin"], gmin(c_ox), *mins.values())
        row = {"t_s": problem.t, "stage": track["stage"], "dt_s": rec.dt if rec else 0.0,
               "newton_iterations": rec.newton_iterations if rec else 0,
               "exchange_current_A": problem.exchange_current(), "theta_min": gmin(theta), "theta_max": gmax(theta),
               "oxide_mol": tot["oxide"], f"total_{ex}_mol": total}
        row.update({f"{n}_mol": tot[n] for n in ions})
        row.update({f"c_{n}_min_mol_m3": mins[n] for n in ions})
        row.update({f"c_{n}_max_mol_m3": gmax(c_el[n]) for n in ions})
        csv.row(row)
        if rec is not None:
            interrupts.check(comm, f"at t = {problem.t:g} s")

    st = tr.steps
    stepper = Stepper(problem, StepControl(dt_initial=st.initial, dt_min=st.min, dt_max=st.max, order=st.order),
                      on_step=record)
    out_times = [0.0]
    stopped = None
    try:
        rest = protocol.Controls(drive=planned[0].controls.drive, exchange=planned[0].controls.exchange)
        dev.apply(planned[0].controls, voltages)
        settle(dev, rest, planned[0].controls, voltages, 0.0)
        track["total0"] = sum(problem.totals()[k] for k in ("oxide", ex))
        record(None)
        for f in series:
            f.write(0.0)
        for stage in planned:
            closed = stage.controls.inject_voltage is None
            if closed and not track["closed"]:  # a new baseline after a source fed the cell
                track["total0"] = sum(problem.totals()[k] for k in ("oxide", ex))
            track["closed"], track["stage"] = closed, stage.index
            if stage.index > 0 and stage.controls != planned[stage.index - 1].controls:
                dev.apply(stage.controls, voltages)
                settle(dev, planned[stage.index - 1].controls, stage.controls, voltages, problem.t)
            # the controls jump here: restart BDF at first order from the initial step
            problem.restart_at_first_order()
            stepper.dt, stepper.dt_prev = st.initial, None
            for t_out in stage.output_times:
                stepper.advance_to(float(t_out))
                for f in series:
                    f.write(problem.t)
                out_times.append(problem.t)
    except (StepFailure, interrupts.Interrupted) as exc:
        if isinstance(exc, interrupts.Interrupted):
            stopped = Stop("interrupted", str(exc), exc.signum)
        else:
            stopped = Stop("stopped", f"transport stopped at t = {exc.t_last_good:g} s: {exc}")
        update()
        for f in series:
            f.write(problem.t)  # the last good state
        out_times.append(problem.t)
    finally:
        for f in series:
            f.close()
        csv.close()
    n_dofs = sum(V.dofmap.index_map.size_global for V in problem.spaces.values())
    ox_layer, el_layer = device.transport_layers(case)[:2]
    summary = {
        "times_s": out_times,
        "conservation_error_rel": track["drift"],
        "min_concentration_mol_m3": track["cmin"],
        "max_hall_parameter": problem.max_hall_parameter,
        "protocol": protocol_summary(case, planned),
        "transport": {
            "status": "completed" if stopped is None else stopped.status,
            "stop_reason": None if stopped is None else stopped.reason,
            "dimension": case.mesh.dimension,
            "cells": stack.mesh.topology.index_map(stack.mesh.topology.dim).size_global,
            "dofs": n_dofs,
            "steps": len(stepper.history),
            "newton_iterations": int(sum(r.newton_iterations for r in stepper.history)),
            "final_time_s": problem.t,
            "fields": {"oxide": ["theta", "c_oxide", "phi_s"], "electrolyte": [f"c_{n}" for n in ions] + ["phi_l"]},
            "max_B_T": problem.max_B,
            "c_max_mol_m3": problem.oxide.c_max,
            "oxide_layer": ox_layer.name,
            "oxide_material": ox_layer.material,
            "electrolyte_material": el_layer.material,
            "electrolyte_layer": el_layer.name,
            "exchanging": problem.electrolyte.exchanging,
            "exchanging_valence": problem.z_ex,
            "section_y_m": device.section_y(case),
            "mechanism": {"electrochemical": tr.mechanism.electrochemical,
                          "lorentz_closure": tr.mechanism.lorentz_closure},
        },
    }
    return summary, stopped


def settle(dev, previous, controls, voltages, t: float, max_jump: float = 0.25) -> None:
    """Consistent potentials for new ``controls``, the clock kept at ``t``.

    From a guess near the new level (Device.guess_potentials) a 1 ns step settles φ_e and φ_l
    (the concentrations change by O(1 ns) only). If Newton fails, the source is instead moved
    from ``previous`` to ``controls`` in increments of at most ``max_jump`` volts, settling
    after each: the exchange is exponential in the potentials, so big jumps are taken as many
    small ones. Raises TransportSolveError if even that fails.
    """
    p = dev.problem
    saved = p.snapshot()
    try:
        dev.guess_potentials(controls, voltages)
        p.step(1e-9, order=1)
        p.t = t
        return
    except TransportSolveError:
        p.restore(saved)
        p.t = t
    path = protocol.ramp(previous, controls, voltages, max_jump)
    for c in path:
        dev.apply(c, voltages)
        p.step(1e-9, order=1)
        p.t = t
    dev.apply(controls, voltages)


def protocol_summary(case: Case, planned) -> list[dict]:
    """The stages as run, with the plan point each drive's current flows toward (for the report)."""
    plate = case.geometry.plate
    contacts = {c.name: c for c in case.geometry.contacts}
    out = []
    for p in planned:
        toward = None
        if p.controls.drive is not None:
            d = next(d for d in case.drives if d.conductor == p.controls.drive)
            end = contacts[d.to if p.controls.scale > 0 else d.from_]
            c = plan.contact_geometry(end, plate).centroid
            toward = [c.x, c.y]
        out.append({"name": p.name, "action": p.action, "label": p.label, "t_start_s": p.t_start,
                    "t_end_s": p.t_end, "conductor": p.controls.drive, "current_A": p.current,
                    "voltage_V": p.voltage, "toward_xy_m": toward, "exchange": p.controls.exchange})
    return out
