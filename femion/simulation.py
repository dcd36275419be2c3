"""Run a case: geometry → conductor currents → magnetic field → results.

This module wires the physics modules together in the order of the design
chain. It reads no files and parses no options: the CLI hands it a validated
:class:`~femion.case.Case` and an output directory.
"""

from __future__ import annotations

import platform
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from . import __version__, geometry, plan
from ._dolfinx import MPI, PETSc, dolfinx
from .case import Case, dump_case
from .conductor import SheetSolution, solve_sheet
from .magnetic import magnetic_flux_density
from .output import ResultWriter
from .progress import Stages

STAGES = ["mesh", "conductor", "magnetic field", "write fields", "figures"]


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
    """Run ``case`` and write its results directory ``out`` (see :mod:`femion.output`)."""
    t_start = time.perf_counter()
    writer = ResultWriter(out, comm)
    try:
        with Stages(STAGES, comm.rank, enabled=progress) as stages:
            with stages.stage("mesh"):
                spec = plan.stack_spec(case)
                plan_mesh = geometry.build_plan_mesh(spec, comm)
            with stages.stage("conductor"):
                solutions = solve_conductors(case, plan_mesh)
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
                writer.write_json("summary.json", summary)
            with stages.stage("figures"):
                comm.barrier()
                if case.output.figures and comm.rank == 0:
                    from .visualisation import render_result

                    render_result(writer.path)
        summary["stage_time_s"] = stages.times
        summary["wall_time_s"] = time.perf_counter() - t_start
        writer.write_json("summary.json", summary)
        path = writer.commit()
    except BaseException:
        writer.abandon()
        raise
    return RunResult(path=path, summary=summary, sheets=solutions)
