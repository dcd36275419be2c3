"""The linear solver of the transport Newton: MUMPS (``direct``), or GMRES preconditioned by a
field split (``iterative``): the potentials ψ and φ_e (elliptic, no mass term) by algebraic
multigrid (one GAMG each), the fillings and concentrations (mass-dominated) by block-Jacobi ILU.

The blocked Jacobian (``kind="mpi"``) holds each rank's owned dofs field after field, so a
field's rows are ``first_row + offsets[k] .. first_row + offsets[k + 1]`` in global numbering.
"""

from __future__ import annotations

from femion._dolfinx import PETSc

LINEAR_SOLVERS = ("direct", "iterative")

#: the unknowns of the potential split; every other field goes to the concentration split
POTENTIALS = ("psi", "phi_e")

DIRECT = {"ksp_type": "preonly", "pc_type": "lu", "pc_factor_mat_solver_type": "mumps"}

#: FGMRES (right preconditioned: its residual is the true one) on a multiplicative field split;
#: rtol 1e-10 so that Newton converges as with exact solves (its tests are at 1e-13 relative)
ITERATIVE = {
    "ksp_type": "fgmres",
    "ksp_rtol": 1e-10,
    "ksp_atol": 0.0,
    "ksp_max_it": 400,
    "ksp_gmres_restart": 100,
    "pc_type": "fieldsplit",
    "pc_fieldsplit_type": "multiplicative",
}

#: the splits: name -> the fields it holds (None: every field that is not a potential). ψ and
#: φ_e apart: each is a thin-layer Laplacian of its own, coupled to the other only through Γ
GROUPS = {"conc": None, "psi": ("psi",), "phi_e": ("phi_e",)}

#: GAMG on a potential: plain aggregation (smoothed aggregation made dense coarse operators on
#: these layers: 95 s of setup at 1e5 unknowns), a strength threshold that drops the weak
#: in-plane links of a thin layer, no aggressive coarsening; one V-cycle per application
GAMG = {"ksp_type": "preonly", "pc_type": "gamg", "pc_gamg_threshold": 0.02,
        "pc_gamg_aggressive_coarsening": 0, "pc_gamg_agg_nsmooths": 0, "pc_gamg_reuse_interpolation": "true"}

#: options of each split (prefix ``fieldsplit_<name>_``). Block Jacobi ILU on the fillings and
#: concentrations: a filling near its bound has a pivot ~θ(1−θ) ≈ 1e-11 of its row, which PETSc's
#: default zero-pivot test (1e-12 relative) would refuse
SPLITS = {
    "conc": {"ksp_type": "preonly", "pc_type": "bjacobi", "sub_pc_type": "ilu", "sub_pc_factor_zeropivot": 1e-300},
    "psi": GAMG,
    "phi_e": GAMG,
}


def petsc_options(kind: str) -> dict:
    """The KSP options of a linear solver (``direct`` or ``iterative``)."""
    if kind not in LINEAR_SOLVERS:
        raise ValueError(f"linear solver must be one of {LINEAR_SOLVERS}, got {kind!r}")
    return dict(DIRECT if kind == "direct" else ITERATIVE)


def split_fields(names) -> dict[str, list[int]]:
    """{split name: indices of its fields in ``names``} (GROUPS; splits with no field left out)."""
    out = {g: [k for k, n in enumerate(names) if (n not in POTENTIALS if f is None else n in f)]
           for g, f in GROUPS.items()}
    return {g: ks for g, ks in out.items() if ks}


def set_field_split(ksp, names, offsets, first_row: int) -> list[str]:
    """Give a field-split ``ksp`` its index sets (owned rows of each split, global numbering) and
    put its splits' options in PETSc's options database; returns their keys, for
    :func:`clear_options` once the first solve has set every inner solver up (GAMG's levels and
    block Jacobi's blocks read their options only then). Done once per KSP: the splits keep their
    options and (GAMG) their interpolation while the Jacobian's values change."""
    comm = ksp.getComm()
    pc = ksp.getPC()
    splits = []
    for split, fields in split_fields(names).items():
        idx = [i for k in fields for i in range(first_row + offsets[k], first_row + offsets[k + 1])]
        splits.append((split, PETSc.IS().createGeneral(idx, comm=comm)))
    pc.setFieldSplitIS(*splits)
    for _, iset in splits:
        iset.destroy()
    opts = PETSc.Options()
    prefix = ksp.getOptionsPrefix() or ""
    keys = []
    for split in split_fields(names):
        for k, v in SPLITS[split].items():
            key = f"{prefix}fieldsplit_{split}_{k}"
            opts[key] = v
            keys.append(key)
    ksp.setFromOptions()
    return keys


def clear_options(keys) -> None:
    """Remove the options :func:`set_field_split` put in the database."""
    opts = PETSc.Options()
    for key in keys:
        opts.delValue(key)
