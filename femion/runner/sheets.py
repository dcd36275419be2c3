"""The conductor and magnetic-field stages: sheet currents of the drives, and B where it is reported."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from femion._dolfinx import MPI, dolfinx
from femion.conductor import SheetSolution, solve_sheet
from femion.geometry import plan
from femion.magnetic.biot_savart import magnetic_flux_density


@dataclass
class Interface:
    """Where B is reported: the top of the oxide (under the electrolyte coverage)."""

    name: str
    z: float
    region: object  # shapely geometry of the plan region where the interface exists


def interface_of(case) -> Interface:
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


def solve_conductors(case, plan_mesh) -> list[SheetSolution]:
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


def interface_field(case, plan_mesh, sheets, interface: Interface):
    """B (T) on the interface at the plan mesh's nodes, as a P1 3-vector on the plan mesh: each rank
    evaluates its owned nodes from the panels of all ranks (``sheets``, gathered), the FMM's sources
    split across the ranks."""
    msh = plan_mesh.mesh
    V = dolfinx.fem.functionspace(msh, ("Lagrange", 1, (3,)))
    B = dolfinx.fem.Function(V, name="B_interface")
    n_owned = V.dofmap.index_map.size_local
    xy = V.tabulate_dof_coordinates()[:n_owned, :2]
    targets = np.c_[xy, np.full(n_owned, interface.z)]
    values = magnetic_flux_density(sheets, targets, external_field=case.magnetic.external_field,
                                   method=case.magnetic.method, tolerance=case.magnetic.tolerance, comm=msh.comm)
    B.x.array[: 3 * n_owned] = values.ravel()
    B.x.scatter_forward()
    covered = plan.points_in(interface.region, xy[:, 0], xy[:, 1], 1e-9)
    local_max = float(np.linalg.norm(values[covered], axis=1).max()) if covered.any() else 0.0
    max_b = msh.comm.allreduce(local_max, op=MPI.MAX)
    return B, max_b, int(msh.comm.allreduce(int(n_owned), op=MPI.SUM))


@dataclass
class MagneticField:
    """What the magnetic field stage found: B on the interface (a plan-mesh function, None when
    the case's field is off), its largest magnitude there, and B at the case's points."""

    interface: Interface
    B: object = None
    max_b: float | None = None
    n_targets: int = 0
    points: np.ndarray = field(default_factory=lambda: np.zeros((0, 3)))
    B_points: np.ndarray = field(default_factory=lambda: np.zeros((0, 3)))


def magnetic_field(case, plan_mesh, sheets) -> MagneticField:
    """B of the sheet currents ``sheets`` (and the external field) on the interface and at
    ``magnetic.points``."""
    out = MagneticField(interface_of(case))
    if not case.magnetic.enabled:
        return out
    out.B, out.max_b, out.n_targets = interface_field(case, plan_mesh, sheets, out.interface)
    out.points = np.asarray(case.magnetic.points, dtype=float).reshape(-1, 3)
    if len(out.points):
        out.B_points = magnetic_flux_density(sheets, out.points, external_field=case.magnetic.external_field,
                                             tolerance=case.magnetic.tolerance)
    return out
