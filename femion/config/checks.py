"""Cross-field checks of a case and the limits on what a run may cost.

Each field is checked by its own model in :mod:`femion.config.schema`; what needs the whole case
(names that refer to each other, shapes on the plate, the transport stack, the protocol against
the drives, the estimated mesh, outputs and time steps against ``limits``) is checked here, once
the case is built, by :func:`check_case`. Each failure is a ``ValueError`` whose message starts
with the key it is about; pydantic turns it into the one line :class:`~femion.config.CaseError`
shows.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from femion.constants import FARADAY, GAS_CONSTANT, VACUUM_PERMITTIVITY
from femion.geometry import plan
from femion.laws import materials

if TYPE_CHECKING:  # pragma: no cover
    from femion.config.schema import Case

__all__ = ["check_case", "check_limits", "check_transport"]

#: relative permittivity of the electrolyte for the Debye-length check when the case gives none
DEFAULT_RELATIVE_PERMITTIVITY = 65.0


def check_case(case: Case) -> None:
    """Every cross-field check of ``case``, in the order of its sections (ValueError on the first)."""
    g = case.geometry
    names = [layer.name for layer in g.layers]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise ValueError(f"geometry.layers: layer names must be unique (repeated: {', '.join(dup)})")
    # contacts and drives sit on conductors, or on the oxide itself (seed 000 Model I)
    conductors = {layer.name: layer for layer in g.layers if layer.kind in ("conductor", "oxide")}
    listing = ", ".join(conductors) or "none"
    for i, layer in enumerate(g.layers):
        if layer.pattern is not None:
            plan.check_pattern_inside(layer.pattern, g.plate, f"geometry.layers[{i}].pattern")
    for key, shape in g.regions.items():
        plan.check_shape_inside(shape, g.plate, f"geometry.regions.{key}")
    cnames = [c.name for c in g.contacts]
    for i, c in enumerate(g.contacts):
        if cnames.count(c.name) > 1:
            raise ValueError(f"geometry.contacts[{i}].name: contact names must be unique ({c.name!r} repeated)")
        if c.conductor not in conductors:
            raise ValueError(
                f"geometry.contacts[{i}].conductor: {c.conductor!r} is not a conductor layer (allowed: {listing})"
            )
        plan.check_contact_touches(c, conductors[c.conductor], g.plate, f"geometry.contacts[{i}]")
    contacts = {c.name: c for c in g.contacts}
    seen = set()
    for i, d in enumerate(case.drives):
        if d.conductor not in conductors:
            raise ValueError(f"drives[{i}].conductor: {d.conductor!r} is not a conductor layer (allowed: {listing})")
        if d.conductor in seen:
            raise ValueError(f"drives[{i}].conductor: {d.conductor!r} is driven twice")
        seen.add(d.conductor)
        for key, cname in (("from", d.from_), ("to", d.to)):
            on = [c.name for c in g.contacts if c.conductor == d.conductor]
            if cname not in contacts or contacts[cname].conductor != d.conductor:
                raise ValueError(
                    f"drives[{i}].{key}: no contact {cname!r} on {d.conductor} (allowed: {', '.join(on) or 'none'})"
                )
    if case.transport is not None:  # before the protocol: the protocol's checks need the oxide
        check_transport(case)
    if case.protocol is not None:
        if case.transport is None:
            raise ValueError("protocol: needs a transport section (the protocol drives the ion transport)")
        from femion.protocol.stages import check_protocol

        check_protocol(case)
        if not any(s.duration for s in case.protocol):
            raise ValueError("protocol: the stages take no time (give a stage with 'for', e.g. 'relax for 1 min')")
    elif case.transport is not None and case.transport.duration is None:
        raise ValueError("transport.duration: required key is missing (or give a protocol)")
    small = min(g.plate.length, g.plate.width)
    if case.mesh.cell_size > small / 4:
        raise ValueError(
            f"mesh.cell_size: {case.mesh.cell_size:g} m is too coarse for a {small:g} m plate "
            f"(allowed: <= {small / 4:g} m)"
        )
    if case.mesh.section_y is not None and not 0 <= case.mesh.section_y <= g.plate.width:
        raise ValueError(f"mesh.section_y: must lie on the plate, 0 to {g.plate.width:g} m")
    check_limits(case)
    if case.magnetic.enabled:
        zs = case.conductor_planes()
        for i, p in enumerate(case.magnetic.points):
            for cname, z in zs.items():
                if abs(p[2] - z) < 1e-12:
                    raise ValueError(
                        f"magnetic.points[{i}]: lies in the current sheet of {cname} (z = {z:g} m), "
                        "where B is undefined"
                    )


def check_transport(case: Case) -> None:
    """The stack, ions and options the ion transport needs: an oxide under an electrolyte, an
    exchanging ion among electroneutral ions, cells thinner than the Debye length for 'poisson'."""
    tr = case.transport
    assert tr is not None
    if case.oxide_layer is None:
        raise ValueError("transport: needs an oxide layer (allowed hosts: " + ", ".join(
            m.name for m in materials.LIBRARY.values() if m.kind == "oxide") + ")")
    stack = case.transport_layers()
    el = stack.electrolyte
    if el is None:
        raise ValueError(f"transport: the layer above the oxide ({stack.oxide.name}) must be an electrolyte")
    ions = case.transport_ions()
    names = [ion.name for ion in ions]
    if case.exchanging_ion() not in names:
        raise ValueError(f"transport.electrolyte.exchanging: {tr.electrolyte.exchanging!r} is not "
                         f"an ion (allowed: {', '.join(names)})")
    charge = sum(ion.valence * ion.concentration for ion in ions)
    if abs(charge) > 1e-9 * sum(abs(ion.valence) * ion.concentration for ion in ions):
        raise ValueError(f"transport.electrolyte.ions: not electroneutral (sum z c = {charge:g} mol/m3)")
    if tr.mechanism.lorentz_closure and tr.lorentz.step_law == "saturating":
        tr.lorentz.step_params()
    if tr.electrolyte.model == "poisson":
        eps_r = tr.electrolyte.relative_permittivity or DEFAULT_RELATIVE_PERMITTIVITY
        strength = sum(ion.valence**2 * ion.concentration for ion in ions)
        debye = (VACUUM_PERMITTIVITY * eps_r * GAS_CONSTANT * tr.temperature / (FARADAY**2 * strength)) ** 0.5
        if el.thickness / el.elements > debye:
            raise ValueError(
                f"transport.electrolyte.model: 'poisson' needs electrolyte cells thinner than the Debye length "
                f"{debye:.3g} m (cells are {el.thickness / el.elements:.3g} m); use 'electroneutral'")
    if tr.top_electrode is not None and stack.above is None:
        raise ValueError("transport.top_electrode: there is no layer above the electrolyte")
    if tr.model == "shell":
        if case.mesh.dimension != 3:
            raise ValueError("transport.model: 'shell' is the plan-view limit of a 3D case (mesh.dimension: 3); "
                             "a 2D section is solved resolved (allowed here: resolved)")
        if tr.lorentz.bulk or tr.mechanism.lorentz_closure:
            raise ValueError("transport.model: 'shell' has no Lorentz terms (lorentz.bulk, "
                             "mechanism.lorentz_closure); use 'resolved' for them")
        if tr.electrolyte.model == "poisson" or tr.oxide.gradient_energy > 0:
            raise ValueError("transport.model: 'shell' is electroneutral without a gradient energy "
                             "(electrolyte.model: electroneutral, oxide.gradient_energy: 0); use 'resolved'")
    if tr.mechanism.thermal:
        for layer in case.geometry.layers:
            props = materials.get(layer.material).properties if layer.material else {}
            missing = [k for k in ("thermal_conductivity", "density", "heat_capacity") if k not in props]
            if missing:
                raise ValueError(f"transport.mechanism.thermal: layer {layer.name!r} (material {layer.material!r}) "
                                 f"has no {', '.join(missing)} in the material library")


def check_limits(case: Case) -> None:
    """The mesh, the outputs and the time steps a run would need, against ``limits``."""
    lim, g, h = case.limits, case.geometry, case.mesh.cell_size
    plan_cells = g.plate.length * g.plate.width / h**2
    through = sum(layer.elements for layer in g.layers)
    # the plan mesh is always built (conductors); the transport mesh is extruded from it or a section
    meshes = {"plan": plan_cells, "3D stack": plan_cells * through} if case.mesh.dimension == 3 else \
        {"plan": plan_cells, "2D section": g.plate.length / h * through}
    what, cells = max(meshes.items(), key=lambda kv: kv[1])
    if cells > lim.cells:
        raise ValueError(f"mesh.cell_size: {h:g} m makes a {what} mesh of about {cells:.3g} cells (allowed: "
                         f"limits.cells = {lim.cells}; use a coarser cell_size or raise limits.cells)")
    if case.transport is None:
        return
    from femion.protocol.stages import output_count

    runs: list[tuple[str, float, object]]
    if case.protocol is not None:
        runs = [(f"protocol[{i}]", s.duration or 0.0, s) for i, s in enumerate(case.protocol)]
    else:
        assert case.transport.duration is not None  # check_case: a duration or a protocol
        runs = [("transport", case.transport.duration, case.transport)]
    counts = [output_count(d, s) for _, d, s in runs]
    if sum(counts) > lim.outputs:
        k = max(range(len(runs)), key=counts.__getitem__)
        where, _, s = runs[k]
        key = "output_every" if getattr(s, "output_every", None) is not None else "outputs"
        raise ValueError(f"{where}.{key}: the run would write {sum(counts)} outputs (allowed: limits.outputs = "
                         f"{lim.outputs}; write fewer or raise limits.outputs)")
    dt_max = case.transport.steps.max
    steps = [d / dt_max for _, d, _ in runs]
    if not math.isfinite(sum(steps)) or sum(steps) > lim.steps:
        k = max(range(len(runs)), key=steps.__getitem__)
        where = runs[k][0] + (".for" if case.protocol is not None else ".duration")
        raise ValueError(f"{where}: the run needs at least {sum(steps):.3g} time steps of transport.steps.max = "
                         f"{dt_max:g} s (allowed: limits.steps = {lim.steps}; shorten the run or raise "
                         "transport.steps.max or limits.steps)")
