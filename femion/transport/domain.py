"""Where the transport lives: the parent mesh's oxide and electrolyte cells, Γ = oxide|electrolyte,
the top face, their submeshes and the integration measures.

Cell integrals carry the ids OX, EL; facet integrals GAMMA (Γ, oxide side '+') and TOP (the
electrolyte's top face, one-sided).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from femion._dolfinx import dolfinx, ufl

OX, EL = 1, 2  # cell-integral ids
GAMMA, TOP = 1, 2  # facet-integral ids


@dataclass
class TransportDomain:
    """A parent mesh with its oxide and electrolyte cells and the oxide|electrolyte facets."""

    mesh: dolfinx.mesh.Mesh
    oxide_cells: np.ndarray
    electrolyte_cells: np.ndarray
    interface_facets: np.ndarray
    top_facets: np.ndarray | None = None

    @classmethod
    def from_stack(cls, stack, oxide="oxide", electrolyte="electrolyte", top="electrolyte|top_ito"):
        """Domain from a :class:`femion.geometry.mesh.StackMesh` (2D section or 3D)."""
        top_facets = stack.facets(top) if top in stack.names else None
        return cls(stack.mesh, stack.cells(oxide), stack.cells(electrolyte),
                   stack.facets(f"{oxide}|{electrolyte}"), top_facets)

    def measures(self, *, top: bool, quadrature_degree: int, lumped_mass: bool) -> Measures:
        return Measures.build(self, top=top, quadrature_degree=quadrature_degree, lumped_mass=lumped_mass)


def interface_entities(msh, facets, first_cells):
    """(cell, local facet) pairs of interior facets, the ``first_cells`` side always '+'."""
    tdim = msh.topology.dim
    msh.topology.create_connectivity(tdim - 1, tdim)
    msh.topology.create_connectivity(tdim, tdim - 1)
    data = dolfinx.fem.compute_integration_domains(dolfinx.fem.IntegralType.interior_facet, msh.topology, facets)
    data = np.asarray(data, dtype=np.int32).reshape(-1, 4).copy()
    n = msh.topology.index_map(tdim).size_local + msh.topology.index_map(tdim).num_ghosts
    mark = np.zeros(n, dtype=bool)
    mark[first_cells] = True
    swap = ~mark[data[:, 0]]
    data[swap] = data[swap][:, [2, 3, 0, 1]]
    if not mark[data[:, 0]].all():
        raise ValueError("an interface facet does not touch the given side")
    return data.ravel()


def one_sided_entities(msh, facets, cells):
    """(cell, local facet) pairs for a one-sided ("ds") integral over ``facets`` from the side of
    ``cells``: a facet between two layers (the electrolyte under the top ITO) is interior to the
    parent mesh, and which of its cells dolfinx lists first depends on the numbering."""
    tdim = msh.topology.dim
    msh.topology.create_connectivity(tdim - 1, tdim)
    facets = np.asarray(facets, dtype=np.int32)
    two = np.diff(msh.topology.connectivity(tdim - 1, tdim).offsets)[facets] == 2
    parts = []
    if (~two).any():
        parts.append(np.asarray(dolfinx.fem.compute_integration_domains(
            dolfinx.fem.IntegralType.exterior_facet, msh.topology, facets[~two]), dtype=np.int32).reshape(-1, 2))
    if two.any():
        parts.append(interface_entities(msh, facets[two], cells).reshape(-1, 4)[:, :2])
    data = np.concatenate(parts) if parts else np.zeros((0, 2), dtype=np.int32)
    return np.ascontiguousarray(data).ravel()


def lumped_quadrature(msh) -> dict:
    """Measure metadata of the lumped (vertex) quadrature of ``msh``'s cells: GLL on quadrilaterals
    and hexahedra, the vertex rule on simplices."""
    if msh.topology.cell_type in (dolfinx.mesh.CellType.quadrilateral, dolfinx.mesh.CellType.hexahedron):
        return {"quadrature_rule": "GLL", "quadrature_degree": 1}
    return {"quadrature_rule": "vertex", "quadrature_degree": 1}


def cell_values(msh) -> np.ndarray:
    """Zeros, one per local cell (owned + ghost): the values of a cell tagging to fill."""
    imap = msh.topology.index_map(msh.topology.dim)
    return np.zeros(imap.size_local + imap.num_ghosts, dtype=np.int32)


def cell_parts(msh, values, oxide_cells, electrolyte_cells, quadrature_degree: int, lumped_mass: bool) -> tuple:
    """What the stack's and the shell's measures share, in the order of :class:`Measures`' fields:
    the cell tags (``values``), the oxide and electrolyte submeshes with their maps, ``dx`` (fixed
    quadrature) and ``dx_mass`` (lumped)."""
    tdim = msh.topology.dim
    cell_tags = dolfinx.mesh.meshtags(msh, tdim, np.arange(len(values), dtype=np.int32), values)
    ox_mesh, ox_map = dolfinx.mesh.create_submesh(msh, tdim, oxide_cells)[:2]
    el_mesh, el_map = dolfinx.mesh.create_submesh(msh, tdim, electrolyte_cells)[:2]
    # One fixed quadrature for residual and Jacobian: UFL would otherwise estimate a higher
    # degree for the Jacobian of exp(u) terms, and Newton would lose its quadratic rate.
    dx = ufl.Measure("dx", domain=msh, subdomain_data=cell_tags, metadata={"quadrature_degree": quadrature_degree})
    # Lumped mass for the time derivatives (quadrature at the vertices): no over/undershoot
    # where exchange switches on at a coating edge, and uncoated oxide is left untouched.
    dx_mass = (ufl.Measure("dx", domain=msh, subdomain_data=cell_tags, metadata=lumped_quadrature(msh))
               if lumped_mass else dx)
    return cell_tags, ox_mesh, ox_map, el_mesh, el_map, dx, dx_mass


@dataclass
class Measures:
    """Submeshes of the oxide and electrolyte (with their maps from the parent) and the measures:
    ``dx`` (fixed quadrature), ``dx_mass`` (lumped, for time derivatives), ``dS`` on Γ and ``ds``
    on the top face (None without a counter electrode)."""

    mesh: dolfinx.mesh.Mesh
    cell_tags: dolfinx.mesh.MeshTags
    ox_mesh: dolfinx.mesh.Mesh
    ox_map: object
    el_mesh: dolfinx.mesh.Mesh
    el_map: object
    dx: ufl.Measure
    dx_mass: ufl.Measure
    dS: ufl.Measure
    ds: ufl.Measure | None

    @property
    def entity_maps(self) -> list:
        return [self.ox_map, self.el_map]

    @property
    def through_axis(self) -> int:
        """The mesh axis across the layers (z, the last)."""
        return self.mesh.geometry.dim - 1

    @staticmethod
    def side(expr, side: str):
        """``expr`` restricted to the oxide ('+') or electrolyte ('−') side of Γ."""
        return expr(side)

    @classmethod
    def build(cls, domain: TransportDomain, *, top: bool, quadrature_degree: int, lumped_mass: bool):
        """Tags, submeshes and measures of ``domain``; ``top``: integrate over its top face."""
        msh = domain.mesh
        values = cell_values(msh)
        values[domain.oxide_cells] = OX
        values[domain.electrolyte_cells] = EL
        parts = cell_parts(msh, values, domain.oxide_cells, domain.electrolyte_cells, quadrature_degree,
                                lumped_mass)
        facet_data = [(GAMMA, interface_entities(msh, domain.interface_facets, domain.oxide_cells))]
        # The exchange on Γ is lumped the same way (vertex quadrature): with consistent facet
        # quadrature, a floating oxide (no conductor beneath) admits node-to-node oscillating φ_e
        # whose exchange cancels against every hat function, a spurious checkerboard of θ.
        dS = ufl.Measure("dS", domain=msh, subdomain_data=facet_data,
                         metadata=lumped_quadrature(msh) if lumped_mass else {"quadrature_degree": quadrature_degree})
        ds = None
        if top and domain.top_facets is not None:
            top_entities = one_sided_entities(msh, domain.top_facets, domain.electrolyte_cells)
            ds = ufl.Measure("ds", domain=msh, subdomain_data=[(TOP, top_entities)],
                             metadata={"quadrature_degree": quadrature_degree})
        return cls(msh, *parts, dS, ds)
