"""summary.json: what a run (:func:`run_summary`, :func:`transport_summary`) or a parent of
variants (:func:`variants_summary`) writes there. The keys are a public contract (README,
:mod:`femion.results.reader`): add, never rename."""

from __future__ import annotations

import platform

from femion import __version__
from femion._dolfinx import PETSc, dolfinx
from femion.geometry import plan
from femion.results.writer import FORMAT_VERSION
from femion.transport import device


def versions() -> dict[str, str]:
    import gmsh

    return {
        "femion": __version__,
        "dolfinx": dolfinx.__version__,
        "petsc": ".".join(map(str, PETSc.Sys.getVersion())),
        "gmsh": gmsh.__version__,
        "python": platform.python_version(),
    }


def _drive(s) -> dict:
    return {
        "conductor": s.name,
        "current_A": s.current,
        "voltage_V": s.voltage,
        "resistance_ohm": s.resistance,
        "joule_power_W": s.joule_power,
        "sheet_conductance_S": s.sheet_conductance,
        "sheet_z_m": s.z,
        "solver_iterations": s.solver_iterations,
    }


def run_summary(case, solutions, field, plan_mesh, comm) -> dict:
    """The entries every run writes: the conductor stage's solutions (the first drive's at the
    top level), B (``field``: :class:`femion.runner.sheets.MagneticField`), layers, mesh, versions."""
    primary = solutions[0]
    return {
        "format_version": FORMAT_VERSION,
        "case": case.name,
        "description": case.description,
        "observation": case.observation,
        "resistance_ohm": primary.resistance,
        "current_A": primary.current,
        "voltage_V": primary.voltage,
        "joule_power_W": primary.joule_power,
        "max_B_interface_T": field.max_b,
        "interface": {"name": field.interface.name, "z_m": field.interface.z},
        "layer_z_m": {k: list(v) for k, v in case.layer_z().items()},
        "plate_m": [[0.0, case.geometry.plate.length], [0.0, case.geometry.plate.width]],
        "conductors": [s.name for s in solutions],
        "drives": [_drive(s) for s in solutions],
        "magnetic_points": [{"point_m": p.tolist(), "B_T": b.tolist()}
                            for p, b in zip(field.points, field.B_points, strict=True)],
        "external_field_T": list(case.magnetic.external_field),
        "magnetic_tolerance": case.magnetic.tolerance,
        "mesh": {
            "cell_size_m": case.mesh.cell_size,
            "plan_cells": plan_mesh.mesh.topology.index_map(2).size_global,
            "interface_points": field.n_targets,
        },
        "versions": versions(),
        "mpi_size": comm.size,
    }


def transport_summary(case, stack, problem, planned, recorder, steps, stop) -> dict:
    """The entries a transport run adds: output times, conservation, the protocol as run and
    the ``transport`` block. ``steps``: the stepper's history; ``stop``: a Stop or None."""
    tr = case.transport
    ox_layer, el_layer = device.transport_layers(case)[:2]
    return {
        "times_s": recorder.times,
        "conservation_error_rel": recorder.monitor.drift,
        "min_concentration_mol_m3": recorder.monitor.cmin,
        "max_hall_parameter": problem.max_hall_parameter,
        "protocol": protocol_summary(case, planned),
        "transport": {
            "status": "completed" if stop is None else stop.status,
            "stop_reason": None if stop is None else stop.reason,
            "dimension": case.mesh.dimension,
            "model": tr.model,  # resolved through the films' thickness, or their plan-view shell limit
            "cells": stack.mesh.topology.index_map(stack.mesh.topology.dim).size_global,
            "dofs": sum(V.dofmap.index_map.size_global for V in problem.spaces.values()),
            "steps": len(steps),
            "newton_iterations": int(sum(r.newton_iterations for r in steps)),
            # Jacobians assembled and factorised (the other iterations reuse one); counted from the
            # start of this process, so a resumed run counts from where it resumed
            "jacobians": problem.newton.jacobians,
            "final_time_s": problem.t,
            "fields": recorder.fields,
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
                          "lorentz_closure": tr.mechanism.lorentz_closure, "thermal": tr.mechanism.thermal},
        },
    }


def protocol_summary(case, planned) -> list[dict]:
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


def variants_summary(base, runs, done: list[str], stopped, comm) -> dict:
    """A parent of variants: the variants written (``done``) and, if one stopped (``stopped``:
    (name, Stop)), which and why, and the variants not run."""
    entry = {"format_version": FORMAT_VERSION,
             "case": base.name, "description": base.description, "observation": base.observation,
             "variants": done, "mpi_size": comm.size, "versions": versions()}
    if stopped is not None:
        entry["stopped"] = {"variant": stopped[0], "reason": stopped[1].reason, "status": stopped[1].status,
                            "not_run": [n for n, _ in runs if n not in done]}
    return entry
