"""The thin-film shell limit (physics.md §2b): the oxide and the electrolyte solved on the plan mesh.

The films are 10⁴–10⁵ times thinner than wide, so each is a sheet of its thickness t: a volume
integral over the layer becomes t × an area integral, and the exchange across Γ = oxide|electrolyte
becomes an area source wherever the electrolyte covers the oxide (the counter electrode's likewise
wherever the layer above covers the electrolyte). That is all the limit changes; the residual
blocks of terms.py are the same functions, given these measures instead of the stack's:

    oxide:        t_ox c_max ∂θ/∂t = ∇·(t_ox D_s c_max ∇θ) + j                    (mol m⁻² s⁻¹)
    electrolyte:  h ∂c_i/∂t = −∇·(h N_i) − j δ_i,ex (+ j_top),   ∇·(h Σ z_k N_k) = z j (− z j_top)
    electrons:    ∇·(G ∇φ_e) = −zF j,  G = the sheet conductance beneath plus the oxide's own (S)

with θ, c_i, φ_e, φ_l uniform through each film's thickness (lumped through-film diffusion: valid
while t_ox²/D_s is short beside the drive, and the electrolyte thinner than the lateral lengths).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from femion._dolfinx import dolfinx
from femion.transport.domain import EL, GAMMA, OX, TOP, Measures, cell_parts, cell_values

# Cell tags of the plan mesh: a bit per layer present over the cell.
_OX_BIT, _EL_BIT, _TOP_BIT = 1, 2, 4


class Weighted:
    """A measure times a weight: ``expr * Weighted(dx, w)`` is ``(expr * w) * dx``."""

    def __init__(self, measure, weight):
        self.measure, self.weight = measure, weight

    def __rmul__(self, integrand):
        return (integrand * self.weight) * self.measure


@dataclass
class ShellDomain:
    """The plan mesh with the cells each layer covers and the film thicknesses (m)."""

    mesh: dolfinx.mesh.Mesh
    oxide_cells: np.ndarray
    electrolyte_cells: np.ndarray
    top_cells: np.ndarray | None
    oxide_thickness: float
    electrolyte_thickness: float

    @classmethod
    def from_plan(cls, plan_mesh, oxide, electrolyte, above, oxide_thickness: float, electrolyte_thickness: float):
        """Domain from a :class:`femion.geometry.mesh.PlanMesh` and the layer names (``above``: the
        layer over the electrolyte, or None)."""
        el = plan_mesh.cells(electrolyte)
        top = None if above is None else np.intersect1d(el, plan_mesh.cells(above)).astype(np.int32)
        return cls(plan_mesh.mesh, plan_mesh.cells(oxide), el, top, oxide_thickness, electrolyte_thickness)

    def measures(self, *, top: bool, quadrature_degree: int, lumped_mass: bool) -> ShellMeasures:
        return ShellMeasures.build(self, top=top, quadrature_degree=quadrature_degree, lumped_mass=lumped_mass)


class _Ids:
    """``measure(OX)`` etc. for the shell: the plan measure over the cells the layer covers,
    weighted by the layer's thickness (``weights``: id → (tag bits, weight))."""

    def __init__(self, measure, tags: np.ndarray, weights: dict):
        self.measure, self.tags, self.weights = measure, tags, weights

    def __call__(self, sid):
        bits, weight = self.weights[sid]
        return Weighted(self.measure(tuple(int(t) for t in self.tags if t & bits == bits)), weight)


class ShellMeasures(Measures):
    """The shell's measures (the interface of :class:`femion.transport.domain.Measures`):
    ``dx(OX)`` = t_ox dA over the oxide, ``dx(EL)`` = h dA over the electrolyte, ``dS(GAMMA)`` = dA
    (lumped) where the electrolyte covers the oxide, ``ds(TOP)`` = dA where the layer above covers
    the electrolyte. Nothing is restricted to a side: :meth:`side` is the identity."""

    @property
    def through_axis(self) -> None:
        """None: the thickness is integrated out."""
        return None

    @staticmethod
    def side(expr, side: str):
        return expr

    @classmethod
    def build(cls, domain: ShellDomain, *, top: bool, quadrature_degree: int, lumped_mass: bool):
        msh = domain.mesh
        bits = cell_values(msh)
        bits[domain.oxide_cells] |= _OX_BIT
        bits[domain.electrolyte_cells] |= _EL_BIT
        if top and domain.top_cells is not None:
            bits[domain.top_cells] |= _TOP_BIT
        *parts, dx, dx_mass = cell_parts(msh, bits, domain.oxide_cells, domain.electrolyte_cells, quadrature_degree,
                                lumped_mass)
        # every combination of bits a cell may carry, the same on every rank (forms must agree)
        tags = np.arange(1, 8, dtype=np.int32)
        t_ox, h = domain.oxide_thickness, domain.electrolyte_thickness
        volumes = {OX: (_OX_BIT, t_ox), EL: (_EL_BIT, h)}
        ds = None
        if top and domain.top_cells is not None:
            ds = _Ids(dx, tags, {TOP: (_EL_BIT | _TOP_BIT, 1.0)})
        return cls(msh, *parts, _Ids(dx, tags, volumes), _Ids(dx_mass, tags, volumes),
                   _Ids(dx_mass, tags, {GAMMA: (_OX_BIT | _EL_BIT, 1.0)}), ds)
