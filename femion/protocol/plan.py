"""A case's protocol as planned stages: absolute times, output times, controls, labels.

:func:`check_protocol` asks each stage's action whether the device can run it;
:func:`plan_protocol` asks each for its controls and label and lays the stages out in time.
A case without a protocol runs its drive for ``transport.duration`` (:func:`stages_of`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from femion.protocol.actions import ACTIONS, CheckState, PlanState
from femion.protocol.controls import Controls
from femion.protocol.layers import electron_conductor


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


@dataclass(frozen=True)
class DriveStage:
    """The one stage of a case without a protocol: its drive on for ``transport.duration``."""

    duration: float
    outputs: int | None
    conductor: str
    action: str = "drive"
    name: str = "drive"
    voltage: float | None = None
    current: float | None = None
    output_every: float | None = None


def stages_of(case) -> list:
    """The case's stages, or the single drive of a case without a protocol (on the film's
    conductor if that is driven, else the first drive)."""
    if case.protocol is not None:
        return list(case.protocol)
    conductor = electron_conductor(case)
    driven = [d.conductor for d in case.drives]
    return [DriveStage(case.transport.duration, case.transport.outputs,
                       conductor if conductor in driven else driven[0])]


def check_protocol(case) -> None:
    """ValueError ('protocol[i].key: what is allowed') for a protocol the device cannot run."""
    state = CheckState(case)
    for i, s in enumerate(case.protocol):
        ACTIONS[s.action].check(s, f"protocol[{i}]", state)


def output_count(duration: float, stage) -> int:
    """How many output times a stage of ``duration`` s gets (as :func:`output_times`, without listing them)."""
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


def output_times(t0: float, t1: float, stage) -> tuple[float, ...]:
    """The output times of a stage from ``t0`` to ``t1``: every ``output_every`` (and its end), or
    ``outputs`` (default 2) evenly spaced, the last at its end; none if it takes no time."""
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


def plan_protocol(case, solutions: dict[str, tuple[float, float]]) -> list[PlannedStage]:
    """Absolute times, outputs and controls of every stage.

    ``solutions``: conductor → (current A, voltage V) of the conductor stage's solution for that
    drive; a stage's drive is that solution scaled linearly (the sheet problem is linear).
    """
    out: list[PlannedStage] = []
    t = 0.0
    state = PlanState(case, solutions)
    for i, s in enumerate(stages_of(case)):
        dt = s.duration or 0.0
        p = ACTIONS[s.action].plan(s, state)
        out.append(PlannedStage(i, s.name or f"{i}_{s.action}", s.action, t, t + dt, output_times(t, t + dt, s),
                                p.controls, p.label, p.current, p.voltage))
        t += dt
    return out
