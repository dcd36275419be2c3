"""Joule heating during a transport run (``transport.mechanism.thermal``): the case's stack as a
heat problem (femion.thermal), the drive's Joule heat as its source under each stage's controls,
and the temperature it hands the transport at the end time of every step.

The coupling is one way (heat → transport): the heat problem is advanced on demand with backward
Euler steps of at most ``thermal.max_step`` to each time the transport asks for; a retried,
shorter transport step gets T interpolated linearly in time between the heat states around it.
"""

from __future__ import annotations

import math

import numpy as np

from femion._dolfinx import dolfinx
from femion.geometry import plan
from femion.laws import materials
from femion.thermal import (
    HeatProblem,
    ThermalMaterial,
    joule_heat_flux,
    plate_properties,
    radiative_coefficient,
    stack_properties,
)
from femion.transport.case_models import is_shell, plan_points
from femion.transport.device import plan_field

#: heat states kept for the interpolation of retried steps
KEPT_STATES = 64


def thermal_material(name: str) -> ThermalMaterial:
    """k, ρ, c_p of library material ``name`` (present: config.checks refuses a thermal case without them)."""
    mat = materials.get(name)
    return ThermalMaterial(mat.value("thermal_conductivity"), mat.value("density"), mat.value("heat_capacity"))


def _sampler(flux: dolfinx.fem.Function):
    """(px, py) → the DG0 plan field ``flux`` there (linear between cell midpoints, gathered from all ranks)."""
    msh = flux.function_space.mesh
    tdim = msh.topology.dim
    n = msh.topology.index_map(tdim).size_local
    mid = dolfinx.mesh.compute_midpoints(msh, tdim, np.arange(n, dtype=np.int32))[:, :2]
    comm = msh.comm
    xy = np.vstack(comm.allgather(mid))
    vals = np.concatenate(comm.allgather(flux.x.array[:n].copy()))
    return plan_field(xy, vals)


class Heating:
    """The stack's heat problem for ``case`` on ``stack`` (a 2D section or 3D StackMesh; with the
    shell model the plan mesh, and the stack as a plate on it: femion.thermal), its
    sources from the conductor-stage ``solutions`` ({conductor: SheetSolution}), writing T into
    ``temperature`` (a TemperatureField on the same mesh)."""

    def __init__(self, case, stack, solutions: dict, temperature, comm):
        th = case.thermal
        self.case, self.stack, self.temperature, self.comm = case, stack, temperature, comm
        self.T_ambient = float(th.ambient if th.ambient is not None else case.transport.temperature)
        self.h = th.convection + radiative_coefficient(th.emissivity, self.T_ambient)
        self.max_step = float(th.max_step)
        air = thermal_material("air")
        fixed = self._clamped_facets() if th.clamps else None
        self.plate = is_shell(case)  # the shell model: the stack as a plate on the plan mesh
        if self.plate:
            tdim = stack.mesh.topology.dim
            n = stack.mesh.topology.index_map(tdim).size_local + stack.mesh.topology.index_map(tdim).num_ghosts
            K, C = plate_properties([(layer.thickness, thermal_material(layer.material), stack.cells(layer.name))
                                     for layer in case.geometry.layers], n, air)
            H = sum(layer.thickness for layer in case.geometry.layers)
            self.heat = HeatProblem(stack.mesh, K, C, self.h * H, self.T_ambient, face_loss=2 * self.h, fixed=fixed)
        else:
            mats = {stack.names[layer.name]: thermal_material(layer.material) for layer in case.geometry.layers
                    if layer.name in stack.names}
            # where a patterned layer is absent its cells hold still air (the electrolyte's uncoated ends)
            mats.update({stack.names[f"{layer.name}_absent"]: air for layer in case.geometry.layers
                         if f"{layer.name}_absent" in stack.names})
            self.heat = HeatProblem(stack.mesh, *stack_properties(stack.mesh, stack.cell_tags, mats), self.h,
                                    self.T_ambient, fixed=fixed)
        self.layers = {layer.name: layer for layer in case.geometry.layers}
        # each sheet's q(x, y) = G|∇φ_s|² at its solved drive, as a plan sampler (built once: a
        # stage change, and each step of a source ramp, only rescales it)
        self.flux = {name: _sampler(joule_heat_flux(s.potential, s.sheet_conductance)) for name, s in solutions.items()}
        self.power = {name: s.joule_power for name, s in solutions.items()}
        self.states: list[tuple[float, np.ndarray]] = [(0.0, self.heat.T.x.array.copy())]
        self.max_rise = 0.0  # largest T − T∞ anywhere, over the run (K)
        self.max_mean_rise = 0.0  # largest volume-mean T − T∞ of the stack (K)
        self.input_power = 0.0  # heat source of the present controls (W; per metre of width in a section)
        self.temperature.value = self.T_ambient

    def _clamped_facets(self) -> np.ndarray:
        """Outer-boundary facets over a drive's contact region (the clamps)."""
        msh = self.stack.mesh
        tdim = msh.topology.dim
        msh.topology.create_connectivity(tdim - 1, tdim)
        plate = self.case.geometry.plate
        regions = [plan.contact_geometry(c, plate) for c in self.case.geometry.contacts
                   if any(c.name in (d.from_, d.to) for d in self.case.drives)]

        def on_clamp(x):
            px, py = plan_points(self.case, x)
            return np.any([plan.points_in(g, px, py, 1e-6) for g in regions], axis=0)

        return dolfinx.mesh.locate_entities_boundary(msh, tdim - 1, on_clamp)

    def set_controls(self, t: float, controls) -> None:
        """From time ``t`` on, the heat source of ``controls``: the driven conductor's Joule heat
        scale²·q(x, y) (the conductor stage's solution times the drive's scale), spread over its layer."""
        self._go_to(t)
        name = controls.drive
        if name is None or controls.scale == 0.0 or name not in self.flux:
            self.heat.set_source(None)
            self.input_power = 0.0
            return
        sample, scale2 = self.flux[name], controls.scale**2
        # a stack spreads the sheet's q (W/m²) over its layer's cells; a plate takes it as it is
        thickness = 1.0 if self.plate else self.layers[name].thickness
        cells = self.stack.cells(name)
        self.heat.source.x.array[:] = 0.0
        self.heat.source.interpolate(lambda x: scale2 * sample(*plan_points(self.case, x)) / thickness, cells0=cells)
        self.heat.source.x.scatter_forward()
        self.input_power = self.heat.heat_input()

    def _go_to(self, t: float) -> None:
        """Advance the heat problem to ``t`` (steps of at most max_step), or, if it is past ``t``
        (a rejected longer step), put it back to its interpolated state at ``t``."""
        h = self.heat
        if t > h.t * (1 + 1e-14) + 1e-15:
            n = max(1, math.ceil((t - h.t) / self.max_step - 1e-9))
            dt = (t - h.t) / n
            for _ in range(n):
                h.step(dt)
                self.states.append((h.t, h.T.x.array.copy()))
            h.t = t
            del self.states[:-KEPT_STATES]
            top, mean = h.extremes()
            self.max_rise, self.max_mean_rise = max(self.max_rise, top), max(self.max_mean_rise, mean)
        elif t < h.t:
            h.T.x.array[:] = self._interpolated(t)
            h.t = t
            self.states = [s for s in self.states if s[0] < t] + [(t, h.T.x.array.copy())]

    def _interpolated(self, t: float) -> np.ndarray:
        times = [s[0] for s in self.states]
        k = int(np.searchsorted(times, t))
        if k <= 0:
            return self.states[0][1]
        if k >= len(times):
            return self.states[-1][1]
        (ta, Ta), (tb, Tb) = self.states[k - 1], self.states[k]
        w = 0.0 if tb == ta else (t - ta) / (tb - ta)
        return (1 - w) * Ta + w * Tb

    def at(self, t: float) -> None:
        """Set the transport's temperature to T(t) (the problem's ``before_step``)."""
        if t >= self.heat.t:
            self._go_to(t)
            self.temperature.x.array[:] = self.heat.T.x.array
        else:
            self.temperature.x.array[:] = self._interpolated(t)
        self.temperature.x.scatter_forward()

    def spaces(self) -> dict:
        """The heat problem's space, by the name its checkpoint arrays use."""
        return {"heat": self.heat.T.function_space}

    def checkpoint(self) -> tuple[dict, dict, dict]:
        """(spaces, arrays, meta) of the heat state for a checkpoint (femion.runner.checkpoints)."""
        meta = {"t": self.heat.t, "max_rise": self.max_rise, "max_mean_rise": self.max_mean_rise}
        return self.spaces(), {"heat/T": ("heat", self.heat.T.x.array.copy())}, meta

    def restore(self, T: np.ndarray, meta: dict) -> None:
        """Put back a checkpoint's heat state (the temperature at its time, the largest rises so far)."""
        self.heat.T.x.array[:] = T
        self.heat.t = float(meta["t"])
        self.max_rise, self.max_mean_rise = float(meta["max_rise"]), float(meta["max_mean_rise"])
        self.states = [(self.heat.t, self.heat.T.x.array.copy())]
        self.temperature.x.array[:] = T
        self.temperature.x.scatter_forward()

    def summary(self) -> dict:
        """What summary.json reports of the heating."""
        per_width = " per metre of width" if self.case.mesh.dimension == 2 else ""
        return {"max_temperature_rise_K": self.max_rise, "max_mean_temperature_rise_K": self.max_mean_rise,
                "ambient_K": self.T_ambient, "surface_coefficient_W_m2K": self.h,
                "joule_power_W": self.power, "heat_loss_now_W": self.heat.heat_loss(),
                "note": f"heat problem totals{per_width}; Joule power is the conductor stage's I²R at its drive"}
