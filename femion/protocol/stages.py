"""The experiment's protocol: stages that set the device's controls in time (seed 000, P0–P3).

A case's ``protocol`` is a list of stages (inject, drive, reverse, relax, remove electrolyte;
one-line forms and repeats are read by :mod:`femion.config.schema`). :func:`plan_protocol` turns it into
:class:`PlannedStage` s with absolute times, output times and :class:`Controls`: which drive is
on and at what multiple of the conductor stage's solution, the top electrode's state, and
whether the electrolyte still exchanges with the film. Applying the controls to the transport
problem is :meth:`femion.transport.device.Device.apply`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

DRIVE_ACTIONS = ("drive", "reverse")


@dataclass(frozen=True)
class Controls:
    """What the source does during a stage.

    drive: the conductor driven (a drive of the case), None when every drive is off (open
    circuit); scale: multiple of the conductor stage's solution for that drive (its sign is the
    direction); inject_voltage: φ_top − φ_film (V) while injecting, else None; exchange: False
    once the electrolyte is removed.
    """

    drive: str | None = None
    scale: float = 0.0
    inject_voltage: float | None = None
    exchange: bool = True


@dataclass(frozen=True)
class PlannedStage:
    index: int
    name: str
    action: str
    t_start: float
    t_end: float
    output_times: tuple[float, ...]
    controls: Controls
    label: str
    current: float | None = None  # A, signed (drives)
    voltage: float | None = None  # V (drives and injection)


def electron_conductor(case) -> str | None:
    """The layer that gives the film its electrons: the conductor beneath the oxide, or the
    oxide itself when contacts sit on it (seed 000 Model I); None if neither."""
    layers = case.geometry.layers
    i = next(k for k, layer in enumerate(layers) if layer.kind == "oxide")
    if any(c.conductor == layers[i].name for c in case.geometry.contacts):
        return layers[i].name
    return next((layers[k].name for k in range(i - 1, -1, -1) if layers[k].kind == "conductor"), None)


def top_conductor(case) -> str | None:
    """The conductor directly above the electrolyte (the top ITO), if any."""
    layers = case.geometry.layers
    i = next(k for k, layer in enumerate(layers) if layer.kind == "oxide")
    if i + 2 < len(layers) and layers[i + 2].kind == "conductor":
        return layers[i + 2].name
    return None


def _stages(case):
    """The case's stages, or the single drive of a case without a protocol."""
    if case.protocol is not None:
        return list(case.protocol)
    from femion.config.schema import Stage

    tr = case.transport
    conductor = electron_conductor(case)
    driven = [d.conductor for d in case.drives]
    return [Stage(action="drive", duration=f"{tr.duration} s", outputs=tr.outputs,
                  conductor=conductor if conductor in driven else driven[0], name="drive")]


def check_protocol(case) -> None:
    """ValueError ('protocol[i].key: what is allowed') for a protocol the device cannot run."""
    driven = [d.conductor for d in case.drives]
    film = electron_conductor(case)
    top = top_conductor(case)
    drivable = [c for c in driven if c == film or (c == top and case.transport.top_electrode is not None)]
    last_drive = None
    for i, s in enumerate(case.protocol):
        where = f"protocol[{i}]"
        if s.action == "inject":
            if case.transport.top_electrode is None:
                raise ValueError(f"{where}: inject needs transport.top_electrode (the electrode on the electrolyte)")
            if film is None:
                raise ValueError(f"{where}: inject needs a conductor under the oxide or contacts on it")
            if not any(c.conductor == film for c in case.geometry.contacts):
                raise ValueError(f"{where}: inject needs a contact on {film} (geometry.contacts)")
        elif s.action == "drive":
            conductor = s.conductor or driven[0]
            if conductor not in drivable:
                raise ValueError(f"{where}.through: {conductor!r} cannot drive the film (allowed: "
                                 f"{', '.join(drivable) or 'none'}: a drive of 'drives' on the film's conductor, or on "
                                 f"the conductor above the electrolyte with transport.top_electrode)")
            last_drive = conductor
        elif s.action == "reverse" and last_drive is None:
            raise ValueError(f"{where}: reverse needs an earlier drive stage")


def output_count(duration: float, stage) -> int:
    """How many output times a stage of ``duration`` s gets (as :func:`_output_times`, without listing them)."""
    every = getattr(stage, "output_every", None)
    if duration <= 0:
        return 0
    if every is None:
        return stage.outputs or 2
    ratio = duration / every
    if not np.isfinite(ratio):
        return np.iinfo(np.int64).max
    n = max(int(np.floor(ratio + 1e-9)), 1)
    return n + (duration - n * every > 1e-9 * duration)


def _output_times(t0: float, t1: float, stage) -> tuple[float, ...]:
    if t1 <= t0:
        return ()
    if stage.output_every is not None:
        n = max(int(np.floor((t1 - t0) / stage.output_every + 1e-9)), 1)
        times = [t0 + k * stage.output_every for k in range(1, n + 1)]
        if t1 - times[-1] > 1e-9 * t1:
            times.append(t1)
        return tuple(min(t, t1) for t in times)
    n = stage.outputs or 2
    return tuple(t0 + (t1 - t0) * k / n for k in range(1, n + 1))


def _fmt(value: float, unit: str) -> str:
    return f"{value:+.3g} {unit}"


def plan_protocol(case, solutions: dict[str, tuple[float, float]]) -> list[PlannedStage]:
    """Absolute times, outputs and controls of every stage.

    ``solutions``: conductor → (current A, voltage V) of the conductor stage's solution for that
    drive; a stage's drive is that solution scaled linearly (the sheet problem is linear).
    """
    out: list[PlannedStage] = []
    t = 0.0
    exchange = True
    last = None  # (conductor, scale) of the previous drive
    for i, s in enumerate(_stages(case)):
        dt = s.duration or 0.0
        controls, label, current, voltage = Controls(exchange=exchange), s.action, None, None
        if s.action == "inject":
            controls = Controls(inject_voltage=s.voltage, exchange=exchange)
            label, voltage = f"inject {s.voltage:.3g} V", s.voltage
        elif s.action in DRIVE_ACTIONS:
            if s.action == "drive":
                conductor = s.conductor or case.drives[0].conductor
                I0, V0 = solutions[conductor]
                scale = s.current / I0 if s.current is not None else s.voltage / V0 if s.voltage is not None else 1.0
            else:
                conductor, scale = last[0], -last[1]
                I0, V0 = solutions[conductor]
            last = (conductor, scale)
            current, voltage = scale * I0, scale * V0
            controls = Controls(drive=conductor, scale=scale, exchange=exchange)
            label = f"{s.action} {_fmt(current, 'A')} {conductor}"
        elif s.action == "remove_electrolyte":
            exchange = False
            controls = Controls(exchange=False)
            label = "electrolyte removed"
        elif s.action == "relax":
            label = "relax (drive off)"
        name = s.name or f"{i}_{s.action}"
        out.append(PlannedStage(i, name, s.action, t, t + dt, _output_times(t, t + dt, s), controls, label,
                                current, voltage))
        t += dt
    return out


def ramp(previous: Controls, new: Controls, voltages: dict[str, float], max_jump: float) -> list[Controls]:
    """Intermediate controls from ``previous`` to ``new`` changing no source by more than
    ``max_jump`` volts per increment: a drive's scale (or the injection voltage) moves linearly;
    between different sources the old one is first brought to zero (contacts still connected),
    then the new one raised from zero."""
    from dataclasses import replace

    def volts(c: Controls) -> float:
        if c.inject_voltage is not None:
            return abs(c.inject_voltage)
        return abs(c.scale) * abs(voltages.get(c.drive, 0.0)) if c.drive is not None else 0.0

    def scaled(c: Controls, s: float) -> Controls:
        if c.inject_voltage is not None:
            return replace(c, inject_voltage=s * c.inject_voltage)
        return replace(c, scale=s * c.scale)

    if previous.drive == new.drive and previous.drive is not None and previous.inject_voltage is None \
            and new.inject_voltage is None:
        n = max(int(np.ceil(abs(new.scale - previous.scale) * abs(voltages.get(new.drive, 0.0)) / max_jump)), 1)
        return [replace(new, scale=previous.scale + (new.scale - previous.scale) * k / n) for k in range(1, n + 1)]
    down = max(int(np.ceil(volts(previous) / max_jump)), 1) if previous.drive or previous.inject_voltage else 0
    up = max(int(np.ceil(volts(new) / max_jump)), 1)
    path = [scaled(previous, 1 - k / down) for k in range(1, down + 1)]
    return path + [scaled(new, k / up) for k in range(0, up + 1)]
