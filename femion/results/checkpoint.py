"""Checkpoints of nodal (P1) state that read back on any number of ranks.

The mesh is rebuilt deterministically from the case (gmsh on rank 0, the same input node
numbering every time), so a value is keyed by its node's *input* index
(``mesh.geometry.input_global_indices``; a submesh keeps its parent's). A checkpoint is one
``.npz`` written by rank 0: for each space the sorted input indices of its nodes, and for each
stored array its values at those nodes; ``meta`` is any JSON-able mapping (time, step size,
protocol position ...). Reading scatters the values back through each rank's own input indices,
so a checkpoint written on 1 rank restores on 2 and vice versa. Plain numpy: adios4dolfinx
cannot load beside the PyPI wheel's ADIOS2 (shared/dolfinx-notes.md).
"""

from __future__ import annotations

import json
import os
import zipfile
from pathlib import Path

import numpy as np

from femion._dolfinx import geometry_dofmap


class CheckpointError(RuntimeError):
    """A checkpoint cannot be read or does not fit the problem it is restored into."""


def _node_of_dof(V) -> np.ndarray:
    """Local geometry node of every local dof of a P1 space (first-order meshes: vertex-aligned)."""
    msh = V.mesh
    ndof = V.dofmap.index_map.size_local + V.dofmap.index_map.num_ghosts
    node = np.full(ndof, -1, dtype=np.int64)
    node[V.dofmap.list.ravel()] = geometry_dofmap(msh).ravel()
    return node


def _owned(V) -> np.ndarray:
    return np.arange(V.dofmap.index_map.size_local, dtype=np.int64)


def write_checkpoint(path: str | Path, comm, spaces: dict, arrays: dict[str, tuple[str, np.ndarray]],
                     meta: dict) -> Path:
    """Write ``arrays`` ({key: (space name, local dof values)}) of P1 ``spaces`` ({name: V}) and
    ``meta`` to ``path`` (collective; rank 0 writes, atomically through a temporary file)."""
    path = Path(path)
    out: dict[str, np.ndarray] = {}
    for name, V in spaces.items():
        nodes = _node_of_dof(V)[_owned(V)]
        gathered = comm.gather((V.mesh.geometry.input_global_indices[nodes], V.mesh.geometry.x[nodes]), root=0)
        if comm.rank == 0:
            allidx = np.concatenate([g[0] for g in gathered])
            order = np.argsort(allidx, kind="stable")
            out[f"index/{name}"] = allidx[order]
            out[f"coords/{name}"] = np.concatenate([g[1] for g in gathered])[order]
            out[f"_order/{name}"] = order
    for key, (name, values) in arrays.items():
        owned = np.asarray(values)[: spaces[name].dofmap.index_map.size_local]
        gathered = comm.gather(owned, root=0)
        if comm.rank == 0:
            out[f"value/{key}"] = np.concatenate(gathered)[out[f"_order/{name}"]]
    if comm.rank == 0:
        for name in spaces:
            del out[f"_order/{name}"]
        out["meta"] = np.array(json.dumps({**meta, "arrays": {k: n for k, (n, _) in arrays.items()}}))
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        with open(tmp, "wb") as fh:
            np.savez(fh, **out)
        os.replace(tmp, path)
    comm.barrier()
    return path


def read_checkpoint(path: str | Path, comm) -> tuple[dict, dict]:
    """(meta, raw arrays) of a checkpoint, read on rank 0 and broadcast (collective)."""
    data, error = None, None
    if comm.rank == 0:
        try:
            with np.load(Path(path), allow_pickle=False) as npz:
                data = {k: npz[k] for k in npz.files}
            data["meta"] = json.loads(str(data["meta"]))
        except (OSError, ValueError, KeyError, zipfile.BadZipFile) as exc:
            error = f"cannot read checkpoint {path}: {exc}"
    data, error = comm.bcast((data, error), root=0)
    if error:
        raise CheckpointError(error)
    return data.pop("meta"), data


def restore_arrays(raw: dict, meta: dict, spaces: dict) -> dict[str, np.ndarray]:
    """Local dof values (owned and ghost) of every stored array, looked up by input node index."""
    out = {}
    for key, name in meta["arrays"].items():
        V = spaces[name]
        index = raw[f"index/{name}"]
        nodes = _node_of_dof(V)
        igi = V.mesh.geometry.input_global_indices[nodes]
        pos = np.minimum(np.searchsorted(index, igi), max(len(index) - 1, 0))
        # the same input index at the same place: the same mesh, rebuilt from the same case
        scale = float(np.abs(raw[f"coords/{name}"]).max(initial=1.0))
        if len(index) == 0 or not np.array_equal(index[pos], igi) or not np.allclose(
                raw[f"coords/{name}"][pos], V.mesh.geometry.x[nodes], rtol=0, atol=1e-12 * scale):
            raise CheckpointError(f"checkpoint field {key!r} does not fit this mesh (was the case or its mesh "
                                  f"settings changed since it was written?)")
        out[key] = raw[f"value/{key}"][pos]
    return out
