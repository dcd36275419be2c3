"""Interfacial exchange rate laws on Γ = oxide ∩ electrolyte (physics.md §2.5).

Convention. Overpotential η = φ_s − φ_l − U(θ) (V), dimensionless η̃ = Fη/(RT).
The molar flux INTO the oxide (insertion = reduction) is

    j = (i0/F) · [r_red(η̃) − r_ox(η̃)]      (mol m⁻² s⁻¹),  j > 0 for η < 0,

with i0 from :func:`exchange_current_density`. Every law is a function

    law(eta, *, xp=NUMPY, **params) -> (r_red, r_ox)

of η̃, dimensionless and normalised so that r_red(0) = r_ox(0) = 1: i0 keeps its
meaning for every law. All laws obey detailed balance r_ox/r_red = exp(η̃) (BV only
when α_a + α_c = 1), hence the same linear regime d(r_red − r_ox)/dη̃ = −1 at η̃ = 0,
i.e. R_ct = RT/(F i0) (:func:`charge_transfer_resistance`).

``xp`` is a small math namespace, :data:`NUMPY` (arrays and floats) or
:func:`ufl_math` (UFL expressions), so one code path serves tests and weak forms.
"""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import scipy.special
from scipy import integrate

from femion.constants import FARADAY as F  # C/mol
from femion.constants import GAS_CONSTANT as R  # J/(mol K)
from femion.laws.registry import Law, choose, registry

__all__ = [
    "LAWS",
    "NUMPY",
    "arrhenius",
    "barrier_equilibrium_shift",
    "barrier_rate_constants",
    "butler_volmer",
    "charge_transfer_resistance",
    "exchange_current_density",
    "exchange_current_density_at",
    "marcus",
    "mhc",
    "mhc_integral",
    "rate",
    "reaction_rates",
    "ufl_math",
]


def _np_where(cond, a, b):
    return np.where(cond, a, b)


#: numpy namespace. Vector helpers act on the last axis of (..., 3) arrays.
NUMPY = SimpleNamespace(
    name="numpy",
    exp=np.exp,
    log=np.log,
    sqrt=np.sqrt,
    erf=scipy.special.erf,
    erfc=scipy.special.erfc,
    tanh=np.tanh,
    where=_np_where,
    dot=lambda a, b: np.sum(np.asarray(a) * np.asarray(b), axis=-1),
    cross=lambda a, b: np.cross(a, b),
    vector=lambda comps: np.stack(np.broadcast_arrays(*comps), axis=-1),
    component=lambda v, i: np.asarray(v)[..., i],
    scale=lambda s, v: np.asarray(s)[..., None] * np.asarray(v),
)

#: erfc switches from 1 − erf to a continued fraction above this argument.
_ERFC_SWITCH = 4.0


def ufl_math() -> SimpleNamespace:
    """UFL namespace with the same names as :data:`NUMPY` (imports UFL lazily).

    UFL has no erfc. ``erfc(x)`` is 1 − erf(x) for x < 4 (absolute error ~1e-16, so
    relative error ≤ ~1e-8 there) and a 24-term continued fraction
    exp(−x²)/√π · 1/(x + ½/(x + 1/(x + …))) for x ≥ 4 (relative error < 1e-12),
    avoiding the total cancellation of 1 − erf(x) ≈ 0 beyond x ≈ 6.
    """
    from femion._dolfinx import ufl

    def erfc(x):
        xs = ufl.max_value(x, _ERFC_SWITCH)
        tail = xs
        for k in range(24, 0, -1):
            tail = xs + (k / 2.0) / tail
        big = ufl.exp(-xs * xs) * 0.5641895835477563 / tail
        return ufl.conditional(ufl.lt(x, _ERFC_SWITCH), 1.0 - ufl.erf(x), big)

    return SimpleNamespace(
        name="ufl",
        exp=ufl.exp,
        log=ufl.ln,
        sqrt=ufl.sqrt,
        erf=ufl.erf,
        erfc=erfc,
        tanh=ufl.tanh,
        where=lambda c, a, b: ufl.conditional(c, a, b),
        dot=ufl.dot,
        cross=ufl.cross,
        vector=lambda comps: ufl.as_vector(list(comps)),
        component=lambda v, i: v[i],
        scale=lambda s, v: s * v,
    )


def _is_number(x) -> bool:
    return isinstance(x, (int, float, np.floating, np.integer))


# --------------------------------------------------------------------------- rate laws


def butler_volmer(eta, *, xp=NUMPY, alpha_a: float = 0.5, alpha_c: float = 0.5):
    """Butler–Volmer: r_red = exp(−α_c η̃), r_ox = exp(α_a η̃).

    η̃ = Fη/(RT) dimensionless; α_a, α_c anodic/cathodic transfer coefficients (−).
    Tafel slope of the reduction branch: ln10·RT/(α_c F) V per decade.
    """
    return xp.exp(-alpha_c * eta), xp.exp(alpha_a * eta)


def marcus(eta, *, xp=NUMPY, reorganization: float = 16.0):
    """Classical Marcus rates, normalised by their η̃ = 0 value exp(−λ̃/4).

    k_red ∝ exp(−(λ̃ + η̃)²/(4λ̃)), k_ox ∝ exp(−(λ̃ − η̃)²/(4λ̃)), so
    r_red = exp(−η̃/2 − η̃²/(4λ̃)), r_ox = exp(+η̃/2 − η̃²/(4λ̃)).
    λ̃ = λ/(k_B T) (reorganization energy in units of k_B T; 16 ≈ 0.41 eV at 298 K).
    Reduction is favoured for η̃ < 0 and peaks at η̃ = −λ̃; beyond (η̃ < −λ̃) it
    falls again: the Marcus inverted region.
    """
    lam = reorganization
    quad = eta * eta / (4.0 * lam)
    return xp.exp(-0.5 * eta - quad), xp.exp(0.5 * eta - quad)


def _mhc_raw_ox(eta, lam, xp):
    """Zeng et al. (2014) closed form of the Chidsey integral, oxidation direction.

    k_ox(η̃) ≈ √(πλ̃) · σ(η̃) · erfc[(λ̃ − √(1 + √λ̃ + η̃²))/(2√λ̃)],
    σ(η̃) = 1/(1 + exp(−η̃)) = (1 + tanh(η̃/2))/2, written with tanh: no overflow and
    finite UFL derivatives at any η̃, at the cost of relative accuracy ~1e-16·e^{|η̃|} in
    the vanishing direction (η̃ ≪ 0), whose absolute size is then < 1e-16.
    """
    sig = 0.5 * (1.0 + xp.tanh(0.5 * eta))
    arg = (lam - xp.sqrt(1.0 + xp.sqrt(lam) + eta * eta)) / (2.0 * xp.sqrt(lam))
    return xp.sqrt(np.pi * lam) * sig * xp.erfc(arg)


def mhc(eta, *, xp=NUMPY, reorganization: float = 16.0, normalized: bool = True):
    """Marcus–Hush–Chidsey rates, asymptotic closed form of Zeng, Smith, Bai & Bazant,
    J. Electroanal. Chem. 735 (2014) 77:

    k_red/ox(η̃) ≈ √(πλ̃)/(1 + exp(±η̃)) · erfc[(λ̃ − √(1 + √λ̃ + η̃²))/(2√λ̃)],

    upper sign reduction: k_red(η̃) = k_ox(−η̃); λ̃ = λ/(k_B T). Normalised (default)
    by k(0), so r_red(0) = r_ox(0) = 1. Detailed balance k_ox/k_red = exp(η̃) holds
    exactly. Unlike Marcus there is no inverted region: the favoured rate saturates
    at 2√(πλ̃)/k(0) for |η̃| ≫ λ̃. ``normalized=False`` returns the raw k (same units
    as :func:`mhc_integral` with ``normalized=False``).

    Accuracy against the integral (measured, |η̃| ≤ 30, unnormalised): max relative
    error 7.8 % at λ̃ = 5, < 5 % only for λ̃ ≈ 8–16 (2.8 % at 14), 8.5 % at 20, 18 % at 30,
    27 % at 40, worst at η̃ = 0 (the paper claims < 5 % "for reasonable parameters").
    Normalised rates inherit a similar error (16 % at λ̃ = 5, 6.4 % at 10, 29 % at 40).
    """
    lam = reorganization
    r_ox = _mhc_raw_ox(eta, lam, xp)
    r_red = _mhc_raw_ox(-eta, lam, xp)
    if not normalized:
        return r_red, r_ox
    k0 = _mhc_raw_ox(0.0, lam, NUMPY if _is_number(lam) else xp)
    return r_red / k0, r_ox / k0


def mhc_integral(eta, reorganization: float, *, normalized: bool = False):
    """Chidsey integral by quadrature (numpy only; reference for :func:`mhc`).

    k_red/ox(η̃) = ∫ exp(−(x − λ̃ ± η̃)²/(4λ̃)) / (1 + exp(x)) dx over ℝ,
    x = (E − E_F)/(k_B T); the "+" sign (Gaussian centred at λ̃ − η̃) is oxidation,
    so k_red(η̃) = k_ox(−η̃). Returns (k_red, k_ox) as float arrays; normalised by the
    η̃ = 0 value if ``normalized``.
    """
    lam = float(reorganization)
    etas = np.atleast_1d(np.asarray(eta, dtype=float))

    def k_ox(e):
        centre = lam - e
        width = 40.0 * np.sqrt(lam) + 60.0
        lo, hi = min(centre, 0.0) - width, max(centre, 0.0) + width

        def f(x):
            return np.exp(-((x - centre) ** 2) / (4.0 * lam)) * scipy.special.expit(-x)

        pts = sorted({0.0, centre})
        val, _ = integrate.quad(f, lo, hi, points=pts, limit=500, epsabs=0.0, epsrel=1e-12)
        return val

    red = np.array([k_ox(-e) for e in etas])
    ox = np.array([k_ox(e) for e in etas])
    if normalized:
        k0 = k_ox(0.0)
        red, ox = red / k0, ox / k0
    shape = np.shape(eta)
    return red.reshape(shape), ox.reshape(shape)


#: the rate laws by name, each with its parameters (``reorganization`` = λ/(k_B T), dimensionless)
LAWS = registry(
    Law("butler_volmer", butler_volmer, ("alpha_a", "alpha_c")),
    Law("marcus", marcus, ("reorganization",)),
    Law("mhc", mhc, ("reorganization",)),
)


def rate(law: str, eta, *, xp=NUMPY, **params):
    """(r_red, r_ox) of the law named ``law`` (one of :data:`LAWS`) at η̃ = ``eta``."""
    return choose(LAWS, law, "rate law")(eta, xp=xp, **params)


def reaction_rates(law: str, eta, theta, activity, *, theta_ref: float = 0.5, xp=NUMPY, **params):
    """One-way insertion and extraction rates (r_in, r_out) of the exchange, dimensionless, with
    reaction-specific concentration factors: insertion ∝ free sites × cation activity, extraction
    ∝ occupied sites (the coupled ion–electron transfer form; seed 003, Fraggedakis et al., Nat.
    Commun. 12 (2021) 1) on the rate law ``law`` of :data:`LAWS`:

        r_in = (1 − θ) a r_red(ξ) / N,   r_out = θ r_ox(ξ) / N,   ξ = η̃ + ln[(1 − θ) a / θ],
        N = θ_ref r_ox(ln[(1 − θ_ref)/θ_ref]),

    η̃ = zFη/(RT) the driving force of the exchange (η = φ_s − φ_l − U(θ)), θ the film's filling
    at the interface, a = c_l/c_ref the cation's activity. ξ is the driving force on the formal
    scale: the configurational term ln[(1 − θ)/θ] of U(θ) and the activity leave η̃ and enter as
    the site and ion factors. The molar flux into the film is j = i0_ref/(zF) (r_in − r_out);
    N makes r_in = r_out = 1 in the reference state (θ_ref, c_ref, η = 0), so i0_ref is the
    exchange current density there for every law. Detailed balance r_ox/r_red = e^ξ puts
    equilibrium at η = 0 for every law, and near it j ≈ −(i0/(zF)) η̃ with i0 = i0_ref r_out(η = 0).

    For Butler–Volmer with α_a + α_c = 1 this is the Newman form exactly: r_in − r_out =
    (i0/i0_ref)(r_red(η̃) − r_ox(η̃)) with i0 of :func:`exchange_current_density_at`. For a
    saturating law (MHC) it differs where it matters: as θ → 0 the insertion rate tends to
    a r_red(ξ)/N, finite, where the symmetric prefactor √(θ(1 − θ)) sent it to 0 (an emptied
    film could never take Li back). Numbers, arrays or UFL alike (``xp``).
    """
    xi = eta + xp.log((1 - theta) * activity / theta)
    r_red, r_ox = rate(law, xi, xp=xp, **params)
    xi_ref = float(np.log((1.0 - theta_ref) / theta_ref))
    norm = theta_ref * rate(law, xi_ref, xp=NUMPY if _numbers(params) else xp, **params)[1]
    return (1 - theta) * activity * r_red / norm, theta * r_ox / norm


def _numbers(params) -> bool:
    return all(_is_number(v) for v in params.values())


# --------------------------------------------------------------------------- prefactors


def exchange_current_density(k0, c_l, c_s, c_max, alpha_a=0.5, alpha_c=0.5, xp=NUMPY):
    """i0 = F k0 c_l^α_a (c_max − c_s)^α_a c_s^α_c   (A m⁻²).

    c_l electrolyte cation, c_s oxide Li, c_max site concentration (mol m⁻³).
    k0 in mol m⁻² s⁻¹ (mol m⁻³)^−(2α_a+α_c), i.e. m^(3(2α_a+α_c)−2) mol^(1−2α_a−α_c) s⁻¹
    (m^2.5 mol^−0.5 s⁻¹ for α_a = α_c = 0.5). Powers use ``**`` (numpy and UFL alike);
    ``xp`` is accepted for a uniform signature.
    """
    return F * k0 * c_l**alpha_a * (c_max - c_s) ** alpha_a * c_s**alpha_c


def exchange_current_density_at(i0_ref, c_l, theta, *, c_ref, theta_ref=0.5, alpha_a=0.5, alpha_c=0.5):
    """i0 = i0_ref (c_l/c_ref)^α_a ((1 − θ)/(1 − θ_ref))^α_a (θ/θ_ref)^α_c   (A m⁻², units of i0_ref).

    The exchange current density at electrolyte concentration c_l and filling θ from its value
    i0_ref at (c_ref, θ_ref): :func:`exchange_current_density` with k0 eliminated. c_l, c_ref in
    mol m⁻³; numbers, arrays or UFL alike.
    """
    return (i0_ref * (c_l / c_ref) ** alpha_a * ((1 - theta) / (1 - theta_ref)) ** alpha_a
            * (theta / theta_ref) ** alpha_c)


def charge_transfer_resistance(i0, T):
    """R_ct = RT/(F i0)   (Ω m²): slope dη/di at η = 0 for any law above (T in K)."""
    return R * T / (F * i0)


def arrhenius(k_ref, E_a, T, T_ref: float = 298.15, xp=NUMPY):
    """k(T) = k_ref exp[−(E_a/R)(1/T − 1/T_ref)]; E_a in J/mol, T, T_ref in K."""
    return k_ref * xp.exp(-(E_a / R) * (1.0 / T - 1.0 / T_ref))


def barrier_rate_constants(E_L, E_S, prefactor, T, xp=NUMPY):
    """(k_in, k_out) = prefactor·(exp(−E_L/(RT)), exp(−E_S/(RT))) of seed 000 Fig. 1.

    E_L: barrier seen from the liquid side (crossed on insertion), E_S: from the solid
    side (crossed on exit), both J/mol; prefactor in the units wanted for k (e.g. k0).
    The asymmetry shifts the equilibrium: with j = k_in e^{−α_c η̃} − k_out e^{α_a η̃}
    (α_a + α_c = 1, equal concentration factors), j = 0 gives
    η̃_eq = ln(k_in/k_out) = −(E_L − E_S)/(RT), i.e. η_eq = −(E_L − E_S)/F
    (:func:`barrier_equilibrium_shift`): E_L > E_S lowers the insertion potential.
    """
    return (
        prefactor * xp.exp(-E_L / (R * T)),
        prefactor * xp.exp(-E_S / (R * T)),
    )


def barrier_equilibrium_shift(E_L, E_S):
    """Δφ_eq = −(E_L − E_S)/F   (V): shift of the zero-flux φ_s − φ_l by the barriers."""
    return -(E_L - E_S) / F
