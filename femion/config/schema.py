"""The case file: one YAML document holding every setting of a run.

The schema is pydantic; every dimensional value carries its unit and is
stored in SI (see :mod:`femion.config.units`). :func:`load_case` returns a validated
:class:`Case` or raises :class:`CaseError` whose message is one line naming
the offending key path and what is allowed. Conversion to the plain SI specs
that the physics modules take happens here, at the edge.
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from femion.laws import materials
from femion.laws.host import DIFFUSIVITY_LAWS, MODELS as HOST_MODELS
from femion.laws.kinetics import LAWS as RATE_LAWS
from femion.laws.lorentz import STEP_LAWS
from femion.config.units import format_si, to_si

# ---------------------------------------------------------------- quantities


def _quantity(kind: str, *, positive: bool = False, nonnegative: bool = False):
    def parse(value: Any) -> float:
        v = to_si(value, kind)
        if positive and not v > 0:
            raise ValueError(f"must be > 0 (got {value!r})")
        if nonnegative and v < 0:
            raise ValueError(f"must be >= 0 (got {value!r})")
        return v

    return Annotated[
        float,
        BeforeValidator(parse),
        PlainSerializer(lambda v: format_si(v, kind), return_type=str),
    ]


Length = _quantity("length")
PositiveLength = _quantity("length", positive=True)
Current = _quantity("current")
Voltage = _quantity("voltage")
SheetResistance = _quantity("sheet_resistance", positive=True)
Resistivity = _quantity("resistivity", positive=True)
FluxDensity = _quantity("magnetic_flux_density")
PositiveFluxDensity = _quantity("magnetic_flux_density", positive=True)
Time = _quantity("time", positive=True)
Temperature = _quantity("temperature", positive=True)
Diffusivity = _quantity("diffusivity", positive=True)
Concentration = _quantity("concentration", positive=True)
CurrentDensity = _quantity("current_density", nonnegative=True)
MolarEnergy = _quantity("molar_energy")
Energy = _quantity("energy", positive=True)
NonnegativeLength = _quantity("length", nonnegative=True)
LengthPerTesla = _quantity("length_per_tesla", nonnegative=True)
ArealCapacitance = _quantity("areal_capacitance", nonnegative=True)
GradientEnergy = _quantity("gradient_energy", nonnegative=True)
ColorationEfficiency = _quantity("coloration_efficiency", positive=True)
SignedCurrent = _quantity("current")
Fraction = Annotated[float, Field(gt=0.0, lt=1.0)]

Point2 = tuple[Length, Length]
Point3 = tuple[Length, Length, Length]
Name = Annotated[str, Field(pattern=r"^[A-Za-z][A-Za-z0-9_]*$", max_length=64)]

PLATE_EDGES = ("x_min", "x_max", "y_min", "y_max")


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True, allow_inf_nan=False)


# -------------------------------------------------------------------- shapes


def _apply_unit(data: Any) -> Any:
    """``{unit: mm, rectangle: [[0, 0], [5, 20]]}`` → every bare number gets ``mm``."""
    if not isinstance(data, dict) or "unit" not in data:
        return data
    unit = data["unit"]
    if not isinstance(unit, str):
        raise ValueError(f"unit must be a unit name like 'mm' (got {unit!r})")

    def attach(v):
        if isinstance(v, bool):
            return v
        if isinstance(v, (int, float)):
            return f"{v} {unit}"
        if isinstance(v, (list, tuple)):
            return [attach(x) for x in v]
        if isinstance(v, dict):
            return {k: attach(x) for k, x in v.items()}
        return v

    return {k: (v if k == "unit" else attach(v)) for k, v in data.items() if k != "unit"}


class Circle(_Model):
    centre: Point2
    radius: PositiveLength


class Strip(_Model):
    """A full-length strip along x, ``width`` wide, centred at ``centre_y`` (default: plate centre)."""

    width: PositiveLength
    centre_y: Length | None = None


class TwoTrack(_Model):
    """The digit "2" drawn as a conducting track of width ``track_width``.

    With ``pad: start`` or ``pad: end`` the shape is instead the contact pad
    covering that end of the track (start = the free end of the top arc,
    end = the right end of the bottom bar).
    """

    track_width: PositiveLength
    margin: Length = 2e-3
    pad: Literal["start", "end"] | None = None


SHAPE_KINDS = ("rectangle", "polygon", "circle", "strip", "two_track")


class Shape(_Model):
    """One plan shape: exactly one of rectangle, polygon, circle, strip, two_track."""

    rectangle: tuple[Point2, Point2] | None = None
    polygon: list[Point2] | None = None
    circle: Circle | None = None
    strip: Strip | None = None
    two_track: TwoTrack | None = None

    _unit = model_validator(mode="before")(classmethod(lambda cls, d: _apply_unit(d)))

    @model_validator(mode="after")
    def _exactly_one(self):
        given = [k for k in SHAPE_KINDS if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError(f"a shape needs exactly one of {', '.join(SHAPE_KINDS)} (got {given or 'none'})")
        if self.polygon is not None and len(self.polygon) < 3:
            raise ValueError("polygon: needs at least 3 points")
        if self.rectangle is not None:
            (x0, y0), (x1, y1) = self.rectangle
            if not (x1 > x0 and y1 > y0):
                raise ValueError("rectangle: give [[x_min, y_min], [x_max, y_max]] with max > min")
        return self

    @property
    def kind(self) -> str:
        return next(k for k in SHAPE_KINDS if getattr(self, k) is not None)


class Pattern(_Model):
    """Where a layer exists in plan: the union of ``include`` minus the union of ``exclude``."""

    include: list[Shape] = Field(min_length=1)
    exclude: list[Shape] = Field(default_factory=list)


def _pattern(value: Any) -> Any:
    if value is None or value == "full":
        return None
    if isinstance(value, list):
        return {"include": value}
    if isinstance(value, dict) and not ({"include", "exclude"} & set(value)):
        return {"include": [value]}
    if isinstance(value, dict) and "unit" in value:  # one unit for every shape of the pattern
        unit = value["unit"]
        return {k: [({"unit": unit, **sh} if isinstance(sh, dict) and "unit" not in sh else sh) for sh in v]
                if isinstance(v, list) else v for k, v in value.items() if k != "unit"}
    if isinstance(value, str):
        raise ValueError(f"pattern must be 'full', a shape, a list of shapes or {{include, exclude}} (got {value!r})")
    return value


PatternField = Annotated[Pattern | None, BeforeValidator(_pattern)]

# -------------------------------------------------------------------- stack


class Plate(_Model):
    length: PositiveLength  # x
    width: PositiveLength  # y


class Layer(_Model):
    name: Name
    material: str
    thickness: PositiveLength
    pattern: PatternField = None
    elements: int = Field(1, ge=1, le=64)
    sheet_resistance: SheetResistance | None = None
    resistivity: Resistivity | None = None

    @field_validator("material")
    @classmethod
    def _known_material(cls, v: str) -> str:
        if v not in materials.LIBRARY:
            raise ValueError(f"unknown material {v!r}; allowed: {', '.join(sorted(materials.LIBRARY))}")
        return v

    @model_validator(mode="after")
    def _overrides_fit(self):
        kind = materials.get(self.material).kind
        if self.sheet_resistance is not None and kind != "conductor":
            raise ValueError(f"sheet_resistance is only for conductor layers ({self.material} is {kind})")
        if self.sheet_resistance is not None and self.resistivity is not None:
            raise ValueError("give sheet_resistance or resistivity, not both")
        return self

    @property
    def kind(self) -> str:
        return materials.get(self.material).kind

    @property
    def sheet_conductance(self) -> float:
        """G = 1/R_s = t/ρ in siemens (per square)."""
        if self.sheet_resistance is not None:
            return 1.0 / self.sheet_resistance
        rho = self.resistivity if self.resistivity is not None else materials.get(self.material).value("resistivity")
        return self.thickness / rho


class Contact(_Model):
    """A copper contact on a conductor: a whole plate edge (``at``) or a pad (``region``)."""

    name: Name
    conductor: Name
    at: Literal["x_min", "x_max", "y_min", "y_max"] | None = None
    region: Shape | None = None

    @model_validator(mode="after")
    def _one_place(self):
        if (self.at is None) == (self.region is None):
            raise ValueError("a contact needs exactly one of 'at' (a plate edge: x_min, x_max, y_min, y_max) or 'region' (a shape)")
        return self


class Geometry(_Model):
    plate: Plate
    layers: list[Layer] = Field(min_length=1)
    contacts: list[Contact] = Field(default_factory=list)
    regions: dict[Name, Shape] = Field(default_factory=dict)


class Drive(_Model):
    """Current (or voltage) applied between two contacts of one conductor.

    A positive current flows inside the conductor from contact ``from`` to ``to``;
    ``to`` is grounded (0 V). A negative value reverses it.
    """

    conductor: Name
    from_: Name = Field(alias="from")
    to: Name
    current: Current | None = None
    voltage: Voltage | None = None

    @model_validator(mode="after")
    def _one_control(self):
        if (self.current is None) == (self.voltage is None):
            raise ValueError("a drive needs exactly one of 'current' (e.g. '0.2 A') or 'voltage' (e.g. '4 V')")
        if self.from_ == self.to:
            raise ValueError(f"'from' and 'to' are the same contact ({self.to!r})")
        if self.current == 0.0 or self.voltage == 0.0:
            raise ValueError("a drive of zero does nothing; leave the drive out instead")
        return self


class MeshSettings(_Model):
    cell_size: PositiveLength = 1e-3
    dimension: Literal[2, 3] = 3
    section_y: Length | None = None
    solver: Literal["direct", "iterative"] = "direct"


class MagneticSettings(_Model):
    enabled: bool = True
    external_field: tuple[FluxDensity, FluxDensity, FluxDensity] = (0.0, 0.0, 0.0)
    points: list[Point3] = Field(default_factory=list)
    method: Literal["auto", "direct", "fmm"] = "auto"


class OutputSettings(_Model):
    figures: bool = True
    fields: list[Literal["vtx", "vtkhdf"]] = Field(default_factory=lambda: ["vtx", "vtkhdf"])


# ---------------------------------------------------------------- transport


class IonSpec(_Model):
    """An electrolyte ion: valence, diffusivity and initial (bulk) concentration."""

    name: Name
    valence: int = Field(ge=-3, le=3)
    diffusivity: Diffusivity
    concentration: Concentration

    @field_validator("valence")
    @classmethod
    def _charged(cls, v: int) -> int:
        if v == 0:
            raise ValueError("valence must be non-zero (allowed: -3..-1, 1..3)")
        return v


class HostSpec(_Model):
    """Open-circuit potential of the host: U(θ) = U0 − μ(θ)/(zF) (femion.laws.host); U0 defaults to the
    oxide material's ``standard_potential``."""

    model: Literal[HOST_MODELS] = "ideal"
    standard_potential: Voltage | None = None  # default: the oxide material's
    interaction: MolarEnergy = 0.0
    table: list[tuple[Fraction, Voltage]] | None = None

    @model_validator(mode="after")
    def _table_fits(self):
        if (self.model == "tabulated") != (self.table is not None):
            raise ValueError("a 'table' of [theta, U] pairs is needed exactly when model is 'tabulated'")
        if self.model == "ideal" and self.interaction != 0.0:
            raise ValueError("interaction is for model 'regular_solution'")
        if self.table is not None:
            from femion.laws.host import validate_table

            validate_table([t for t, _ in self.table], [u for _, u in self.table])
        return self


class OxideTransport(_Model):
    initial_filling: Fraction = 0.3
    diffusivity: Diffusivity = 1e-14
    diffusivity_law: Literal[tuple(DIFFUSIVITY_LAWS)] = "constant"
    max_concentration: Concentration | None = None  # default: from the material library
    host: HostSpec = HostSpec()
    gradient_energy: GradientEnergy = 0.0  # Cahn–Hilliard κ, e.g. '1e-12 J*m^2/mol'



class ElectrolyteTransport(_Model):
    ions: list[IonSpec] | None = None  # default: from the material library
    exchanging: Name | None = None  # default: the first cation
    model: Literal["electroneutral", "poisson"] = "electroneutral"
    relative_permittivity: Annotated[float, Field(gt=0)] | None = None  # default: from the material


class KineticsSpec(_Model):
    law: Literal[tuple(RATE_LAWS)] = "butler_volmer"
    exchange_current_density: CurrentDensity = 1.0
    alpha_a: Fraction = 0.5
    alpha_c: Fraction = 0.5
    reorganization_energy: Energy | None = None  # Marcus / MHC, e.g. '0.4 eV'
    activation_energy: MolarEnergy = 0.0  # Arrhenius: i0(T) = i0 exp(−Ea/R (1/T − 1/T_ref))
    reference_temperature: Temperature = 298.15
    # the paper's barrier picture: liquid-side barrier E_L, solid-side E_S; the asymmetry
    # shifts the equilibrium potential by −(E_L − E_S)/F (femion.laws.kinetics.barrier_equilibrium_shift)
    barrier_liquid: MolarEnergy | None = None
    barrier_solid: MolarEnergy | None = None

    @model_validator(mode="after")
    def _reorg(self):
        if self.law != "butler_volmer" and self.reorganization_energy is None:
            raise ValueError(f"law {self.law!r} needs reorganization_energy (e.g. '0.4 eV')")
        if (self.barrier_liquid is None) != (self.barrier_solid is None):
            raise ValueError("give both barrier_liquid and barrier_solid, or neither")
        return self


class TopElectrodeSpec(_Model):
    """Counter electrode on the electrolyte's top face: Butler–Volmer exchange of the cation.

    η_top = φ_top − φ_l − U_top: ``equilibrium_potential`` U_top is the top electrode's rest
    potential on the host's scale (vs Li/Li⁺ when the host's U0 is), so that a protocol's
    "inject 3 V" (φ_top − φ_bottom) means the cell voltage the paper applied.
    """

    potential: Voltage = 0.0
    equilibrium_potential: Voltage = 0.0
    exchange_current_density: CurrentDensity = 10.0
    capacitance: ArealCapacitance = 0.0  # double layer, e.g. '20 uF/cm^2'


class LorentzSpec(_Model):
    """Bulk magneto-migration switch and the step law of the current-driving closure (which is
    switched by ``transport.mechanism.lorentz_closure``)."""

    bulk: bool = False
    step_law: Literal[tuple(STEP_LAWS)] = "constant"
    step_length: NonnegativeLength = 0.0  # constant λ0, or λ_max for 'saturating'
    step_length_per_tesla: LengthPerTesla = 0.0  # 'proportional'
    half_field: PositiveFluxDensity | None = None  # 'saturating'

    def step_params(self) -> dict:
        if self.step_law == "constant":
            return {"lam0": self.step_length}
        if self.step_law == "proportional":
            return {"lam_per_tesla": self.step_length_per_tesla}
        if self.half_field is None:
            raise ValueError("step_law 'saturating' needs half_field")
        return {"lam_max": self.step_length, "B_half": self.half_field}


class StepSpec(_Model):
    initial: Time = 1.0
    min: Time = 1e-6
    max: Time = 60.0
    order: Literal[1, 2] = 2

    @model_validator(mode="after")
    def _ordered(self):
        if not self.min <= self.initial <= self.max:
            raise ValueError("need min <= initial <= max")
        return self


class MechanismSpec(_Model):
    """Which explanation of the motion is active (physics.md §3), so one experiment can be run
    under each: ``electrochemical`` — the oxide's electrons follow the driven conductor's ohmic
    drop (off: the drive makes only its magnetic field); ``lorentz_closure`` — the paper's
    interfacial step along n̂×B̂ (step law in ``transport.lorentz``)."""

    electrochemical: bool = True
    lorentz_closure: bool = False


class TransportSettings(_Model):
    """Coupled ion transport after the conductor stage (femion.transport.problem).

    Without a ``protocol`` the drives run for ``duration`` with ``outputs`` evenly spaced
    outputs; with one, the protocol sets the controls and times.
    """

    temperature: Temperature = 298.15
    duration: Time | None = None
    outputs: int = Field(5, ge=1)
    oxide: OxideTransport = OxideTransport()
    electrolyte: ElectrolyteTransport = ElectrolyteTransport()
    kinetics: KineticsSpec = KineticsSpec()
    top_electrode: TopElectrodeSpec | None = None
    lorentz: LorentzSpec = LorentzSpec()
    mechanism: MechanismSpec = MechanismSpec()
    steps: StepSpec = StepSpec()


class Limits(_Model):
    """Bounds that refuse absurd input before anything runs; raise one when a case really needs more."""

    cells: int = Field(2_000_000, ge=1)  # estimated cells of the largest mesh (plan, 3D stack or 2D section)
    stages: int = Field(1_000, ge=1)  # protocol stages once the repeats are expanded
    outputs: int = Field(10_000, ge=1)  # output times of one run
    steps: int = Field(100_000, ge=1)  # fewest time steps of one run: each stage's duration / transport.steps.max


# ----------------------------------------------------------------- protocol

STAGE_ACTIONS = ("inject", "drive", "reverse", "relax", "remove_electrolyte")
_Q = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?\s*[A-Za-zµΩ/*^0-9]+"
_STAGE_FORMS = ("'inject 3 V for 2 min', 'drive 0.2 A through bottom_ito for 5 min', 'reverse for 5 min', "
                "'relax for 20 min', 'remove electrolyte', 'repeat 3: drive ...; reverse ...', each with an "
                "optional ', output every 1 min' or ', 4 outputs'")
_ONE_LINE = [
    ("inject", re.compile(rf"^inject\s+(?P<voltage>{_Q})\s+for\s+(?P<for>.+)$")),
    ("drive", re.compile(rf"^drive(?:\s+(?P<value>{_Q}))?\s+through\s+(?P<through>\w+)\s+for\s+(?P<for>.+)$")),
    ("reverse", re.compile(r"^reverse\s+for\s+(?P<for>.+)$")),
    ("relax", re.compile(r"^relax\s+for\s+(?P<for>.+)$")),
    ("remove_electrolyte", re.compile(r"^remove\s+electrolyte(?:\s+for\s+(?P<for>.+))?$")),
]


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
    for action, pattern in _ONE_LINE:
        m = pattern.match(line)
        if m:
            out = {"action": action, **{k: v for k, v in m.groupdict().items() if v is not None}, **extra}
            value = out.pop("value", None)
            if value is not None:
                out["voltage" if re.search(r"V\w*$", value.strip()) and not value.strip().endswith("A") else "current"] = value
            return out
    raise ValueError(f"cannot read stage {text!r} (forms: {_STAGE_FORMS})")


def _expand_protocol(value: Any, info: ValidationInfo) -> Any:
    """Strings → mappings; 'repeat n: a; b' and {repeat: n, stages: [...]} → n copies of the stages,
    at most ``limits.stages`` in all."""
    if value is None:
        return None
    if not isinstance(value, list):
        raise ValueError("protocol must be a list of stages")
    if not value:
        raise ValueError("protocol: needs at least one stage (or leave the protocol out)")
    limit = (info.data.get("limits") or Limits()).stages
    out = []
    for k, item in enumerate(value):
        try:
            out.extend(_expand_item(item, limit - len(out), limit))
        except ValueError as exc:
            raise ValueError(f"protocol[{k}]: {exc}") from None
    return out


def _expand_item(item: Any, room: int, limit: int) -> list:
    if isinstance(item, str) and re.match(r"^\s*repeat\b", item):
        m = re.match(r"^\s*repeat\s+(\d+)\s*(?:times)?\s*:\s*(.+)$", item)
        if not m:
            raise ValueError(f"cannot read {item!r} (form: 'repeat 3: drive 0.2 A through bottom_ito for 5 min; "
                             "reverse for 5 min')")
        item = {"repeat": int(m[1]), "stages": [s for s in m[2].split(";") if s.strip()]}
    if isinstance(item, dict) and "repeat" in item:
        n, stages = item.get("repeat"), item.get("stages")
        if set(item) - {"repeat", "stages"} or not isinstance(n, int) or n < 1 or not isinstance(stages, list) \
                or not stages:
            raise ValueError("a repeat is {repeat: n >= 1, stages: [stage, ...]}")
        once = [x for s in stages for x in _expand_item(s, room, limit)]
        if len(once) * n > room:
            raise ValueError(f"repeat {n} makes {len(once) * n} stages, more than the protocol may have (allowed: "
                             f"limits.stages = {limit} in all; raise limits.stages if meant)")
        return once * n
    if room < 1:
        raise ValueError(f"more stages than the protocol may have (allowed: limits.stages = {limit}; raise "
                         "limits.stages if meant)")
    if isinstance(item, str):
        return [parse_stage(item)]
    return [item]


class Stage(_Model):
    """One protocol stage (femion.protocol.stages); ``for`` is its duration.

    inject: ``voltage`` between the top electrode (+) and the conductor under the oxide (−).
    drive: a drive of ``drives`` (``through`` its conductor, default the first) at ``current``
    or ``voltage`` (default: the drive's own value; the sign sets the direction).
    reverse: the previous drive with the opposite sign. relax: every drive off (open circuit).
    remove_electrolyte: no more exchange with the film, the state kept (may take no time).
    """

    action: Literal["inject", "drive", "reverse", "relax", "remove_electrolyte"]
    duration: Time | None = Field(None, alias="for")
    voltage: Voltage | None = None
    current: SignedCurrent | None = None
    conductor: Name | None = Field(None, alias="through")
    output_every: Time | None = None
    outputs: int | None = Field(None, ge=1)
    name: Name | None = None

    @model_validator(mode="after")
    def _fits_action(self):
        a = self.action
        if self.duration is None and a != "remove_electrolyte":
            raise ValueError(f"a {a} stage needs 'for' (a duration, e.g. '5 min')")
        if a == "inject" and (self.voltage is None or self.current is not None):
            raise ValueError("inject needs a voltage (top electrode + to the film's conductor -), e.g. '3 V'")
        if a == "drive" and self.voltage is not None and self.current is not None:
            raise ValueError("a drive stage takes current or voltage, not both")
        if a == "drive" and 0.0 in (self.current, self.voltage):
            raise ValueError("a drive of zero: use 'relax' for drive off")
        if a in ("reverse", "relax", "remove_electrolyte") and (
                self.voltage is not None or self.current is not None or self.conductor is not None):
            raise ValueError(f"a {a} stage takes no voltage, current or conductor")
        if self.output_every is not None and self.outputs is not None:
            raise ValueError("give output_every or outputs, not both")
        return self


ProtocolField = Annotated[list[Stage] | None, BeforeValidator(_expand_protocol)]


class OpticsSettings(_Model):
    """Coloration of the film (femion.laws.optics): ΔOD = CE·Q_A, T = T_bleached·10^(−ΔOD).

    ``coloration_efficiency`` defaults to the oxide material's; ``monitors`` are the plan squares
    whose mean transmittance is reported in time (the paper's L, M, R and T areas).
    """

    coloration_efficiency: ColorationEfficiency | None = None
    bleached_transmittance: Fraction = 0.85
    monitors: dict[Name, Shape] = Field(default_factory=dict)
    photos: Literal["stages", "outputs", "none"] = "stages"
    animation: Literal["gif", "mp4", "none"] = "gif"


class Case(_Model):
    name: Name
    description: str = ""
    observation: str = ""  # what the paper saw in the experiment this case reproduces
    geometry: Geometry
    drives: list[Drive] = Field(min_length=1)
    mesh: MeshSettings = MeshSettings()
    magnetic: MagneticSettings = MagneticSettings()
    output: OutputSettings = OutputSettings()
    transport: TransportSettings | None = None
    limits: Limits = Limits()  # before protocol: the protocol's repeats are expanded within limits.stages
    protocol: ProtocolField = None
    optics: OpticsSettings = OpticsSettings()
    # --quick: dotted-key overrides for a coarse first look (e.g. mesh.cell_size: 2 mm)
    quick: dict[str, Any] = Field(default_factory=dict)
    # named runs of the same case, each a set of dotted-key overrides (femion run runs them all)
    variants: dict[Name, dict[str, Any]] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _consistent(self):
        from femion.geometry import plan  # shapely work lives with the plan shapes

        g = self.geometry
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
        for i, d in enumerate(self.drives):
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
        if self.transport is not None:  # before the protocol: the protocol's checks need the oxide
            self._check_transport()
        if self.protocol is not None:
            if self.transport is None:
                raise ValueError("protocol: needs a transport section (the protocol drives the ion transport)")
            from femion.protocol.stages import check_protocol

            check_protocol(self)
            if not any(s.duration for s in self.protocol):
                raise ValueError("protocol: the stages take no time (give a stage with 'for', e.g. 'relax for 1 min')")
        elif self.transport is not None and self.transport.duration is None:
            raise ValueError("transport.duration: required key is missing (or give a protocol)")
        small = min(g.plate.length, g.plate.width)
        if self.mesh.cell_size > small / 4:
            raise ValueError(
                f"mesh.cell_size: {self.mesh.cell_size:g} m is too coarse for a {small:g} m plate (allowed: <= {small / 4:g} m)"
            )
        if self.mesh.section_y is not None and not 0 <= self.mesh.section_y <= g.plate.width:
            raise ValueError(f"mesh.section_y: must lie on the plate, 0 to {g.plate.width:g} m")
        self._check_limits()
        if self.magnetic.enabled:
            zs = self.conductor_planes()
            for i, p in enumerate(self.magnetic.points):
                for cname, z in zs.items():
                    if abs(p[2] - z) < 1e-12:
                        raise ValueError(
                            f"magnetic.points[{i}]: lies in the current sheet of {cname} (z = {z:g} m), where B is undefined"
                        )
        return self

    def _check_transport(self):
        layers = self.geometry.layers
        kinds = [layer.kind for layer in layers]
        if "oxide" not in kinds:
            raise ValueError("transport: needs an oxide layer (allowed hosts: " + ", ".join(
                m.name for m in materials.LIBRARY.values() if m.kind == "oxide") + ")")
        i = kinds.index("oxide")
        if i + 1 >= len(layers) or layers[i + 1].kind != "electrolyte":
            raise ValueError(f"transport: the layer above the oxide ({layers[i].name}) must be an electrolyte")
        ions = self.transport_ions()
        names = [ion.name for ion in ions]
        if self.exchanging_ion() not in names:
            raise ValueError(f"transport.electrolyte.exchanging: {self.transport.electrolyte.exchanging!r} is not "
                             f"an ion (allowed: {', '.join(names)})")
        charge = sum(ion.valence * ion.concentration for ion in ions)
        if abs(charge) > 1e-9 * sum(abs(ion.valence) * ion.concentration for ion in ions):
            raise ValueError(f"transport.electrolyte.ions: not electroneutral (sum z c = {charge:g} mol/m3)")
        if self.transport.mechanism.lorentz_closure and self.transport.lorentz.step_law == "saturating":
            self.transport.lorentz.step_params()
        if self.transport.electrolyte.model == "poisson":
            from femion.constants import FARADAY as F, GAS_CONSTANT as R, VACUUM_PERMITTIVITY as epsilon_0

            eps_r = self.transport.electrolyte.relative_permittivity or 65.0
            strength = sum(ion.valence**2 * ion.concentration for ion in ions)
            debye = (epsilon_0 * eps_r * R * self.transport.temperature / (F**2 * strength)) ** 0.5
            el = layers[i + 1]
            if el.thickness / el.elements > debye:
                raise ValueError(
                    f"transport.electrolyte.model: 'poisson' needs electrolyte cells thinner than the Debye length "
                    f"{debye:.3g} m (cells are {el.thickness / el.elements:.3g} m); use 'electroneutral'")
        if self.transport.top_electrode is not None and i + 2 >= len(layers):
            raise ValueError("transport.top_electrode: there is no layer above the electrolyte")

    def _check_limits(self):
        """The mesh, the outputs and the time steps a run would need, against ``limits``."""
        lim, g, h = self.limits, self.geometry, self.mesh.cell_size
        plan = g.plate.length * g.plate.width / h**2
        through = sum(layer.elements for layer in g.layers)
        # the plan mesh is always built (conductors); the transport mesh is extruded from it or a section
        meshes = {"plan": plan, "3D stack": plan * through} if self.mesh.dimension == 3 else \
            {"plan": plan, "2D section": g.plate.length / h * through}
        what, cells = max(meshes.items(), key=lambda kv: kv[1])
        if cells > lim.cells:
            raise ValueError(f"mesh.cell_size: {h:g} m makes a {what} mesh of about {cells:.3g} cells (allowed: "
                             f"limits.cells = {lim.cells}; use a coarser cell_size or raise limits.cells)")
        if self.transport is None:
            return
        from femion.protocol.stages import output_count

        if self.protocol is not None:
            runs = [(f"protocol[{i}]", s.duration or 0.0, s) for i, s in enumerate(self.protocol)]
        else:
            runs = [("transport", self.transport.duration, self.transport)]
        counts = [output_count(d, s) for _, d, s in runs]
        if sum(counts) > lim.outputs:
            k = max(range(len(runs)), key=counts.__getitem__)
            where, _, s = runs[k]
            key = "output_every" if getattr(s, "output_every", None) is not None else "outputs"
            raise ValueError(f"{where}.{key}: the run would write {sum(counts)} outputs (allowed: limits.outputs = "
                             f"{lim.outputs}; write fewer or raise limits.outputs)")
        dt_max = self.transport.steps.max
        steps = [d / dt_max for _, d, _ in runs]
        if not math.isfinite(sum(steps)) or sum(steps) > lim.steps:
            k = max(range(len(runs)), key=steps.__getitem__)
            where = runs[k][0] + (".for" if self.protocol is not None else ".duration")
            raise ValueError(f"{where}: the run needs at least {sum(steps):.3g} time steps of transport.steps.max = "
                             f"{dt_max:g} s (allowed: limits.steps = {lim.steps}; shorten the run or raise "
                             "transport.steps.max or limits.steps)")

    def exchanging_ion(self) -> str:
        """The ion the film takes up: as given, or the electrolyte's first cation."""
        if self.transport.electrolyte.exchanging is not None:
            return self.transport.electrolyte.exchanging
        return next((i.name for i in self.transport_ions() if i.valence > 0), "")

    def transport_ions(self) -> list["IonSpec"]:
        """The electrolyte's ions: as given, or Li⁺/ClO4⁻ from the electrolyte material."""
        if self.transport.electrolyte.ions is not None:
            return list(self.transport.electrolyte.ions)
        el = next(layer for layer in self.geometry.layers if layer.kind == "electrolyte")
        return [IonSpec(name=n, valence=z, diffusivity=f"{D} m**2/s", concentration=f"{c} mol/m**3")
                for n, z, D, c in materials.electrolyte_ions(materials.get(el.material))]

    # -------------------------------------------------------------- helpers
    def layer(self, name: str) -> Layer:
        for layer in self.geometry.layers:
            if layer.name == name:
                return layer
        raise KeyError(name)

    def conductor_planes(self) -> dict[str, float]:
        """z (m) of each conductor's mid-plane, where its sheet current flows."""
        driven = {d.conductor for d in self.drives}
        return {n: 0.5 * (a + b) for n, (a, b) in self.layer_z().items()
                if self.layer(n).kind == "conductor" or n in driven}

    def layer_z(self) -> dict[str, tuple[float, float]]:
        """Each layer's [z_bottom, z_top] in m, z = 0 at the bottom of the stack."""
        z, out = 0.0, {}
        for layer in self.geometry.layers:
            out[layer.name] = (z, z + layer.thickness)
            z += layer.thickness
        return out


# ----------------------------------------------------------------- loading


class CaseError(ValueError):
    """A case file that cannot be run; ``str()`` is one line naming the key."""


def _loc(loc: tuple) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif str(part).startswith("function-") or part in ("tagged-union",):
            continue
        else:
            out += ("." if out else "") + str(part)
    return out


def _clean(msg: str) -> str:
    msg = re.sub(r"^(Value error|Assertion failed), ", "", msg)
    return " ".join(msg.split())


def format_validation_error(exc: ValidationError) -> str:
    """The first error of ``exc`` as ``key.path: what is wrong / allowed``."""
    err = exc.errors()[0]
    path = _loc(err["loc"]).replace("from_", "from")
    msg = _clean(err["msg"])
    if err["type"] == "extra_forbidden":
        msg = "unknown key"
        parent_model = _allowed_keys(err["loc"][:-1])
        if parent_model:
            msg += f" (allowed: {', '.join(parent_model)})"
    elif err["type"] == "missing":
        msg = "required key is missing"
    elif err["type"] == "finite_number":
        msg = f"must be a finite number (got {err['input']!r})"
    elif err["type"] == "literal_error":
        msg = msg.replace("Input should be", "must be")
    if msg.startswith(tuple(p + c for p in ("geometry", "drives", "mesh", "magnetic", "protocol") for c in ":[")) \
            or not path:
        return msg
    return f"{path}: {msg}"


def _allowed_keys(loc: tuple) -> list[str]:
    """Keys allowed at ``loc`` in the schema, for the 'unknown key' message."""
    model: Any = Case
    for part in loc:
        if isinstance(part, int) or model is None:
            continue
        field = getattr(model, "model_fields", {}).get(part)
        if field is None:
            field = next((f for f in getattr(model, "model_fields", {}).values() if f.alias == part), None)
        if field is None:
            return []
        model = _inner_model(field.annotation)
    if model is None or not hasattr(model, "model_fields"):
        return []
    return [f.alias or k for k, f in model.model_fields.items()]


def _inner_model(annotation) -> Any:
    import typing

    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in typing.get_args(annotation):
        m = _inner_model(arg)
        if m is not None:
            return m
    return None


#: a case file may not expand (each use of an alias counted in full) to more values than this,
#: nor nest deeper: YAML aliases can make a small file stand for huge data
YAML_MAX_VALUES = 200_000
YAML_MAX_DEPTH = 40
_MERGE_TAG = "tag:yaml.org,2002:merge"
_KEY_PATH = re.compile(r"[A-Za-z_]\w*(?:\.\w+|\[\d+\])*")


def _check_tree(root, where: str, name: str) -> None:
    """CaseError for a duplicate mapping key, or for aliases that expand past YAML_MAX_VALUES or
    YAML_MAX_DEPTH; ``where`` is the key path of ``root``, ``name`` what to call it without one."""
    seen: dict[int, tuple[int, int]] = {}  # id(node) -> (values it expands to, depth below it)

    def walk(node, path: str, depth: int, open_: set) -> tuple[int, int]:
        if id(node) in seen:
            size, below = seen[id(node)]
        elif id(node) in open_:
            raise CaseError(f"{path or name}: a YAML alias used inside its own anchor (recursive data)")
        else:
            open_.add(id(node))
            size, below = 1, 0
            if isinstance(node, yaml.MappingNode):
                keys: dict[tuple, int] = {}
                for k, v in node.value:
                    if k.tag == _MERGE_TAG:
                        child = f"{path}.<<" if path else "<<"
                    elif isinstance(k, yaml.ScalarNode):
                        child = f"{path}.{k.value}" if path else str(k.value)
                        if (k.tag, k.value) in keys:
                            raise CaseError(f"{child}: duplicate key (lines {keys[k.tag, k.value]} and "
                                            f"{k.start_mark.line + 1}); give each key once")
                        keys[k.tag, k.value] = k.start_mark.line + 1
                    else:
                        child = path
                    for n in (k, v):
                        a, b = walk(n, child, depth + 1, open_)
                        size, below = size + a, max(below, b + 1)
            elif isinstance(node, yaml.SequenceNode):
                for i, v in enumerate(node.value):
                    a, b = walk(v, f"{path}[{i}]", depth + 1, open_)
                    size, below = size + a, max(below, b + 1)
            open_.discard(id(node))
            seen[id(node)] = size, below
        if size > YAML_MAX_VALUES:
            raise CaseError(f"{path or name}: expands to {size} values, each use of a YAML alias counted in full "
                            f"(allowed: {YAML_MAX_VALUES})")
        if depth + below > YAML_MAX_DEPTH:
            raise CaseError(f"{path or name}: nests deeper than {YAML_MAX_DEPTH} levels")
        return size, below

    walk(root, where, 0, set())


def load_yaml(text: str, name: str, where: str = "") -> Any:
    """``yaml.safe_load`` that refuses duplicate keys and alias bombs (CaseError naming the key);
    yaml.YAMLError for text that is not YAML."""
    loader = yaml.SafeLoader(text)
    try:
        try:
            node = loader.get_single_node()
        except RecursionError:
            raise CaseError(f"{where or name}: nests deeper than {YAML_MAX_DEPTH} levels") from None
        if node is None:
            return None
        _check_tree(node, where, name)
        return loader.construct_document(node)
    finally:
        loader.dispose()


def _set_path(raw: dict, dotted: str, value: Any) -> None:
    if not _KEY_PATH.fullmatch(dotted):
        raise CaseError(f"--set {dotted}: not a key path (form: key.path[0].name, e.g. drives[0].current)")
    parts = [p for p in re.split(r"\.|\[(\d+)\]", dotted) if p]
    node: Any = raw
    for i, part in enumerate(parts):
        last = i == len(parts) - 1
        key: Any = int(part) if part.isdigit() else part
        if isinstance(node, list):
            if not isinstance(key, int) or not 0 <= key < len(node):
                raise CaseError(f"--set {dotted}: {part!r} is not an index of that list (0..{len(node) - 1})")
        elif isinstance(node, dict):
            if isinstance(key, int):
                key = part
            if not last and key not in node:
                node[key] = {}
        else:
            raise CaseError(f"--set {dotted}: cannot set inside a {type(node).__name__}")
        if last:
            node[key] = value
        else:
            node = node[key]


def apply_overrides(raw: dict, overrides: list[str]) -> dict:
    """Apply ``key.path=value`` strings (value read as YAML) to the raw case mapping."""
    for item in overrides:
        if "=" not in item:
            raise CaseError(f"--set {item}: expected key.path=value")
        key, text = item.split("=", 1)
        key = key.strip()
        if not _KEY_PATH.fullmatch(key):
            raise CaseError(f"--set {item}: {key!r} is not a key path (form: key.path=value, e.g. "
                            "drives[0].current='0.1 A')")
        try:
            value = load_yaml(text, f"--set {key}", key)
        except yaml.YAMLError:
            value = text
        _set_path(raw, key, value)
    return raw


def read_case_mapping(path: str | Path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise CaseError(f"case file {str(path)!r} not found")
    try:
        data = path.read_bytes()
        text = data.decode("utf-8")
    except OSError as exc:
        raise CaseError(f"{path.name}: cannot read the case file ({exc.strerror})") from None
    except UnicodeDecodeError as exc:
        line = data[:exc.start].count(b"\n") + 1
        raise CaseError(f"{path.name}: not UTF-8 text (byte 0x{data[exc.start]:02x} at line {line}); "
                        "save the case file as UTF-8") from None
    try:
        raw = load_yaml(text, path.name)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark else ""
        what = getattr(exc, "problem", None) or str(exc)
        raise CaseError(f"{path.name}: not valid YAML{where}: {' '.join(what.split())}") from None
    if not isinstance(raw, dict):
        raise CaseError(f"{path.name}: a case file is a mapping of keys (name, geometry, drives, ...)")
    return raw


def validate_case(raw: dict) -> Case:
    try:
        return Case.model_validate(raw)
    except ValidationError as exc:
        raise CaseError(format_validation_error(exc)) from None


def load_case(path: str | Path, overrides: list[str] | None = None) -> Case:
    """Read, override and validate a case file; CaseError (one line) on any problem."""
    raw = read_case_mapping(path)
    apply_overrides(raw, overrides or [])
    return validate_case(raw)


def _apply_mapping(raw: dict, overrides: dict, where: str) -> dict:
    for key, value in overrides.items():
        try:
            _set_path(raw, str(key), value)
        except CaseError as exc:
            raise CaseError(f"{where}.{key}: {str(exc).split(': ', 1)[-1]}" if key else
                            f"{where}: {key!r} is not a key path (form: key.path[0].name)") from None
    return raw


def _key(dotted: str) -> str:
    """``drives.0.current`` → ``drives[0].current``: the spelling of error messages."""
    return re.sub(r"\.(\d+)(?=\.|\[|$)", r"[\1]", str(dotted))


def _blame(msg: str, sources: list[tuple[str, list[str]]]) -> str | None:
    """``msg`` (``key.path: ...``) under the first override source that set that key, e.g.
    ``quick.mesh.cell_size: ...``; None if no override set it."""
    key = msg.split(": ", 1)[0]
    for where, keys in sources:
        for k in map(_key, keys):
            if key == k or key.startswith((k + ".", k + "[")):
                return f"{where}.{msg}"
    return None


def _check_drive_overrides(case: Case, sources: list[tuple[str, list[str]]]) -> None:
    """CaseError when an override sets a drive's current or voltage that a protocol stage replaces
    with a different value of its own (the run would report the override, the stage ran at its own)."""
    if case.protocol is None:
        return
    for where, keys in sources:
        for k in keys:
            m = re.fullmatch(r"drives\[(\d+)\](?:\.(current|voltage))?", _key(k))
            if not m or int(m[1]) >= len(case.drives):
                continue
            d = case.drives[int(m[1])]
            for j, s in enumerate(case.protocol):
                own = "current" if s.current is not None else "voltage" if s.voltage is not None else None
                if s.action != "drive" or own is None or (s.conductor or case.drives[0].conductor) != d.conductor:
                    continue
                if getattr(d, own) is not None and math.isclose(getattr(d, own), getattr(s, own), rel_tol=1e-12):
                    continue  # the stage runs at the value the override gives the drive
                name, by = (_key(k), "--set") if where == "--set" else (f"{where}.{_key(k)}", where)
                raise CaseError(f"{name}: set by {by}, but protocol[{j}].{own} sets the {own} of that stage; "
                                f"set protocol[{j}].{own} instead")


def load_runs(path: str | Path, overrides: list[str] | None = None, quick: bool = False,
              variant: str | None = None) -> tuple[Case, list[tuple[str | None, Case]]]:
    """The case and the runs it asks for: itself, or one per entry of ``variants``.

    Each run's mapping is the case's with, in order: its ``quick`` overrides (``quick=True``),
    the variant's overrides, then the command line's ``--set`` overrides. An error a quick or
    variant override causes names it: ``quick.<key>`` or ``variants.<name>.<key>``.
    ``femion validate`` and ``femion run`` both load a case through here.
    """
    import copy

    raw = read_case_mapping(path)
    base_raw = apply_overrides(copy.deepcopy(raw), overrides or [])
    base = validate_case(base_raw)
    if quick and not base.quick:
        raise CaseError("--quick: the case has no 'quick' block (add quick: {key.path: value, ...} to the case)")
    names = list(base.variants) if variant is None else [variant]
    if variant is not None and variant not in base.variants:
        raise CaseError(f"--variant {variant}: no such variant (allowed: {', '.join(base.variants) or 'none'})")
    sets = [item.split("=", 1)[0].strip() for item in overrides or []]
    runs = []
    for name in names or [None]:
        r = copy.deepcopy(raw)
        r.pop("variants", None)
        sources = [("--set", sets)]
        if quick:
            _apply_mapping(r, base.quick, "quick")
            sources.insert(0, ("quick", list(base.quick)))
        if name is not None:
            _apply_mapping(r, base.variants[name], f"variants.{name}")
            r["name"] = f"{base.name}_{name}"
            sources.insert(0, (f"variants.{name}", list(base.variants[name])))
        apply_overrides(r, overrides or [])
        try:
            case = validate_case(r)
        except CaseError as exc:
            msg = _blame(str(exc), sources[:-1])
            if msg is None:
                msg = f"{sources[0][0]}: {exc}" if len(sources) > 1 else str(exc)
            raise CaseError(msg) from None
        _check_drive_overrides(case, sources)
        runs.append((name, case))
    return base, runs


def dump_case(case: Case) -> str:
    """The resolved case as YAML, every quantity in SI with its unit."""
    data = case.model_dump(mode="json", by_alias=True, exclude_none=True)
    return yaml.safe_dump(data, sort_keys=False)
