"""Material library: every value in SI, with its source, estimates marked as such.

Each :class:`Material` has a ``kind`` that says what role it can play in a
layer stack (``conductor`` carries current, ``oxide`` hosts inserted ions,
``electrolyte`` conducts ions, ``inert`` does neither). Values that the
papers do not give are starting points flagged ``estimated=True``; a case
file can override any of them per layer.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Mapping

SEED_000 = (
    "seed 000 (current-driving model paper), Methods: ITO ~8 ohm/sq, ~200 nm, "
    "20 mm x 50 mm plate, ~20 ohm end to end"
)


@dataclass(frozen=True)
class Property:
    """One material property: SI value, its unit, where it comes from."""

    value: float
    unit: str
    source: str
    estimated: bool = False


@dataclass(frozen=True)
class Material:
    """A named material with a role (``kind``) and sourced properties."""

    name: str
    kind: str  # "conductor" | "oxide" | "electrolyte" | "inert"
    description: str
    properties: Mapping[str, Property] = field(default_factory=dict)

    def value(self, key: str) -> float:
        """SI value of property ``key``; KeyError naming the material if absent."""
        try:
            return self.properties[key].value
        except KeyError:
            raise KeyError(f"material {self.name!r} has no property {key!r}") from None


KINDS = ("conductor", "oxide", "electrolyte", "inert")


def _m(name, kind, description, **props: Property) -> Material:
    return Material(name, kind, description, MappingProxyType(dict(props)))


_LIBRARY: dict[str, Material] = {
    m.name: m
    for m in (
        _m(
            "ITO",
            "conductor",
            "tin-doped indium oxide, sputtered on glass",
            # rho = R_s * t = 8 ohm/sq * 200 nm; the plate's 20 ohm confirms it.
            resistivity=Property(1.6e-6, "ohm*m", SEED_000),
            thermal_conductivity=Property(
                5.0, "W/(m*K)", "typical sputtered ITO films, 3-6 W/m/K", estimated=True
            ),
        ),
        _m(
            "glass",
            "inert",
            "soda-lime float glass substrate",
            thickness_typical=Property(1.1e-3, "m", "common ITO-glass substrate", estimated=True),
            density=Property(2500.0, "kg/m**3", "soda-lime glass handbook value", estimated=True),
            heat_capacity=Property(840.0, "J/(kg*K)", "soda-lime glass handbook value", estimated=True),
            thermal_conductivity=Property(1.0, "W/(m*K)", "soda-lime glass handbook value", estimated=True),
        ),
        _m(
            "SiO2",
            "inert",
            "sodium barrier layer between glass and ITO",
            thickness_typical=Property(30e-9, "m", "seed 000 product report, ~30 nm"),
        ),
        _m(
            "WO3",
            "oxide",
            "amorphous tungsten trioxide, thermally evaporated (LixWO3 host)",
            density=Property(
                6.0e3, "kg/m**3", "evaporated a-WO3 is 80-90 % of crystalline 7.16 g/cm3", estimated=True
            ),
            molar_mass=Property(0.23184, "kg/mol", "WO3 formula mass"),
            # blue film ~0.4 Mohm across the plate (seed 000 Model I) -> R_s ~1.6e5 ohm/sq;
            # for a 500 nm film that is rho ~ 0.08 ohm*m.
            resistivity=Property(0.08, "ohm*m", "seed 000 Model I (~0.4 Mohm, blue film)", estimated=True),
            max_insertion_fraction=Property(
                0.5, "1", "LixWO3 electrochromic range x <= ~0.5 (general literature)", estimated=True
            ),
        ),
        _m(
            "LiClO4_PC",
            "electrolyte",
            "1 M LiClO4 in propylene carbonate (seed 000 says 'polycarbonate', a misnomer)",
            salt_concentration=Property(1000.0, "mol/m**3", "seed 000 Methods: 1 mol/L"),
            conductivity=Property(
                0.56, "S/m", "1 M LiClO4/PC at 25 C, ~5-6 mS/cm (general literature)", estimated=True
            ),
            diffusivity_Li=Property(2.6e-10, "m**2/s", "Li+ in 1 M LiClO4/PC, order 1e-6 cm2/s", estimated=True),
            diffusivity_ClO4=Property(4.0e-10, "m**2/s", "ClO4- in PC, t+ ~ 0.35-0.4", estimated=True),
            relative_permittivity=Property(65.0, "1", "propylene carbonate", estimated=True),
        ),
    )
}

LIBRARY: Mapping[str, Material] = MappingProxyType(_LIBRARY)


def get(name: str) -> Material:
    """The library material ``name``; KeyError listing what exists otherwise."""
    try:
        return LIBRARY[name]
    except KeyError:
        raise KeyError(f"unknown material {name!r}; known: {', '.join(sorted(LIBRARY))}") from None
