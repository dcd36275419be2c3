"""The case file's schema: one YAML document holding every setting of a run, as pydantic models.

Every dimensional value carries its unit and is stored in SI (see :mod:`femion.config.units`).
Each model checks its own fields; :class:`Case` then runs the cross-field checks of
:mod:`femion.config.checks`. Reading files, ``--set``, ``quick`` and ``variants`` are in
:mod:`femion.config.loading`; import the public names from :mod:`femion.config`.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal, NamedTuple

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    ValidationInfo,
    WithJsonSchema,
    field_validator,
    model_validator,
)

from femion.config.checks import check_case
from femion.config.units import DIMENSIONS, format_si, to_si
from femion.laws import electrolyte as electrolyte_law
from femion.laws import materials
from femion.laws.host import DIFFUSIVITY_LAWS
from femion.laws.host import MODELS as HOST_MODELS
from femion.laws.kinetics import LAWS as RATE_LAWS
from femion.laws.lorentz import STEP_LAWS
from femion.magnetic.biot_savart import DEFAULT_TOLERANCE, check_tolerance
from femion.protocol.actions import ACTION_NAMES, ACTIONS, parse_stage

# ---------------------------------------------------------------- quantities


def _si(kind: str, *, positive: bool = False, nonnegative: bool = False) -> BeforeValidator:
    """Validator: a quantity with its unit (or a number already in SI) → float in SI, range-checked."""

    def parse(value: Any) -> float:
        v = to_si(value, kind)
        if positive and not v > 0:
            raise ValueError(f"must be > 0 (got {value!r})")
        if nonnegative and v < 0:
            raise ValueError(f"must be >= 0 (got {value!r})")
        return v

    return BeforeValidator(parse)


def _unit(kind: str) -> PlainSerializer:
    """Serializer: the SI float back to a string with its unit (dump_case)."""
    return PlainSerializer(lambda v: format_si(v, kind), return_type=str)


def _schema(kind: str) -> WithJsonSchema:
    """JSON Schema of a quantity (``femion schema``, docs/case-reference.md): a string with its unit,
    or a bare number taken as SI."""
    unit = DIMENSIONS[kind][1]
    return WithJsonSchema({"type": ["string", "number"], "format": "quantity", "x-si-unit": unit,
                           "description": f"{kind.replace('_', ' ')} with its unit, e.g. '{QUANTITY_EXAMPLES[kind]}'; "
                                          f"a bare number is SI ({unit})"})


#: an example value of each kind of quantity, in a unit the papers use
QUANTITY_EXAMPLES = {
    "length": "200 nm", "current": "0.2 A", "voltage": "3 V", "sheet_resistance": "8 ohm/sq",
    "resistivity": "0.08 ohm*m", "conductivity": "0.56 S/m", "magnetic_flux_density": "50 uT",
    "time": "5 min", "temperature": "25 degC", "diffusivity": "1e-14 m^2/s", "concentration": "1 mol/L",
    "current_density": "0.1 A/m^2", "molar_energy": "-40 kJ/mol", "energy": "0.5 eV",
    "length_per_tesla": "1 mm/T", "gradient_energy": "1e-12 J*m^2/mol", "areal_capacitance": "0.2 F/m^2",
    "coloration_efficiency": "40 cm^2/C", "heat_transfer_coefficient": "10 W/(m^2*K)",
}


# each a float in SI to the type checker, parsed from a quantity with its unit by pydantic
Length = Annotated[float, _si("length"), _unit("length"), _schema("length")]
PositiveLength = Annotated[float, _si("length", positive=True), _unit("length"), _schema("length")]
Current = Annotated[float, _si("current"), _unit("current"), _schema("current")]
Voltage = Annotated[float, _si("voltage"), _unit("voltage"), _schema("voltage")]
SheetResistance = Annotated[float, _si("sheet_resistance", positive=True),
                            _unit("sheet_resistance"), _schema("sheet_resistance")]
Resistivity = Annotated[float, _si("resistivity", positive=True), _unit("resistivity"), _schema("resistivity")]
FluxDensity = Annotated[float, _si("magnetic_flux_density"),
                        _unit("magnetic_flux_density"), _schema("magnetic_flux_density")]
PositiveFluxDensity = Annotated[float, _si("magnetic_flux_density", positive=True),
                                _unit("magnetic_flux_density"), _schema("magnetic_flux_density")]
Time = Annotated[float, _si("time", positive=True), _unit("time"), _schema("time")]
Temperature = Annotated[float, _si("temperature", positive=True), _unit("temperature"), _schema("temperature")]
Diffusivity = Annotated[float, _si("diffusivity", positive=True), _unit("diffusivity"), _schema("diffusivity")]
Conductivity = Annotated[float, _si("conductivity", positive=True), _unit("conductivity"), _schema("conductivity")]
HeatTransferCoefficient = Annotated[float, _si("heat_transfer_coefficient", nonnegative=True),
                                    _unit("heat_transfer_coefficient"), _schema("heat_transfer_coefficient")]
Concentration = Annotated[float, _si("concentration", positive=True), _unit("concentration"), _schema("concentration")]
CurrentDensity = Annotated[float, _si("current_density", nonnegative=True),
                           _unit("current_density"), _schema("current_density")]
MolarEnergy = Annotated[float, _si("molar_energy"), _unit("molar_energy"), _schema("molar_energy")]
Energy = Annotated[float, _si("energy", positive=True), _unit("energy"), _schema("energy")]
NonnegativeLength = Annotated[float, _si("length", nonnegative=True), _unit("length"), _schema("length")]
LengthPerTesla = Annotated[float, _si("length_per_tesla", nonnegative=True),
                           _unit("length_per_tesla"), _schema("length_per_tesla")]
ArealCapacitance = Annotated[float, _si("areal_capacitance", nonnegative=True),
                             _unit("areal_capacitance"), _schema("areal_capacitance")]
GradientEnergy = Annotated[float, _si("gradient_energy", nonnegative=True),
                           _unit("gradient_energy"), _schema("gradient_energy")]
ColorationEfficiency = Annotated[float, _si("coloration_efficiency", positive=True),
                                 _unit("coloration_efficiency"), _schema("coloration_efficiency")]
SignedCurrent = Annotated[float, _si("current"), _unit("current"), _schema("current")]
Fraction = Annotated[float, Field(gt=0.0, lt=1.0)]

Point2 = tuple[Length, Length]
Point3 = tuple[Length, Length, Length]
Name = Annotated[str, Field(pattern=r"^[A-Za-z][A-Za-z0-9_]*$", max_length=64)]


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

    @model_validator(mode="before")
    @classmethod
    def _unit(cls, data: Any) -> Any:
        return _apply_unit(data)

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
            raise ValueError("a contact needs exactly one of 'at' (a plate edge: x_min, x_max, y_min, y_max) "
                             "or 'region' (a shape)")
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
    """B of the sheet currents (femion.magnetic.biot_savart) on the oxide interface and at
    ``points``, plus ``external_field``. ``method``: ``direct`` sums the exact field of every panel
    at every target; ``grid`` convolves point sources on a uniform grid by FFT and takes the
    panels near each target exactly, for targets in a few planes (the interface); ``fmm`` uses
    fmm3dpy with the same near panels, for targets anywhere; ``auto`` takes direct when small,
    else grid where it applies, else fmm. ``tolerance``: the largest relative error
    |B − B_exact|/|B_exact| of the grid and fmm paths, from 1e-6 to 1e-2 (measured levels; grid
    has 1e-2 to 1e-4)."""

    enabled: bool = True
    external_field: tuple[FluxDensity, FluxDensity, FluxDensity] = (0.0, 0.0, 0.0)
    points: list[Point3] = Field(default_factory=list)
    method: Literal["auto", "direct", "grid", "fmm"] = "auto"
    tolerance: float = DEFAULT_TOLERANCE

    @field_validator("tolerance")
    @classmethod
    def _measured(cls, v: float) -> float:
        return check_tolerance(v)


FieldFormat = Literal["vtx", "vtkhdf"]


def _every_field_format() -> list[FieldFormat]:
    return ["vtx", "vtkhdf"]


class OutputSettings(_Model):
    figures: bool = True
    fields: list[FieldFormat] = Field(default_factory=_every_field_format)


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


def _registered(registry: dict, what: str):
    """A check that a law's name is in its registry when the case is read (so a law registered
    after import, e.g. in a test or a plugin, is accepted; the error lists the allowed names)."""

    def check(name: str) -> str:
        if name not in registry:
            raise ValueError(f"unknown {what} {name!r}; allowed: {', '.join(registry)}")
        return name

    return check


class HostSpec(_Model):
    """Open-circuit potential of the host: U(θ) = U0 − μ(θ)/(zF) (femion.laws.host); U0 defaults to the
    oxide material's ``standard_potential``."""

    model: Literal[HOST_MODELS] = "ideal"  # type: ignore[valid-type]  # the registry's names
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
    diffusivity_law: Annotated[str, AfterValidator(_registered(DIFFUSIVITY_LAWS, "diffusivity law"))] = "constant"
    max_concentration: Concentration | None = None  # default: from the material library
    host: HostSpec = HostSpec()
    gradient_energy: GradientEnergy = 0.0  # Cahn–Hilliard κ, e.g. '1e-12 J*m^2/mol'
    # Arrhenius D_s(T) = D_s exp[−E_a/R (1/T − 1/298.15 K)]; default: the material's, else 0
    activation_energy: MolarEnergy | None = None



class ElectrolyteTransport(_Model):
    ions: list[IonSpec] | None = None  # default: from the material library
    exchanging: Name | None = None  # default: the first cation
    model: Literal["electroneutral", "poisson"] = "electroneutral"
    relative_permittivity: Annotated[float, Field(gt=0)] | None = None  # default: from the material
    # ionic conductivity κ at 25 °C, e.g. '0.56 S/m' (default: the material's): the ions' diffusivities
    # are scaled by one factor so that F²/RT Σ z²Dc = κ (femion.laws.electrolyte); 'nernst_einstein'
    # uses them as they are
    conductivity: Conductivity | Literal["nernst_einstein"] | None = None
    # Arrhenius ionic diffusivities (and κ): D_i(T) = D_i exp[−E_a/R (1/T − 1/298.15 K)];
    # default: the material's, else 0
    activation_energy: MolarEnergy | None = None


class KineticsSpec(_Model):
    law: Annotated[str, AfterValidator(_registered(RATE_LAWS, "rate law"))] = "butler_volmer"
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
        if "reorganization" in RATE_LAWS[self.law].parameters and self.reorganization_energy is None:
            raise ValueError(f"law {self.law!r} needs reorganization_energy (e.g. '0.4 eV')")
        if (self.barrier_liquid is None) != (self.barrier_solid is None):
            raise ValueError("give both barrier_liquid and barrier_solid, or neither")
        # the reaction-specific rates put equilibrium at η = 0 only for a law in detailed balance
        declares_alphas = {"alpha_a", "alpha_c"} <= set(RATE_LAWS[self.law].parameters)
        if declares_alphas and abs(self.alpha_a + self.alpha_c - 1) > 1e-12:
            raise ValueError(f"alpha_a + alpha_c must be 1 (detailed balance), got {self.alpha_a} + {self.alpha_c}")
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
    step_law: Annotated[str, AfterValidator(_registered(STEP_LAWS, "step law"))] = "constant"
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
    """Time steps (s): the first of each stage, the smallest and largest; BDF order; ``tolerance``:
    the largest local truncation error of one step in θ and in c_i/c_i,0 (dimensionless), which
    sets the step between those bounds (null: Newton's iteration count alone)."""

    initial: Time = 1.0
    min: Time = 1e-6
    max: Time = 60.0
    order: Literal[1, 2] = 2
    tolerance: float | None = Field(1e-3, gt=0, le=0.5)

    @model_validator(mode="after")
    def _ordered(self):
        if not self.min <= self.initial <= self.max:
            raise ValueError("need min <= initial <= max")
        return self


class MechanismSpec(_Model):
    """Which explanation of the motion is active (physics.md §3), so one experiment can be run
    under each: ``electrochemical`` — the oxide's electrons follow the driven conductor's ohmic
    drop (off: the drive makes only its magnetic field); ``lorentz_closure`` — the paper's
    interfacial step along n̂×B̂ (step law in ``transport.lorentz``); ``thermal`` — the drive's
    Joule heat warms the stack (femion.thermal, settings in ``thermal``) and T(x, t) enters RT/F,
    the host law, the Arrhenius D_s, i0 and ionic diffusivities."""

    electrochemical: bool = True
    lorentz_closure: bool = False
    thermal: bool = False  # Joule heating: the stack's temperature T(x, t) (case's ``thermal``) in the transport


class ThermalSettings(_Model):
    """Heat loss of the stack (femion.thermal), used when ``transport.mechanism.thermal`` is on.

    Each outer face loses h = convection + 4·emissivity·σT∞³ (W m⁻² K⁻¹) times T − T∞. Defaults:
    natural convection of air on a plate, 5-25 W/(m² K) (Incropera, Fundamentals of Heat and Mass
    Transfer, Table 1.1), 10 taken; emissivity of soda-lime glass 0.9-0.94 (Incropera Table A.11),
    0.9 taken. ``ambient``: T∞ (default: ``transport.temperature``), also the initial temperature.
    ``clamps``: the outer faces over the drives' contacts are held at T∞ (copper clamps as heat
    sinks). ``max_step``: the longest heat step (backward Euler) between transport steps.
    """

    convection: HeatTransferCoefficient = 10.0
    emissivity: Annotated[float, Field(ge=0.0, le=1.0)] = 0.9
    ambient: Temperature | None = None
    clamps: bool = False
    max_step: Time = 10.0


class TransportSettings(_Model):
    """Coupled ion transport after the conductor stage (femion.transport.problem).

    Without a ``protocol`` the drives run for ``duration`` with ``outputs`` evenly spaced
    outputs; with one, the protocol sets the controls and times. ``model``: ``resolved`` solves
    the oxide and electrolyte through their thickness (the 3D stack or the 2D section);
    ``shell`` solves their thin-film limit on the plan mesh (docs/model.md §2b; 3D cases only).
    ``linear_solver``: Newton's linear solves, ``direct`` (MUMPS LU) or ``iterative`` (FGMRES on
    a field split, GAMG on the potentials: femion/transport/linear.py); the same answer to Newton's
    tolerance, the iterative one needing less memory on large 3D stacks. ``petsc_options``: PETSc
    options added to (or replacing) those of the Newton solver and its linear solver, without their
    prefix, e.g. ``{snes_monitor: null, ksp_view: null, mat_mumps_icntl_14: 200}`` (also from the
    command line: ``--set transport.petsc_options.snes_monitor=null``).
    """

    model: Literal["resolved", "shell"] = "resolved"
    linear_solver: Literal["direct", "iterative"] = "direct"
    petsc_options: dict[Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]*$")], str | int | float | bool | None] = \
        Field(default_factory=dict)
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

# the stage actions, their one-line forms and checks: femion.protocol.actions (the registry)


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
    out: list = []
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
    """One protocol stage (its action: femion.protocol.actions); ``for`` is its duration.

    inject: ``voltage`` between the top electrode (+) and the conductor under the oxide (−).
    drive: a drive of ``drives`` (``through`` its conductor, default the first) at ``current``
    or ``voltage`` (default: the drive's own value; the sign sets the direction).
    reverse: the previous drive with the opposite sign. relax: every drive off (open circuit).
    remove_electrolyte: no more exchange with the film, the state kept (may take no time).
    """

    action: Literal[ACTION_NAMES]  # type: ignore[valid-type]  # the registry's names, fixed at import
    duration: Time | None = Field(None, alias="for")
    voltage: Voltage | None = None
    current: SignedCurrent | None = None
    conductor: Name | None = Field(None, alias="through")
    output_every: Time | None = None
    outputs: int | None = Field(None, ge=1)
    name: Name | None = None

    @model_validator(mode="after")
    def _fits_action(self):
        ACTIONS[self.action].check_fields(self)
        if self.output_every is not None and self.outputs is not None:
            raise ValueError("give output_every or outputs, not both")
        return self


ProtocolField = Annotated[list[Stage] | None, BeforeValidator(_expand_protocol)]


class OpticsSettings(_Model):
    """Coloration of the film (femion.laws.optics): ΔOD = CE·Q_A, T = T_bleached·10^(−ΔOD), and
    its thickness change Δh = β·x·h (femion.laws.host.thickness_change).

    ``coloration_efficiency`` defaults to the oxide material's; ``monitors`` are the plan squares
    whose mean transmittance is reported in time (the paper's L, M, R and T areas).
    """

    coloration_efficiency: ColorationEfficiency | None = None
    bleached_transmittance: Fraction = 0.85
    #: Δh/h per inserted ion per formula unit (Vegard-type; femion.laws.host.thickness_change),
    #: default the oxide material's
    chemical_expansion: Annotated[float, Field(ge=0.0, lt=1.0)] | None = None
    monitors: dict[Name, Shape] = Field(default_factory=dict)
    photos: Literal["stages", "outputs", "none"] = "stages"
    animation: Literal["gif", "mp4", "none"] = "gif"


class TransportLayers(NamedTuple):
    """The layers of the ion transport, bottom to top (:meth:`Case.transport_layers`)."""

    oxide: Layer  #: the film that takes up ions (the first oxide layer)
    electrolyte: Layer | None  #: the layer on the oxide when it is an electrolyte (always, once validated)
    above: Layer | None  #: the layer on the electrolyte (a top electrode), if any
    #: where the film's electrons come from: the oxide itself when contacts sit on it (seed 000
    #: Model I), else the nearest conductor beneath it, else None (a floating film)
    conductor: Layer | None

    @property
    def top_conductor(self) -> Layer | None:
        """The conductor directly on the electrolyte (the top ITO), if any."""
        return self.above if self.above is not None and self.above.kind == "conductor" else None


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
    thermal: ThermalSettings = ThermalSettings()
    # --quick: dotted-key overrides for a coarse first look (e.g. mesh.cell_size: 2 mm)
    quick: dict[str, Any] = Field(default_factory=dict)
    # named runs of the same case, each a set of dotted-key overrides (femion run runs them all)
    variants: dict[Name, dict[str, Any]] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _consistent(self):
        check_case(self)  # femion.config.checks: names that refer to each other, the stack, limits
        return self

    # -------------------------------------------------------------- the stack
    @property
    def oxide_layer(self) -> Layer | None:
        """The film that takes up ions: the first (lowest) oxide layer, or None."""
        return next((layer for layer in self.geometry.layers if layer.kind == "oxide"), None)

    def transport_layers(self) -> TransportLayers:
        """The oxide film, the electrolyte on it, the layer on the electrolyte and the film's
        electron conductor (see :class:`TransportLayers`); ValueError without an oxide layer."""
        layers = self.geometry.layers
        i = next((k for k, layer in enumerate(layers) if layer.kind == "oxide"), None)
        if i is None:
            raise ValueError("the case has no oxide layer")
        oxide = layers[i]
        on_oxide = layers[i + 1] if i + 1 < len(layers) else None
        if any(c.conductor == oxide.name for c in self.geometry.contacts):
            conductor: Layer | None = oxide
        else:
            conductor = next((layers[k] for k in range(i - 1, -1, -1) if layers[k].kind == "conductor"), None)
        return TransportLayers(
            oxide=oxide,
            electrolyte=on_oxide if on_oxide is not None and on_oxide.kind == "electrolyte" else None,
            above=layers[i + 2] if i + 2 < len(layers) else None,
            conductor=conductor,
        )

    # -------------------------------------------------------------- ions
    def _electrolyte_settings(self) -> ElectrolyteTransport:
        if self.transport is None:
            raise ValueError("the case has no transport section")
        return self.transport.electrolyte

    def exchanging_ion(self) -> str:
        """The ion the film takes up: as given, or the electrolyte's first cation."""
        given = self._electrolyte_settings().exchanging
        if given is not None:
            return given
        return next((i.name for i in self.transport_ions() if i.valence > 0), "")

    def transport_ions(self) -> list[IonSpec]:
        """The electrolyte's ions: as given, or Li⁺/ClO4⁻ from the electrolyte material."""
        settings = self._electrolyte_settings()
        el = self.transport_layers().electrolyte
        if settings.ions is not None:
            ions = list(settings.ions)
        elif el is None:
            raise ValueError("the layer above the oxide is not an electrolyte")
        else:
            ions = [IonSpec(name=n, valence=z, diffusivity=f"{D} m**2/s", concentration=f"{c} mol/m**3")
                    for n, z, D, c in materials.electrolyte_ions(materials.get(el.material))]
        kappa = self.electrolyte_conductivity()
        if kappa is None:
            return ions
        D = electrolyte_law.effective_diffusivities([i.valence for i in ions], [i.diffusivity for i in ions],
                                                    [i.concentration for i in ions], kappa)
        return [i.model_copy(update={"diffusivity": d}) for i, d in zip(ions, D, strict=True)]

    def electrolyte_conductivity(self) -> float | None:
        """The ionic conductivity κ (S/m) the ions are scaled to: the case's, else the electrolyte
        material's; None for 'nernst_einstein' (or an electrolyte material without one)."""
        given = self._electrolyte_settings().conductivity
        if given == "nernst_einstein":
            return None
        if given is not None:
            return float(given)
        el = self.transport_layers().electrolyte
        if el is None or el.material is None or "conductivity" not in materials.get(el.material).properties:
            return None
        return materials.get(el.material).value("conductivity")

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
