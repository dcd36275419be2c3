"""The stage actions of a protocol (seed 000, P0–P3), one class each, and their registry.

An action says everything a stage of its kind means: its one-line form (:attr:`form`,
:attr:`pattern`, :meth:`read`), the fields it takes (:meth:`check_fields`, for the case schema),
what the device must offer it (:meth:`check`), the :class:`~femion.protocol.controls.Controls`,
label, current and voltage it plans (:meth:`plan`), and what the report measures in it
(:attr:`metrics`, :attr:`report_text`). :data:`ACTIONS` lists them in the order the schema and
the one-line parser try them; a new kind of stage is one more class here.

A *stage* is anything with the attributes of :class:`femion.config.schema.Stage`: action,
duration (s, or None), voltage, current, conductor, output_every, outputs, name.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from femion.protocol.controls import Controls
from femion.protocol.layers import drivable_conductors, electron_conductor

_Q = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?\s*[A-Za-zµΩ/*^0-9]+"

#: what the report measures in a stage that moves the film's ions / lets them relax
MOTION_TEXT = ("Direction: the {ion}-weighted centroid moved toward (+1) or away from (−1) the end the current "
               "flows to, 0 if by less than {motion_tol:g} of the plate length. Bleaching front: where θ̄ rises "
               "back to half the stage-start mean filling, scanning from the source end.")
RELAXATION_TEXT = ("Relaxation τ: e-folding time of the std of θ̄ (least-squares fit of its log over the outputs "
                   "above {relax_floor:.0%} of the initial value).")


@dataclass
class CheckState:
    """What :meth:`StageAction.check` sees of the stages before (``last_drive``: the conductor
    of the latest drive)."""

    case: object
    last_drive: str | None = None


@dataclass
class PlanState:
    """What :meth:`StageAction.plan` carries from stage to stage: whether the electrolyte still
    exchanges, the (conductor, scale) of the latest drive."""

    case: object
    solutions: dict  # conductor → (current A, voltage V) of the conductor stage's solution
    exchange: bool = True
    last_drive: tuple | None = None


@dataclass(frozen=True)
class Planned:
    """An action's plan of one stage."""

    controls: Controls
    label: str
    current: float | None = None  # A, signed (drives)
    voltage: float | None = None  # V (drives and injection)


class StageAction:
    """Base of the stage actions (see the module doc); the class attributes describe the action."""

    name = ""
    form = ""  # the one-line form, e.g. 'reverse for 5 min'
    pattern: re.Pattern  # the one-line form's regular expression, groups named as the stage's keys
    needs_duration = True
    takes_source = False  # may give voltage, current, conductor ('through')
    metrics: str | None = None  # what the report measures: "motion", "relaxation" or None
    report_text = ""  # how the report explains those metrics

    def read(self, groups: dict) -> dict:
        """The stage mapping of a one-line form's match groups."""
        return {"action": self.name, **{k: v for k, v in groups.items() if v is not None}}

    def check_fields(self, stage) -> None:
        """ValueError if the stage's own fields do not fit the action (the schema's check)."""
        if self.needs_duration and stage.duration is None:
            raise ValueError(f"a {self.name} stage needs 'for' (a duration, e.g. '5 min')")
        if not self.takes_source and (stage.voltage is not None or stage.current is not None
                                      or stage.conductor is not None):
            raise ValueError(f"a {self.name} stage takes no voltage, current or conductor")

    def check(self, stage, where: str, state: CheckState) -> None:
        """ValueError ('protocol[i].key: ...') if the case's device cannot run the stage."""

    def plan(self, stage, state: PlanState) -> Planned:
        """The stage's controls, label, current and voltage."""
        return Planned(Controls(exchange=state.exchange), self.name)


class Inject(StageAction):
    """inject: ``voltage`` between the top electrode (+) and the film's conductor (−)."""

    name, form = "inject", "inject 3 V for 2 min"
    pattern = re.compile(rf"^inject\s+(?P<voltage>{_Q})\s+for\s+(?P<for>.+)$")
    takes_source = True

    def check_fields(self, stage) -> None:
        super().check_fields(stage)
        if stage.voltage is None or stage.current is not None:
            raise ValueError("inject needs a voltage (top electrode + to the film's conductor -), e.g. '3 V'")

    def check(self, stage, where: str, state: CheckState) -> None:
        case = state.case
        film = electron_conductor(case)
        if case.transport.top_electrode is None:
            raise ValueError(f"{where}: inject needs transport.top_electrode (the electrode on the electrolyte)")
        if film is None:
            raise ValueError(f"{where}: inject needs a conductor under the oxide or contacts on it")
        if not any(c.conductor == film for c in case.geometry.contacts):
            raise ValueError(f"{where}: inject needs a contact on {film} (geometry.contacts)")

    def plan(self, stage, state: PlanState) -> Planned:
        return Planned(Controls(inject_voltage=stage.voltage, exchange=state.exchange),
                       f"inject {stage.voltage:.3g} V", voltage=stage.voltage)


class _Driving(StageAction):
    """A stage with a drive on: a multiple of a conductor's solved drive (:meth:`drive_of`)."""

    metrics, report_text = "motion", MOTION_TEXT

    def drive_of(self, stage, state: PlanState) -> tuple[str, float]:
        """(conductor, scale of its solved drive) of the stage."""
        raise NotImplementedError

    def plan(self, stage, state: PlanState) -> Planned:
        conductor, scale = self.drive_of(stage, state)
        state.last_drive = (conductor, scale)
        I0, V0 = state.solutions[conductor]
        current, voltage = scale * I0, scale * V0
        return Planned(Controls(drive=conductor, scale=scale, exchange=state.exchange),
                       f"{self.name} {current:+.3g} A {conductor}", current, voltage)


class Drive(_Driving):
    """drive: a drive of ``drives`` (``through`` its conductor, default the first) at ``current``
    or ``voltage`` (default: the drive's own value; the sign sets the direction)."""

    name, form = "drive", "drive 0.2 A through bottom_ito for 5 min"
    pattern = re.compile(rf"^drive(?:\s+(?P<value>{_Q}))?\s+through\s+(?P<through>\w+)\s+for\s+(?P<for>.+)$")
    takes_source = True

    def read(self, groups: dict) -> dict:
        out = super().read(groups)
        value = out.pop("value", None)
        if value is not None:
            volts = re.search(r"V\w*$", value.strip()) and not value.strip().endswith("A")
            out["voltage" if volts else "current"] = value
        return out

    def check_fields(self, stage) -> None:
        super().check_fields(stage)
        if stage.voltage is not None and stage.current is not None:
            raise ValueError("a drive stage takes current or voltage, not both")
        if 0.0 in (stage.current, stage.voltage):
            raise ValueError("a drive of zero: use 'relax' for drive off")

    def check(self, stage, where: str, state: CheckState) -> None:
        case = state.case
        conductor = stage.conductor or case.drives[0].conductor
        drivable = drivable_conductors(case)
        if conductor not in drivable:
            raise ValueError(f"{where}.through: {conductor!r} cannot drive the film (allowed: "
                             f"{', '.join(drivable) or 'none'}: a drive of 'drives' on the film's conductor, or on "
                             f"the conductor above the electrolyte with transport.top_electrode)")
        state.last_drive = conductor

    def drive_of(self, stage, state: PlanState) -> tuple[str, float]:
        conductor = stage.conductor or state.case.drives[0].conductor
        I0, V0 = state.solutions[conductor]
        scale = stage.current / I0 if stage.current is not None else \
            stage.voltage / V0 if stage.voltage is not None else 1.0
        return conductor, scale


class Reverse(_Driving):
    """reverse: the previous drive with the opposite sign."""

    name, form = "reverse", "reverse for 5 min"
    pattern = re.compile(r"^reverse\s+for\s+(?P<for>.+)$")

    def check(self, stage, where: str, state: CheckState) -> None:
        if state.last_drive is None:
            raise ValueError(f"{where}: reverse needs an earlier drive stage")

    def drive_of(self, stage, state: PlanState) -> tuple[str, float]:
        conductor, scale = state.last_drive
        return conductor, -scale


class Relax(StageAction):
    """relax: every drive off (open circuit)."""

    name, form = "relax", "relax for 20 min"
    pattern = re.compile(r"^relax\s+for\s+(?P<for>.+)$")
    metrics, report_text = "relaxation", RELAXATION_TEXT

    def plan(self, stage, state: PlanState) -> Planned:
        return Planned(Controls(exchange=state.exchange), "relax (drive off)")


class RemoveElectrolyte(StageAction):
    """remove_electrolyte: no more exchange with the film, the state kept (may take no time)."""

    name, form = "remove_electrolyte", "remove electrolyte"
    pattern = re.compile(r"^remove\s+electrolyte(?:\s+for\s+(?P<for>.+))?$")
    needs_duration = False
    metrics, report_text = "relaxation", RELAXATION_TEXT

    def plan(self, stage, state: PlanState) -> Planned:
        state.exchange = False
        return Planned(Controls(exchange=False), "electrolyte removed")


#: the registry: action name → action, in the order the one-line parser tries them
ACTIONS: dict[str, StageAction] = {a.name: a for a in (Inject(), Drive(), Reverse(), Relax(), RemoveElectrolyte())}
ACTION_NAMES: tuple[str, ...] = tuple(ACTIONS)

ONE_LINE_FORMS = (", ".join(f"'{a.form}'" for a in ACTIONS.values())
                  + ", 'repeat 3: drive ...; reverse ...', each with an optional ', output every 1 min' or "
                    "', 4 outputs'")


def with_metrics(kind: str) -> tuple[str, ...]:
    """Names of the actions whose stages the report measures by ``kind`` ("motion", "relaxation")."""
    return tuple(n for n, a in ACTIONS.items() if a.metrics == kind)


def report_texts() -> list[str]:
    """The report's explanations of the actions' metrics, each once, in registry order."""
    return list(dict.fromkeys(a.report_text for a in ACTIONS.values() if a.report_text))


def parse_stage(text: str) -> dict:
    """One-line stage → stage mapping, e.g. 'drive 0.2 A through bottom_ito for 5 min, output
    every 1 min' → {action: drive, current: '0.2 A', through: bottom_ito, for: '5 min',
    output_every: '1 min'}."""
    line = " ".join(text.split())
    extra = {}
    m = re.search(r",\s*output\s+every\s+(?P<every>.+)$", line)
    if m:
        extra["output_every"], line = m["every"], line[: m.start()]
    m = re.search(r",\s*(?P<n>\d+)\s+outputs?$", line)
    if m:
        extra["outputs"], line = int(m["n"]), line[: m.start()]
    for a in ACTIONS.values():
        m = a.pattern.match(line)
        if m:
            return {**a.read(m.groupdict()), **extra}
    raise ValueError(f"cannot read stage {text!r} (forms: {ONE_LINE_FORMS})")
