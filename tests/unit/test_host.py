"""Host thermodynamics and diffusivity: OCV shapes, spinodal, tables, capacitance, UFL."""

from __future__ import annotations

import numpy as np
import pytest

from femion.constants import FARADAY as F
from femion.constants import GAS_CONSTANT as R
from femion.laws import host
from femion.laws.host import HostThermodynamics
from femion.laws.kinetics import ufl_math

T = 298.15
RT = R * T
TABLE = ([0.1, 0.3, 0.6, 0.9], [3.2, 3.0, 2.9, 2.4])


def test_ideal_ocv_at_half_filling_is_U0():
    """Ideal host: U(½) = U0, and U falls as θ rises (Nernstian, RT/F per e-fold of θ/(1−θ))."""
    h = HostThermodynamics("ideal", U0=3.1, T=T)
    assert h.open_circuit_potential(0.5) == pytest.approx(3.1, abs=1e-15)
    th = np.array([0.2, 0.4, 0.8])
    expect = 3.1 - RT / F * np.log(th / (1 - th))
    np.testing.assert_allclose(h.open_circuit_potential(th), expect, rtol=1e-14)


def test_divalent_ion_has_half_the_nernst_slope_and_four_times_the_capacitance():
    """A z-valent ion: U = U0 − μ/(zF), so RT/(zF) per e-fold, and C_V = z²F² c_max/(dμ/dθ)."""
    h1 = HostThermodynamics("regular_solution", U0=2.8, T=T, omega=-40e3)
    h2 = HostThermodynamics("regular_solution", U0=2.8, T=T, omega=-40e3, valence=2)
    th = np.array([0.1, 0.3, 0.7])
    np.testing.assert_allclose(h2.open_circuit_potential(th) - 2.8, (h1.open_circuit_potential(th) - 2.8) / 2,
                               rtol=1e-13)
    np.testing.assert_allclose(h2.dU_dtheta(th), h1.dU_dtheta(th) / 2, rtol=1e-13)
    np.testing.assert_allclose(h2.chemical_capacitance_per_volume(th, 1e4),
                               4 * h1.chemical_capacitance_per_volume(th, 1e4), rtol=1e-13)
    with pytest.raises(ValueError, match="valence"):
        HostThermodynamics("ideal", U0=3.0, T=T, valence=0)


@pytest.mark.parametrize("omega_over_RT, spinodal", [(1.5, False), (1.99, False), (2.01, True), (3.0, True)])
def test_regular_solution_spinodal_iff_omega_above_2RT(omega_over_RT, spinodal):
    """Regular solution: dU/dθ > 0 somewhere (spinodal) iff Ω > 2RT."""
    h = HostThermodynamics("regular_solution", U0=3.0, T=T, omega=omega_over_RT * RT)
    th = np.linspace(0.001, 0.999, 9999)
    assert bool(np.any(h.dU_dtheta(th) > 0)) is spinodal
    d = 1e-7
    fd = (h.open_circuit_potential(th + d) - h.open_circuit_potential(th - d)) / (2 * d)
    np.testing.assert_allclose(h.dU_dtheta(th), fd, rtol=1e-6, atol=1e-6)


def test_tabulated_hits_points_and_interpolates_linearly():
    """Table points are reproduced exactly; between them U is linear; constant beyond ends."""
    h = HostThermodynamics("tabulated", U0=3.0, T=T, table=TABLE)
    np.testing.assert_array_equal(h.open_circuit_potential(np.array(TABLE[0])), TABLE[1])
    assert h.open_circuit_potential(0.45) == pytest.approx(0.5 * (3.0 + 2.9), abs=1e-14)
    assert h.open_circuit_potential(0.05) == 3.2 and h.open_circuit_potential(0.95) == 2.4
    assert h.dU_dtheta(0.2) == pytest.approx(-1.0)
    assert h.chemical_potential(0.6) == pytest.approx(F * (3.0 - 2.9))


@pytest.mark.parametrize(
    "table, message",
    [
        (([0.1, 0.5], [3.0]), "lengths differ"),
        (([0.5], [3.0]), "at least 2 points"),
        (([0.1, 0.5, 0.4], [3, 2, 1]), "strictly increasing"),
        (([0.1, 0.1], [3, 2]), "strictly increasing"),
        (([0.0, 0.5], [3, 2]), r"\(0, 1\)"),
        (([0.5, 1.2], [3, 2]), r"\(0, 1\)"),
        (([0.2, 0.5], [3, np.nan]), "non-finite"),
    ],
)
def test_invalid_tables_raise(table, message):
    """Bad tables raise ValueError naming the problem."""
    with pytest.raises(ValueError, match=message):
        HostThermodynamics("tabulated", U0=3.0, T=T, table=table)


def test_unknown_model_and_missing_table_raise():
    """Unknown host model names the allowed ones; 'tabulated' without a table is refused."""
    with pytest.raises(ValueError, match="ideal, regular_solution, tabulated"):
        HostThermodynamics("nernst", U0=3.0, T=T)
    with pytest.raises(ValueError, match="needs table"):
        HostThermodynamics("tabulated", U0=3.0, T=T)


@pytest.mark.parametrize("model, kw", [("ideal", {}), ("regular_solution", {"omega": 1.2 * 2 * RT})])
def test_capacitance_matches_finite_difference(model, kw):
    """C_V = F² c_max/(dμ/dθ) equals F c_max Δθ/(−ΔU); C_A = C_V·t."""
    h = HostThermodynamics(model, U0=3.0, T=T, **kw)
    c_max, t = 2.0e4, 500e-9
    for th in [0.1, 0.35, 0.5, 0.8]:
        d = 1e-6
        dU = h.open_circuit_potential(th + d) - h.open_circuit_potential(th - d)
        fd = F * c_max * (2 * d) / (-dU)
        assert h.chemical_capacitance_per_volume(th, c_max) == pytest.approx(fd, rel=1e-7)
        assert h.chemical_capacitance_per_area(th, c_max, t) == pytest.approx(fd * t, rel=1e-7)
    if model == "ideal":
        assert h.chemical_capacitance_per_volume(0.5, c_max) == pytest.approx(F**2 * c_max * 0.25 / RT)


def test_diffusivity_laws():
    """constant, lattice gas D0(1−θ), thermodynamic factor D0(1−θ)θ μ'(θ)/RT = D0(1 − 2Ωθ(1−θ)/RT)."""
    th = np.linspace(0.05, 0.95, 19)
    D0, om = 1e-14, 1.5 * RT
    np.testing.assert_allclose(host.diffusivity("constant", th, D0=D0), D0)
    np.testing.assert_allclose(host.diffusivity("lattice_gas", th, D0=D0), D0 * (1 - th))
    h = HostThermodynamics("regular_solution", U0=3.0, T=T, omega=om)
    expect = D0 * (1 - th) * th / RT * h.dmu_dtheta(th)
    got = host.diffusivity("thermodynamic_factor", th, D0=D0, omega=om, T=T)
    np.testing.assert_allclose(got, expect, rtol=1e-12)
    with pytest.raises(ValueError, match="constant, lattice_gas, thermodynamic_factor"):
        host.diffusivity("fickian", th, D0=D0)




@pytest.mark.parametrize(
    "model, kw",
    [("regular_solution", {"omega": 2.5 * RT}), ("tabulated", {"table": TABLE})],
)
def test_ufl_matches_numpy(ufl_eval, model, kw):
    """U(θ) and μ(θ) built with ufl_math() equal the numpy values (incl. table ends/nodes)."""
    h = HostThermodynamics(model, U0=3.0, T=T, **kw)
    xp = ufl_math()
    U = ufl_eval(lambda th: h.open_circuit_potential(th, xp=xp))
    mu = ufl_eval(lambda th: h.chemical_potential(th, xp=xp))
    for th in [0.02, 0.1, 0.2, 0.3, 0.45, 0.6, 0.75, 0.9, 0.97]:
        assert U(th) == pytest.approx(h.open_circuit_potential(th), rel=1e-13)
        assert mu(th) == pytest.approx(h.chemical_potential(th), rel=1e-12, abs=1e-9)


def test_temperature_may_be_a_dolfinx_constant():
    """T as a dolfinx Constant: numpy calls read its value, a compiled UFL form follows it."""
    from femion._dolfinx import MPI, dolfinx, ufl

    msh = dolfinx.mesh.create_unit_square(MPI.COMM_SELF, 1, 1)
    T_c, theta = dolfinx.fem.Constant(msh, T), dolfinx.fem.Constant(msh, 0.3)
    h_c = HostThermodynamics("regular_solution", U0=3.0, T=T_c, omega=RT)
    h = HostThermodynamics("regular_solution", U0=3.0, T=T, omega=RT)
    assert h_c.open_circuit_potential(0.3) == h.open_circuit_potential(0.3)
    assert h_c.dU_dtheta(0.3) == h.dU_dtheta(0.3)
    form = dolfinx.fem.form(h_c.open_circuit_potential(theta, xp=ufl_math()) * ufl.dx(domain=msh))
    assert dolfinx.fem.assemble_scalar(form) == pytest.approx(h.open_circuit_potential(0.3), rel=1e-13)
    T_c.value = 350.0
    hot = HostThermodynamics("regular_solution", U0=3.0, T=350.0, omega=RT)
    assert dolfinx.fem.assemble_scalar(form) == pytest.approx(hot.open_circuit_potential(0.3), rel=1e-13)
    assert h_c.open_circuit_potential(0.3) == hot.open_circuit_potential(0.3)
    T_c.value = -1.0
    with pytest.raises(ValueError, match="temperature must be positive"):
        HostThermodynamics("ideal", U0=3.0, T=T_c)


def test_ufl_diffusivity_matches_numpy(ufl_eval):
    """The thermodynamic-factor diffusivity evaluates identically in UFL."""
    params = {"D0": 1e-14, "omega": 1.5 * RT, "T": T}
    D = ufl_eval(lambda th: host.diffusivity("thermodynamic_factor", th, xp=ufl_math(), **params))
    for th in [0.1, 0.5, 0.8]:
        assert D(th) == pytest.approx(host.diffusivity("thermodynamic_factor", th, **params), rel=1e-13)


def test_thickness_change_hand_value():
    # a-WO3 (ρ 6000 kg/m³, M 0.23184 kg/mol, x_max 0.5) at θ̄ = 0.3 holds x = 0.15 Li per WO3; with
    # β = 0.065 a 500 nm film thickens by 0.065·0.15·500 nm = 4.875 nm
    from femion.laws import materials
    from femion.laws.host import thickness_change

    wo3 = materials.get("WO3")
    vm = wo3.value("molar_mass") / wo3.value("density")
    c_max = wo3.value("max_insertion_fraction") / vm
    dh = thickness_change(np.array([0.0, 0.3, 0.6]), thickness=500e-9, c_max=c_max, molar_volume=vm,
                          chemical_expansion=wo3.value("chemical_expansion"))
    assert dh == pytest.approx([0.0, 4.875e-9, 9.75e-9], rel=1e-12)
    for name in ("WO3", "MoO3", "TiO2", "Nb2O5"):  # every host has a sourced β of a plausible size
        prop = materials.get(name).properties["chemical_expansion"]
        assert 0.0 < prop.value < 0.2 and prop.source, name
