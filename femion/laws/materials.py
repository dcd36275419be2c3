"""Material library: every value in SI, with its source, estimates marked as such.

Each :class:`Material` has a ``kind`` that says what role it can play in a
layer stack (``conductor`` carries current, ``oxide`` hosts inserted ions,
``electrolyte`` conducts ions, ``inert`` does neither). Values that the
papers do not give are starting points flagged ``estimated=True``; a case
file can override any of them per layer.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

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
    #: electrolytes: (cation, anion) names; properties diffusivity_<name>, cation_valence,
    #: anion_valence; c_cation = salt_concentration, c_anion = c_salt·z_cation/|z_anion|
    ions: tuple[str, ...] = ()

    def value(self, key: str) -> float:
        """SI value of property ``key``; KeyError naming the material if absent."""
        try:
            return self.properties[key].value
        except KeyError:
            raise KeyError(f"material {self.name!r} has no property {key!r}") from None


KINDS = ("conductor", "oxide", "electrolyte", "inert")


def _m(name, kind, description, ions: tuple[str, ...] = (), **props: Property) -> Material:
    return Material(name, kind, description, MappingProxyType(dict(props)), ions)


BROWN_BANKS = "Brown & Banks, J. Am. Chem. Soc. 76, 963 (1954): Na_xWO3 cubic a = 3.7845 + 0.0820x A"
GRANQVIST = "Granqvist, Handbook of Inorganic Electrochromic Materials (1995) and Sol. Energy Mater. reviews"


_LIBRARY: dict[str, Material] = {
    m.name: m
    for m in (
        _m(
            "ITO",
            "conductor",
            "tin-doped indium oxide, sputtered on glass",
            density=Property(7100.0, "kg/m**3", "In2O3 7.12 g/cm3 (CRC Handbook)", estimated=True),
            heat_capacity=Property(
                340.0, "J/(kg*K)", "In2O3 ~0.34 kJ/(kg K) at 25 C (NIST-JANAF order)", estimated=True
            ),
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
            "air",
            "inert",
            "still air, where a patterned layer is absent (e.g. beside the electrolyte's coating)",
            density=Property(1.18, "kg/m**3", "dry air at 25 C, 1 atm (CRC Handbook)"),
            heat_capacity=Property(1006.0, "J/(kg*K)", "dry air at 25 C (CRC Handbook)"),
            thermal_conductivity=Property(0.026, "W/(m*K)", "dry air at 25 C (CRC Handbook)"),
        ),
        _m(
            "SiO2",
            "inert",
            "sodium barrier layer between glass and ITO",
            density=Property(2200.0, "kg/m**3", "fused silica 2.2 g/cm3 (CRC Handbook)", estimated=True),
            heat_capacity=Property(740.0, "J/(kg*K)", "fused silica 0.74 kJ/(kg K) (CRC Handbook)", estimated=True),
            thermal_conductivity=Property(1.4, "W/(m*K)", "fused silica 1.4 W/(m K) (CRC Handbook)", estimated=True),
            thickness_typical=Property(30e-9, "m", "seed 000 product report, ~30 nm"),
        ),
        _m(
            "WO3",
            "oxide",
            "amorphous tungsten trioxide, thermally evaporated (LixWO3 host)",
            heat_capacity=Property(
                320.0, "J/(kg*K)", "WO3 ~73 J/(mol K) / 0.2318 kg/mol (NIST-JANAF order)", estimated=True
            ),
            thermal_conductivity=Property(
                1.6, "W/(m*K)", "amorphous WO3 films ~1-2 W/(m K) (thin-film literature)", estimated=True
            ),
            diffusion_activation_energy=Property(
                40000.0, "J/mol", "Li in a-WO3 films, 0.3-0.5 eV reported; 0.41 eV taken", estimated=True
            ),
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
            coloration_efficiency=Property(
                40e-4, "m**2/C", f"{GRANQVIST}: a-WO3 ~30-60 cm2/C near 630 nm, mid 40", estimated=True
            ),
            chemical_expansion=Property(
                0.065, "1", f"Vegard estimate, {BROWN_BANKS}: 2.2 % per x in length, 6.5 % in volume, all of it "
                "in the thickness of a film clamped by its substrate", estimated=True
            ),
            standard_potential=Property(
                2.9, "V", "Li insertion mid potential vs Li/Li+, LixWO3 ~2.5-3.2 V", estimated=True
            ),
        ),
        _m(
            "MoO3",
            "oxide",
            "amorphous molybdenum trioxide film (LixMoO3 host)",
            heat_capacity=Property(
                520.0, "J/(kg*K)", "MoO3 ~75 J/(mol K) / 0.1439 kg/mol (NIST-JANAF order)", estimated=True
            ),
            thermal_conductivity=Property(
                1.0, "W/(m*K)", "amorphous MoO3 films ~1 W/(m K), assumed like WO3", estimated=True
            ),
            diffusion_activation_energy=Property(
                40000.0, "J/mol", "Li in MoO3 films, assumed like WO3", estimated=True
            ),
            density=Property(4.0e3, "kg/m**3", "evaporated a-MoO3, ~85 % of crystalline 4.69 g/cm3", estimated=True),
            molar_mass=Property(0.14394, "kg/mol", "MoO3 formula mass"),
            resistivity=Property(0.1, "ohm*m", "coloured LixMoO3 film, taken like LixWO3", estimated=True),
            max_insertion_fraction=Property(
                1.0, "1", "LixMoO3, x up to ~1-1.5 Li per MoO3 (general literature)", estimated=True
            ),
            coloration_efficiency=Property(
                50e-4, "m**2/C", f"{GRANQVIST}: MoO3 ~30-77 cm2/C, mid 50", estimated=True
            ),
            chemical_expansion=Property(
                0.065, "1", "assumed like WO3 (Vegard estimate from the Na_xWO3 bronze)", estimated=True
            ),
            standard_potential=Property(
                2.8, "V", "Li insertion mid potential vs Li/Li+, LixMoO3 ~2.3-3.0 V", estimated=True
            ),
        ),
        _m(
            "TiO2",
            "oxide",
            "anatase titanium dioxide (nanorod film; LixTiO2 host)",
            heat_capacity=Property(
                690.0, "J/(kg*K)", "TiO2 ~55 J/(mol K) / 0.0799 kg/mol (NIST-JANAF order)", estimated=True
            ),
            thermal_conductivity=Property(
                1.0, "W/(m*K)", "porous anatase films ~1 W/(m K) (thin-film literature)", estimated=True
            ),
            diffusion_activation_energy=Property(
                48000.0, "J/mol", "Li in anatase ~0.5 eV (thin-film and NMR literature)", estimated=True
            ),
            density=Property(3.5e3, "kg/m**3", "anatase 3.89 g/cm3, porous nanorod film less", estimated=True),
            molar_mass=Property(0.079866, "kg/mol", "TiO2 formula mass"),
            resistivity=Property(10.0, "ohm*m", "lithiated anatase film, order of magnitude", estimated=True),
            max_insertion_fraction=Property(
                0.5, "1", "anatase Li0.5TiO2 (general literature)", estimated=True
            ),
            coloration_efficiency=Property(
                14e-4, "m**2/C", f"{GRANQVIST}: TiO2 ~8-20 cm2/C, mid 14", estimated=True
            ),
            chemical_expansion=Property(
                0.08, "1", "anatase -> Li0.5TiO2 takes ~4 % more volume (Wagemaker et al., J. Am. Chem. Soc. 2003, "
                "order), 0.04 per 0.5 Li", estimated=True
            ),
            standard_potential=Property(
                1.8, "V", "anatase Li insertion plateau ~1.75-1.8 V vs Li/Li+", estimated=True
            ),
        ),
        _m(
            "Nb2O5",
            "oxide",
            "niobium pentoxide (seed 000 uses Nb2O5@graphite; LixNb2O5 host)",
            heat_capacity=Property(
                500.0, "J/(kg*K)", "Nb2O5 ~132 J/(mol K) / 0.2658 kg/mol (NIST-JANAF order)", estimated=True
            ),
            thermal_conductivity=Property(1.0, "W/(m*K)", "amorphous Nb2O5 films ~1 W/(m K), assumed", estimated=True),
            diffusion_activation_energy=Property(
                40000.0, "J/mol", "Li in Nb2O5 films, ~0.4 eV assumed", estimated=True
            ),
            density=Property(4.4e3, "kg/m**3", "Nb2O5 4.6 g/cm3 crystalline, amorphous less", estimated=True),
            molar_mass=Property(0.26581, "kg/mol", "Nb2O5 formula mass"),
            resistivity=Property(100.0, "ohm*m", "lithiated Nb2O5 film, order of magnitude", estimated=True),
            max_insertion_fraction=Property(
                2.0, "1", "LixNb2O5, x up to ~2 Li per Nb2O5 formula unit", estimated=True
            ),
            coloration_efficiency=Property(
                18e-4, "m**2/C", f"{GRANQVIST}: Nb2O5 ~10-25 cm2/C, mid 18", estimated=True
            ),
            chemical_expansion=Property(
                0.02, "1", "T-Nb2O5 changes volume by a few % up to x = 2 (low-strain host), order of magnitude",
                estimated=True
            ),
            standard_potential=Property(
                1.6, "V", "Li insertion mid potential vs Li/Li+, LixNb2O5 ~1.2-2.0 V", estimated=True
            ),
        ),
        _m(
            "LiClO4_PC",
            "electrolyte",
            "1 M LiClO4 in propylene carbonate (seed 000 says 'polycarbonate', a misnomer)",
            density=Property(1250.0, "kg/m**3", "1 M LiClO4/PC ~1.25 g/cm3 (PC 1.20 g/cm3 plus salt)", estimated=True),
            heat_capacity=Property(
                2000.0, "J/(kg*K)", "propylene carbonate 2.1 kJ/(kg K), salt lowers it", estimated=True
            ),
            thermal_conductivity=Property(0.2, "W/(m*K)", "propylene carbonate 0.2 W/(m K)", estimated=True),
            conduction_activation_energy=Property(
                16000.0, "J/mol", "PC electrolytes near 25 C, 15-17 kJ/mol (Arrhenius fit of kappa)", estimated=True
            ),
            ions=("Li", "ClO4"),
            cation_valence=Property(1.0, "1", "Li+"),
            anion_valence=Property(-1.0, "1", "ClO4-"),
            salt_concentration=Property(1000.0, "mol/m**3", "seed 000 Methods: 1 mol/L"),
            conductivity=Property(
                0.56, "S/m", "1 M LiClO4/PC at 25 C, ~5-6 mS/cm (general literature)", estimated=True
            ),
            diffusivity_Li=Property(2.6e-10, "m**2/s", "Li+ in 1 M LiClO4/PC, order 1e-6 cm2/s", estimated=True),
            diffusivity_ClO4=Property(4.0e-10, "m**2/s", "ClO4- in PC, t+ ~ 0.35-0.4", estimated=True),
            relative_permittivity=Property(65.0, "1", "propylene carbonate", estimated=True),
        ),
        # Other cations of seed 000 (Discussion: H+, Na+, Zn2+, Ca2+; its Supp. Table 2 is not in the
        # seeds, so the electrolytes and their concentrations below are assumed).
        _m(
            "NaClO4_PC",
            "electrolyte",
            "1 M NaClO4 in propylene carbonate",
            density=Property(1250.0, "kg/m**3", "1 M LiClO4/PC ~1.25 g/cm3 (PC 1.20 g/cm3 plus salt)", estimated=True),
            heat_capacity=Property(
                2000.0, "J/(kg*K)", "propylene carbonate 2.1 kJ/(kg K), salt lowers it", estimated=True
            ),
            thermal_conductivity=Property(0.2, "W/(m*K)", "propylene carbonate 0.2 W/(m K)", estimated=True),
            conduction_activation_energy=Property(
                16000.0, "J/mol", "PC electrolytes near 25 C, 15-17 kJ/mol (Arrhenius fit of kappa)", estimated=True
            ),
            ions=("Na", "ClO4"),
            cation_valence=Property(1.0, "1", "Na+"),
            anion_valence=Property(-1.0, "1", "ClO4-"),
            salt_concentration=Property(1000.0, "mol/m**3", "assumed like the Li electrolyte", estimated=True),
            conductivity=Property(0.64, "S/m", "1 M NaClO4/PC at 25 C, ~6-7 mS/cm (Na-ion literature)", estimated=True),
            diffusivity_Na=Property(3.0e-10, "m**2/s", "Na+ in 1 M NaClO4/PC, order 1e-6 cm2/s", estimated=True),
            diffusivity_ClO4=Property(4.0e-10, "m**2/s", "ClO4- in PC, as in LiClO4_PC", estimated=True),
            relative_permittivity=Property(65.0, "1", "propylene carbonate", estimated=True),
        ),
        _m(
            "H2SO4_aq",
            "electrolyte",
            "0.5 M aqueous H2SO4, simplified to a 1:1 electrolyte H+ / HSO4- at 0.5 M (the second "
            "dissociation, pKa2 ~ 2, adds only ~10 % SO4 2- and is neglected)",
            density=Property(1050.0, "kg/m**3", "dilute aqueous salt ~1.0-1.1 g/cm3", estimated=True),
            heat_capacity=Property(3900.0, "J/(kg*K)", "water 4.18 kJ/(kg K), salt lowers it", estimated=True),
            thermal_conductivity=Property(0.6, "W/(m*K)", "water 0.6 W/(m K)", estimated=True),
            conduction_activation_energy=Property(
                14000.0, "J/mol", "aqueous electrolytes near 25 C, 12-16 kJ/mol (viscosity of water)", estimated=True
            ),
            ions=("H", "HSO4"),
            cation_valence=Property(1.0, "1", "H+"),
            anion_valence=Property(-1.0, "1", "HSO4- (simplification, see description)"),
            salt_concentration=Property(500.0, "mol/m**3", "assumed 0.5 M H2SO4", estimated=True),
            conductivity=Property(20.0, "S/m",
                                  "0.5 M H2SO4 ~0.2 S/cm at 25 C; Nernst-Einstein of the ions gives 20 S/m",
                                  estimated=True),
            diffusivity_H=Property(9.31e-9, "m**2/s", "H+ in water at infinite dilution, 25 C (CRC Handbook)",
                                   estimated=True),
            diffusivity_HSO4=Property(1.33e-9, "m**2/s", "HSO4- in water at infinite dilution, 25 C (CRC Handbook)",
                                      estimated=True),
            relative_permittivity=Property(78.4, "1", "water at 25 C"),
        ),
        _m(
            "Zn_ClO4_2_aq",
            "electrolyte",
            "1 M aqueous Zn(ClO4)2 (Zn2+ and 2 M ClO4-)",
            density=Property(1050.0, "kg/m**3", "dilute aqueous salt ~1.0-1.1 g/cm3", estimated=True),
            heat_capacity=Property(3900.0, "J/(kg*K)", "water 4.18 kJ/(kg K), salt lowers it", estimated=True),
            thermal_conductivity=Property(0.6, "W/(m*K)", "water 0.6 W/(m K)", estimated=True),
            conduction_activation_energy=Property(
                14000.0, "J/mol", "aqueous electrolytes near 25 C, 12-16 kJ/mol (viscosity of water)", estimated=True
            ),
            ions=("Zn", "ClO4"),
            cation_valence=Property(2.0, "1", "Zn2+"),
            anion_valence=Property(-1.0, "1", "ClO4-"),
            salt_concentration=Property(1000.0, "mol/m**3", "assumed 1 M, common in Zn-ion electrochromics",
                                        estimated=True),
            conductivity=Property(10.0, "S/m", "Nernst-Einstein of the ions gives 24 S/m; ion pairing and "
                                  "viscosity at 1 M lower it, order 10 S/m", estimated=True),
            diffusivity_Zn=Property(7.03e-10, "m**2/s", "Zn2+ in water at infinite dilution, 25 C (CRC Handbook)",
                                    estimated=True),
            diffusivity_ClO4=Property(1.79e-9, "m**2/s", "ClO4- in water at infinite dilution, 25 C (CRC Handbook)",
                                      estimated=True),
            relative_permittivity=Property(78.4, "1", "water at 25 C"),
        ),
        _m(
            "CaClO4_2_PC",
            "electrolyte",
            "0.5 M Ca(ClO4)2 in propylene carbonate (Ca2+ and 1 M ClO4-)",
            density=Property(1250.0, "kg/m**3", "1 M LiClO4/PC ~1.25 g/cm3 (PC 1.20 g/cm3 plus salt)", estimated=True),
            heat_capacity=Property(
                2000.0, "J/(kg*K)", "propylene carbonate 2.1 kJ/(kg K), salt lowers it", estimated=True
            ),
            thermal_conductivity=Property(0.2, "W/(m*K)", "propylene carbonate 0.2 W/(m K)", estimated=True),
            conduction_activation_energy=Property(
                16000.0, "J/mol", "PC electrolytes near 25 C, 15-17 kJ/mol (Arrhenius fit of kappa)", estimated=True
            ),
            ions=("Ca", "ClO4"),
            cation_valence=Property(2.0, "1", "Ca2+"),
            anion_valence=Property(-1.0, "1", "ClO4-"),
            salt_concentration=Property(500.0, "mol/m**3", "assumed 0.5 M (Ca-ion literature uses 0.1-1 M)",
                                        estimated=True),
            conductivity=Property(0.4, "S/m", "0.5 M Ca(ClO4)2/PC, ~3-5 mS/cm", estimated=True),
            diffusivity_Ca=Property(1.5e-10, "m**2/s", "Ca2+ in PC, strongly solvated, below Li+", estimated=True),
            diffusivity_ClO4=Property(4.0e-10, "m**2/s", "ClO4- in PC, as in LiClO4_PC", estimated=True),
            relative_permittivity=Property(65.0, "1", "propylene carbonate", estimated=True),
        ),
    )
}

LIBRARY: Mapping[str, Material] = MappingProxyType(_LIBRARY)


def electrolyte_ions(material: Material) -> list[tuple[str, int, float, float]]:
    """(name, valence, diffusivity m²/s, concentration mol/m³) of an electrolyte's cation and anion.

    The diffusivities are the library's tracer values; the transport scales them to the
    electrolyte's ``conductivity`` (femion.laws.electrolyte, the case schema's ``transport_ions``).

    c_cation = c_salt and c_anion = c_salt·z_cation/|z_anion|, so Σ z_i c_i = 0.
    """
    if material.kind != "electrolyte" or len(material.ions) != 2:
        raise ValueError(f"material {material.name!r} is not an electrolyte with (cation, anion) ions")
    zc, za = material.value("cation_valence"), material.value("anion_valence")
    c = material.value("salt_concentration")
    (cat, an) = material.ions
    return [(cat, int(zc), material.value(f"diffusivity_{cat}"), c),
            (an, int(za), material.value(f"diffusivity_{an}"), c * zc / abs(za))]


def get(name: str) -> Material:
    """The library material ``name``; KeyError listing what exists otherwise."""
    try:
        return LIBRARY[name]
    except KeyError:
        raise KeyError(f"unknown material {name!r}; known: {', '.join(sorted(LIBRARY))}") from None
