"""Lorentz terms: Hall parameter size, magneto-migration flux, current-driving closure, UFL."""

from __future__ import annotations

import numpy as np
import pytest

from femion.constants import VACUUM_PERMEABILITY as mu_0
from femion.laws import lorentz
from femion.laws.kinetics import ufl_math

T = 298.15


def test_hall_parameter_order_of_magnitude():
    """0.2 A in a 20 mm sheet (B = µ0 I/2W = 6.28 µT), D = 1e-10 m²/s, 298 K: β ~ 1e-14."""
    B = mu_0 * 0.2 / (2 * 20e-3)
    assert B == pytest.approx(6.283e-6, rel=1e-3)
    beta = lorentz.hall_parameter(1, 1e-10, B, T)
    assert 1e-15 < beta < 1e-13
    assert lorentz.hall_parameter(-1, 1e-10, B, T) == -beta


def _solve_drift(N0, B_vec, beta):
    """Solve N − β N × b̂ = N⁰ directly as a 3×3 linear system."""
    b = B_vec / np.linalg.norm(B_vec)
    cross_mat = np.array([[0, b[2], -b[1]], [-b[2], 0, b[0]], [b[1], -b[0], 0]])  # N×b = C N
    return np.linalg.solve(np.eye(3) - beta * cross_mat, N0)


def test_magneto_flux_matches_linear_system():
    """The closed form equals the numerical solution of (RT/D)v = −∇μ̃ + zF v×B to 1e-12."""
    rng = np.random.default_rng(7)
    N0 = rng.normal(size=(200, 3))
    B = rng.normal(size=(200, 3)) * 1e-5
    beta = rng.uniform(-3, 3, size=200)
    got = lorentz.magneto_migration_flux(N0, B, beta)
    for k in range(200):
        np.testing.assert_allclose(got[k], _solve_drift(N0[k], B[k], beta[k]), rtol=0, atol=1e-12)


def test_magneto_flux_limits():
    """β = 0 returns N⁰; flux along B is unchanged; B = 0 gives no NaN."""
    N0 = np.array([1.0, -2.0, 0.5])
    B = np.array([0.0, 3e-6, 1e-6])
    np.testing.assert_array_equal(lorentz.magneto_migration_flux(N0, B, 0.0), N0)
    np.testing.assert_allclose(lorentz.magneto_migration_flux(B * 1e6, B, 2.0), B * 1e6, rtol=1e-14, atol=1e-15)
    np.testing.assert_array_equal(lorentz.magneto_migration_flux(N0, np.zeros(3), 0.0), N0)
    q0 = lorentz.closure_surface_flux(np.array([0.0, 0.0, 1.0]), np.zeros(3), 1.0, "constant", lam0=1.0)
    np.testing.assert_array_equal(q0, np.zeros(3))


def test_magneto_flux_xz_section():
    """2D x–z helper returns the (x, z) components of the full 3D result."""
    N0 = np.array([[0.3, -1.2], [2.0, 0.1]])
    B = np.array([1e-6, 5e-6, -2e-6])
    full = lorentz.magneto_migration_flux(np.stack([N0[:, 0], 0 * N0[:, 0], N0[:, 1]], -1), B, 0.7)
    np.testing.assert_allclose(lorentz.magneto_migration_flux_xz(N0, B, 0.7), full[:, [0, 2]])


@pytest.mark.parametrize("law", sorted(lorentz.STEP_LAWS))
def test_closure_flux_tangential_and_perpendicular_to_B(law):
    """q·n = 0 and q·B = 0 for random normals and fields; magnitude λ r_out |n×B̂|."""
    params = {"constant": {"lam0": 2e-9}, "proportional": {"lam_per_tesla": 1e-3},
              "saturating": {"lam_max": 5e-9, "B_half": 1e-5}}[law]
    rng = np.random.default_rng(3)
    n = rng.normal(size=(50, 3))
    n /= np.linalg.norm(n, axis=1)[:, None]
    B = rng.normal(size=(50, 3)) * 1e-5
    r_out = rng.uniform(0, 1e-6, size=50)
    q = lorentz.closure_surface_flux(n, B, r_out, law, **params)
    scale = np.abs(q).max()
    assert np.abs(np.sum(q * n, axis=1)).max() < 1e-14 * scale
    assert np.abs(np.sum(q * B, axis=1)).max() < 1e-14 * scale * np.abs(B).max()
    Bmag = np.linalg.norm(B, axis=1)
    lam = lorentz.step_length(law, Bmag, **params)
    expect = lam * r_out * np.linalg.norm(np.cross(n, B), axis=1) / Bmag
    np.testing.assert_allclose(np.linalg.norm(q, axis=1), expect, rtol=1e-12)


def test_closure_direction_matches_paper_figure():
    """n̂ = +z, B into an x–z page (+y): a cation is bent to −x (left), an anion to +x."""
    n, B = np.array([0.0, 0.0, 1.0]), np.array([0.0, 6e-6, 0.0])
    q = lorentz.closure_surface_flux(n, B, 1.0, "constant", lam0=1.0)
    np.testing.assert_allclose(q, [-1.0, 0.0, 0.0], atol=1e-15)
    q_anion = lorentz.closure_surface_flux(n, B, 1.0, "constant", z=-1, lam0=1.0)
    np.testing.assert_allclose(q_anion, [1.0, 0.0, 0.0], atol=1e-15)


def test_step_laws_values():
    """constant λ0; proportional c|B|; saturating λ_max|B|/(|B| + B_half) = λ_max/2 at B_half."""
    B = np.array([0.0, 1e-6, 1e-5, 1.0])
    np.testing.assert_allclose(lorentz.step_length("constant", B, lam0=3e-9), 3e-9)
    np.testing.assert_allclose(lorentz.step_length("proportional", B, lam_per_tesla=2e-3), 2e-3 * B)
    sat = lorentz.step_length("saturating", B, lam_max=4e-9, B_half=1e-5)
    assert sat[0] == 0.0 and sat[2] == pytest.approx(2e-9) and sat[3] == pytest.approx(4e-9, rel=1e-4)
    with pytest.raises(ValueError, match="constant, proportional, saturating"):
        lorentz.step_length("linear", B)


def test_ufl_matches_numpy():
    """Magneto-migration flux and closure flux built with ufl_math() equal numpy (constant case)."""
    from femion._dolfinx import MPI, dolfinx, ufl

    msh = dolfinx.mesh.create_unit_cube(MPI.COMM_SELF, 1, 1, 1)
    N0_np = np.array([0.4, -1.1, 0.8])
    B_np = np.array([2e-6, 6e-6, -1e-6])
    n_np = np.array([0.0, 0.0, 1.0])
    N0, B, n = (dolfinx.fem.Constant(msh, v) for v in (N0_np, B_np, n_np))
    beta = dolfinx.fem.Constant(msh, 0.3)
    xp = ufl_math()
    N = lorentz.magneto_migration_flux(N0, B, beta, xp=xp)
    q = lorentz.closure_surface_flux(n, B, 2.0, "saturating", xp=xp, lam_max=1.0, B_half=5e-6)
    N_ref = lorentz.magneto_migration_flux(N0_np, B_np, 0.3)
    q_ref = lorentz.closure_surface_flux(n_np, B_np, 2.0, "saturating", lam_max=1.0, B_half=5e-6)
    for i in range(3):
        val = dolfinx.fem.assemble_scalar(dolfinx.fem.form(N[i] * ufl.dx(domain=msh)))
        assert val == pytest.approx(N_ref[i], rel=1e-13)
        val = dolfinx.fem.assemble_scalar(dolfinx.fem.form(q[i] * ufl.dx(domain=msh)))
        assert val == pytest.approx(q_ref[i], rel=1e-13, abs=1e-16)
