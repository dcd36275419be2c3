"""Checkpoints keyed by input node index: written on one number of ranks, restored on another."""

from __future__ import annotations

import numpy as np
import pytest

from femion._dolfinx import MPI, dolfinx
from femion.results.checkpoint import CheckpointError, read_checkpoint, restore_arrays, write_checkpoint


def _field(comm, n=12):
    """A P1 function of x and y on a submesh (the cells with x < 0.6) of a unit square."""
    msh = dolfinx.mesh.create_unit_square(comm, n, n, dolfinx.mesh.CellType.quadrilateral)
    cells = dolfinx.mesh.locate_entities(msh, 2, lambda x: x[0] < 0.6)
    sub = dolfinx.mesh.create_submesh(msh, 2, cells)[0]
    V = dolfinx.fem.functionspace(sub, ("Lagrange", 1))
    u = dolfinx.fem.Function(V)
    u.interpolate(lambda x: 1.0 + x[0] + 10 * x[1] ** 2)
    return V, u


@pytest.mark.mpi
def test_a_checkpoint_restores_on_any_number_of_ranks(comm, shared_tmp):
    """Written on 1 rank (or on all), read on all ranks: every local dof, ghosts included, gets
    exactly the value it had; meta comes back as written."""
    path = shared_tmp / "state.npz"
    if comm.rank == 0:  # the serial run of the same case
        V1, u1 = _field(MPI.COMM_SELF)
        write_checkpoint(path, MPI.COMM_SELF, {"s": V1}, {"u": ("s", u1.x.array), "twice": ("s", 2 * u1.x.array)},
                         {"t": 12.5, "stage": 3})
    comm.barrier()
    V, u = _field(comm)
    meta, raw = read_checkpoint(path, comm)
    assert meta["t"] == 12.5 and meta["stage"] == 3
    values = restore_arrays(raw, meta, {"s": V})
    # the same nodes get the same values (interpolation itself differs by round-off between rank counts)
    assert np.abs(values["u"] - u.x.array).max() < 1e-14
    assert np.abs(values["twice"] - 2 * u.x.array).max() < 2e-14
    # and back: written on all ranks, read serially
    path2 = shared_tmp / "state2.npz"
    write_checkpoint(path2, comm, {"s": V}, {"u": ("s", u.x.array)}, {"t": 1.0})
    if comm.rank == 0:
        V1, u1 = _field(MPI.COMM_SELF)
        meta1, raw1 = read_checkpoint(path2, MPI.COMM_SELF)
        assert np.abs(restore_arrays(raw1, meta1, {"s": V1})["u"] - u1.x.array).max() < 1e-14


def test_a_checkpoint_of_another_mesh_is_refused(tmp_path):
    """A checkpoint whose nodes are not this mesh's (the case's mesh settings changed) is refused."""
    V, u = _field(MPI.COMM_SELF, n=12)
    write_checkpoint(tmp_path / "a.npz", MPI.COMM_SELF, {"s": V}, {"u": ("s", u.x.array)}, {})
    V2, _ = _field(MPI.COMM_SELF, n=10)
    meta, raw = read_checkpoint(tmp_path / "a.npz", MPI.COMM_SELF)
    with pytest.raises(CheckpointError, match="does not fit this mesh"):
        restore_arrays(raw, meta, {"s": V2})
    (tmp_path / "bad.npz").write_bytes(b"PK\x03\x04 truncated")
    with pytest.raises(CheckpointError, match="cannot read checkpoint"):
        read_checkpoint(tmp_path / "bad.npz", MPI.COMM_SELF)
