"""Writing a results directory: a public contract that later stages add to, never rename.

Layout of ``<out>/``::

    case.yaml        the resolved case, every quantity in SI with its unit
    summary.json     SI scalars (resistance_ohm, current_A, voltage_V, joule_power_W,
                     max_B_interface_T, layer_z_m, plate_m, ...), versions, MPI size, wall time
    sheets.npz       the sheet currents (panels, K, z) that B is computed from
    transport.csv    (transport runs) one row per time step
    fields/*.bp      VTX (ADIOS2) files for ParaView, one per field
    fields/*.vtkhdf  the same fields for pyvista / dolfinx (one field per file)
    figures/*.png    off-screen renderings

A run writes into ``<out>.partial-<pid>`` and renames it to ``<out>`` only once everything is
written, so a failed run leaves no half-written results; ``.femion-result.json``, written last,
marks the directory as femion's (see :class:`ResultWriter` for what may replace what).
Reading it back: :mod:`femion.results.reader`.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import sys
import time
from pathlib import Path

import numpy as np

from femion._dolfinx import MPI, dolfinx, geometry_dofmap
from femion.magnetic.biot_savart import SheetCurrent
from femion.results import OutputError, on_root

MANIFEST = ".femion-result.json"
"""Written last into every results directory: what femion wrote there and how the run ended.
Only a directory with a manifest, holding nothing the manifest does not list, is ever replaced."""


class ResultWriter:
    """Collective writer of one run's directory (see module doc).

    ``<out>.lock`` (an advisory lock held for the whole run) keeps a second run out of ``out``;
    the files go to ``<out>.partial-<pid>`` and :meth:`commit` moves them into place. A complete
    run replaces an earlier femion result (never anything else); an incomplete one (stopped,
    interrupted) goes beside it as ``<out>.<status>-<time>``. Every rank-0 file operation reports
    its outcome to all ranks, so a failure there ends the run on every rank with one line.

    As a context manager: the block writes the files and sets :attr:`status` ("completed" unless
    told otherwise); leaving it commits with that status (:attr:`path` is then where the result
    went), leaving it by an exception abandons the partial directory::

        with ResultWriter(out, comm) as writer:
            writer.write_json("summary.json", summary)
            writer.status = "stopped"
        print(writer.path)
    """

    def __init__(self, out: str | Path, comm: MPI.Comm):
        self.final = Path(out).resolve()
        self.comm = comm
        self.status = "completed"
        self._lock = None

        def prepare():
            check_replaceable(self.final)
            self.final.parent.mkdir(parents=True, exist_ok=True)
            self._lock = RunLock.acquire(self.final)
            try:
                for left in sorted(self.final.parent.glob(f"{self.final.name}.partial-*")):
                    print(f"femion: note: {left} is left over from an earlier run that did not finish; kept",
                          file=sys.stderr, flush=True)
                path = self.final.with_name(f"{self.final.name}.partial-{os.getpid()}")
                (path / "fields").mkdir(parents=True)
                (path / "figures").mkdir()
            except BaseException:
                self._lock.release()
                raise
            return path

        self.path = Path(self.on_root(prepare, f"cannot prepare {self.final}"))

    def __enter__(self) -> ResultWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> bool:
        if exc_type is not None:
            self.abandon()
            return False
        try:
            self.commit(self.status)
        except BaseException:
            self.abandon()
            raise
        return False

    def on_root(self, fn, what: str):
        """:func:`femion.results.on_root` on this writer's communicator."""
        return on_root(self.comm, fn, what)

    # -- files written by rank 0
    def write_text(self, name: str, text: str) -> None:
        def write():
            (self.path / name).write_text(text)

        self.on_root(write, f"cannot write {name}")

    def write_json(self, name: str, data: dict) -> None:
        self.write_text(name, json.dumps(data, indent=2, sort_keys=False) + "\n")

    def write_sheets(self, sheets: list[tuple[str, SheetCurrent]], external_field) -> None:
        def write():
            arrays = {"names": np.array([n for n, _ in sheets]), "external_field": np.asarray(external_field, float)}
            for i, (_, s) in enumerate(sheets):
                arrays[f"vertices_{i}"] = s.vertices
                arrays[f"sheet_current_{i}"] = s.sheet_current
                arrays[f"z_{i}"] = np.array(s.z)
            np.savez_compressed(self.path / "sheets.npz", **arrays)

        self.on_root(write, "cannot write sheets.npz")

    # -- fields written collectively
    def write_function(self, u: dolfinx.fem.Function, name: str, formats=("vtx", "vtkhdf"), time: float = 0.0) -> None:
        """Write a P1 (point data) or DG0 (cell data) function under ``fields/<name>``."""
        collective(self.comm, lambda: self._write_function(u, name, formats, time), self.path, f"fields/{name}")

    def _write_function(self, u, name: str, formats, time: float) -> None:
        if "vtx" in formats:
            with dolfinx.io.VTXWriter(self.comm, self.path / "fields" / f"{name}.bp", [u], engine="BP4") as vtx:
                vtx.write(time)
        if "vtkhdf" in formats:
            msh = u.function_space.mesh
            fname = self.path / "fields" / f"{name}.vtkhdf"
            dolfinx.io.vtkhdf.write_mesh(fname, msh)
            bs = u.function_space.dofmap.index_map_bs
            degree = u.function_space.ufl_element().embedded_superdegree
            values = u.x.array.reshape(-1, bs)
            if degree == 0:
                ncell = msh.topology.index_map(msh.topology.dim).size_local
                cells = np.arange(ncell, dtype=np.int32)
                data = values[u.function_space.dofmap.list[cells, 0]]
                dolfinx.io.vtkhdf.write_cell_data(fname, msh, _pad3(data).ravel(), time)
            else:
                data = _at_geometry_nodes(u)
                dolfinx.io.vtkhdf.write_point_data(fname, msh, _pad3(data).ravel() if bs > 1 else data.ravel(), time)

    def commit(self, status: str = "completed") -> Path:
        """Move the finished directory into place and return where it went.

        ``status`` "completed" replaces an earlier femion result at ``out``; any other status
        ("stopped", "interrupted") takes ``out`` only if nothing is there, else goes beside it.
        """
        self.comm.barrier()

        def move():
            from femion import __version__

            name_field_arrays(self.path)
            write_manifest(self.path, status, __version__)
            target = self.final
            if status == "completed":
                if _occupied(self.final):
                    check_replaceable(self.final)
                    old = self.final.with_name(f"{self.final.name}.replaced-{os.getpid()}")
                    self.final.rename(old)
                    self.path.rename(self.final)
                    shutil.rmtree(old)
                else:
                    _take(self.path, self.final)
            else:
                if _occupied(self.final):
                    target = _beside(self.final, status)
                _take(self.path, target)
            self._release()
            return target

        try:
            self.path = Path(self.on_root(move, f"cannot move the results into {self.final}"))
        finally:
            self._release()
        return self.path

    def abandon(self) -> None:
        """Remove the partial directory and free ``out`` (rank 0; never raises)."""
        if self.comm.rank == 0:
            shutil.rmtree(self.path, ignore_errors=True)
        self._release()

    def _release(self) -> None:
        if self._lock is not None:
            self._lock.release()
            self._lock = None


def collective(comm, fn, where: Path, what: str, grace: float = 30.0):
    """Call ``fn`` on every rank (a collective write); if it failed on any rank, raise OutputError
    on all of them (a disk that fills up fails HDF5/ADIOS2 writes with a RuntimeError).

    A rank that failed waits at most ``grace`` seconds for the others: one of them may be stuck
    inside the same collective write for ever, and then the failed rank removes the partial
    directory ``where`` and ends the job (MPI_Abort) after one line.
    """
    error = None
    try:
        value = fn()
    except (RuntimeError, OSError) as exc:
        error, value = f"{exc}".strip().splitlines()[0] if f"{exc}".strip() else type(exc).__name__, None
    if comm.size > 1:
        arrived = comm.Ibarrier()
        if error is None:
            arrived.Wait()
        else:
            deadline = time.monotonic() + grace
            while not arrived.Test():
                if time.monotonic() > deadline:
                    print(f"femion: error: {_write_error(what, where, error)} (rank {comm.rank}; the other "
                          f"ranks are stuck in the write: ending all {comm.size})", file=sys.stderr, flush=True)
                    if ".partial-" in where.name:  # the whole job ends: leave no partial result and no lock
                        shutil.rmtree(where, ignore_errors=True)
                        where.with_name(where.name.split(".partial-")[0] + ".lock").unlink(missing_ok=True)
                    time.sleep(1.0)  # let mpiexec forward the line before MPI_Abort ends the job
                    comm.Abort(2)
                time.sleep(0.05)
    errors = [e for e in comm.allgather(error) if e is not None]
    if errors:
        raise OutputError(_write_error(what, where, errors[0]))
    return value


def _write_error(what: str, where: Path, error: str) -> str:
    try:
        free = f"; {shutil.disk_usage(where).free / 1024:.0f} KiB free there"
    except OSError:
        free = ""
    return f"cannot write {what} in {where}: {error}{free}"


class RunLock:
    """An advisory lock on ``<out>.lock`` (POSIX ``lockf``: freed by the kernel if the holder dies,
    and honoured across NFS clients), so that two runs cannot write one results directory."""

    def __init__(self, path: Path, fh):
        self.path, self.fh = path, fh

    @classmethod
    def acquire(cls, out: Path) -> RunLock:
        import fcntl
        import socket

        path = out.with_name(f"{out.name}.lock")
        for _ in range(10):
            fh = open(path, "a+")  # noqa: SIM115 (held open, and locked, for the whole run)
            try:
                fcntl.lockf(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                fh.seek(0)
                holder = fh.read().strip() or "unknown"
                fh.close()
                raise OutputError(f"{out} is being written by another femion run ({holder}); "
                                  f"wait for it or choose another --out") from None
            # the previous holder may have removed the file between our open and lock: retry then
            try:
                same = os.fstat(fh.fileno()).st_ino == os.stat(path).st_ino
            except FileNotFoundError:
                same = False
            if same:
                fh.seek(0)
                fh.truncate()
                fh.write(f"pid {os.getpid()} on {socket.gethostname()} since {time.strftime('%Y-%m-%d %H:%M:%S')}")
                fh.flush()
                return cls(path, fh)
            fh.close()
        raise OutputError(f"cannot lock {path}: it keeps being replaced")

    def release(self) -> None:
        import fcntl

        try:
            self.path.unlink(missing_ok=True)
            fcntl.lockf(self.fh, fcntl.LOCK_UN)
        finally:
            self.fh.close()


def write_manifest(path: Path, status: str, version: str) -> None:
    """Mark ``path`` as a femion result: its status and every entry femion wrote in it."""
    entries = sorted(str(p.relative_to(path)) for p in path.rglob("*"))
    manifest = {"femion_result": 1, "status": status, "femion_version": version,
                "written": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "entries": [*entries, MANIFEST]}
    (path / MANIFEST).write_text(json.dumps(manifest, indent=1) + "\n")


def read_manifest(path: Path) -> dict | None:
    """The manifest of a results directory, or None if it has none (or an unreadable one)."""
    try:
        manifest = json.loads((Path(path) / MANIFEST).read_text())
    except (OSError, ValueError):
        return None
    return manifest if isinstance(manifest, dict) and manifest.get("femion_result") == 1 else None


def check_replaceable(out: Path) -> None:
    """Raise OutputError unless ``out`` is absent, an empty directory, or a femion result holding
    only what its manifest lists (so that replacing it deletes nothing femion did not write)."""
    if not out.exists() and not out.is_symlink():
        return
    if not out.is_dir() or out.is_symlink():
        raise OutputError(f"{out} exists and is not a directory; choose another --out")
    if not any(out.iterdir()):
        return
    manifest = read_manifest(out)
    if manifest is None:
        raise OutputError(f"{out} exists and is not a femion result (no {MANIFEST}); refusing to replace it: "
                          f"choose another --out or remove it yourself")
    listed = set(manifest.get("entries", []))
    foreign = sorted(str(p.relative_to(out)) for p in out.rglob("*") if str(p.relative_to(out)) not in listed)
    if foreign:
        raise OutputError(f"{out} holds {len(foreign)} file(s) femion did not write (first: {foreign[0]}); "
                          f"refusing to replace it: move them or choose another --out")


def _occupied(path: Path) -> bool:
    return path.exists() and (not path.is_dir() or any(path.iterdir()))


def _take(src: Path, dst: Path) -> None:
    """Rename ``src`` to ``dst``, an absent path or an empty directory."""
    if dst.is_dir():
        dst.rmdir()
    src.rename(dst)


def _beside(out: Path, status: str) -> Path:
    """A new name next to ``out`` for an incomplete result: ``<out>.<status>-<time>[-n]``."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    target = out.with_name(f"{out.name}.{status}-{stamp}")
    n = 1
    while target.exists():
        n += 1
        target = out.with_name(f"{out.name}.{status}-{stamp}-{n}")
    return target


#: the layout of a results directory this femion writes (summary.json ``format_version``):
#: 1 (no entry) every .vtkhdf array named "u" and a 2D section's fields in the x–y frame with y
#: holding the physical z; 2 the arrays named after their field and a section in the x–z frame
FORMAT_VERSION = 2


def name_field_arrays(path: Path) -> None:
    """Make the field files of results directory ``path`` open anywhere as what they are (format 2):
    the data array of each ``fields/<name>.vtkhdf`` (DOLFINx writes it as "u") renamed ``<name>``.
    Rank 0, once every step is written (DOLFINx appends each step to "u")."""
    import h5py

    for file in sorted((path / "fields").glob("*.vtkhdf")):
        name = file.stem
        with h5py.File(file, "r+") as h5:
            root = h5["VTKHDF"]
            for kind in ("PointData", "CellData"):
                if kind in root and "u" in root[kind]:
                    root[kind].move("u", name)
                    offsets = root.get(f"Steps/{kind}Offsets")
                    if offsets is not None and "u" in offsets:
                        offsets.move("u", name)


@contextlib.contextmanager
def plate_frame(msh, section_y: float | None):
    """Within the block the geometry of a 2D x–z section mesh ``msh`` is in the plate's frame,
    (x, section_y, z), instead of the (x, z, 0) it is solved in: what the writers put in the files,
    so a section lands in its place beside the plan fields. Restored on leaving (the solver uses
    it); nothing changes when ``section_y`` is None."""
    if section_y is None:
        yield
        return
    x = msh.geometry.x
    solved = x.copy()
    x[:, 2] = solved[:, 1]
    x[:, 1] = section_y
    try:
        yield
    finally:
        x[:] = solved


class FieldSeries:
    """Fields on one mesh written at several times: ``fields/<group>.bp`` (VTX, all fields, for
    ParaView) and ``fields/<name>.vtkhdf`` per field (time series, for pyvista/probe). A 2D x–z
    section's (``section_y``, m) are written in the plate's frame (:func:`plate_frame`)."""

    def __init__(self, writer: ResultWriter, group: str, functions: list, formats=("vtx", "vtkhdf"),
                 section_y: float | None = None):
        self.functions = functions
        self.formats = formats
        self.section_y = section_y
        self.comm = writer.comm
        self.where = writer.path
        self.vtx = None
        self.files: dict = {}
        collective(self.comm, lambda: self._open(writer, group, functions, formats), writer.path, f"fields/{group}")

    def _open(self, writer, group, functions, formats) -> None:
        with plate_frame(functions[0].function_space.mesh, self.section_y):
            self._open_files(writer, group, functions, formats)

    def _open_files(self, writer, group, functions, formats) -> None:
        if "vtx" in formats:
            self.vtx = dolfinx.io.VTXWriter(self.comm, writer.path / "fields" / f"{group}.bp", functions, engine="BP4")
        self.files = {}
        if "vtkhdf" in formats:
            for u in functions:
                fname = writer.path / "fields" / f"{u.name}.vtkhdf"
                dolfinx.io.vtkhdf.write_mesh(fname, u.function_space.mesh)
                self.files[u.name] = fname

    def write(self, t: float) -> None:
        collective(self.comm, lambda: self._write(t), self.where, f"the fields at t = {t:g} s")

    def _write(self, t: float) -> None:
        if self.vtx is not None:
            with plate_frame(self.functions[0].function_space.mesh, self.section_y):
                self.vtx.write(t)
        for u in self.functions:
            if u.name in self.files:
                data = _at_geometry_nodes(u)
                dolfinx.io.vtkhdf.write_point_data(self.files[u.name], u.function_space.mesh, data.ravel(), t)

    def close(self) -> None:
        if self.vtx is not None:
            self.vtx.close()
            self.vtx = None


class CsvSeries:
    """A CSV time series written by rank 0, one row per call, flushed as it goes."""

    def __init__(self, path: Path, columns: list[str], comm):
        self.columns = columns
        self.rank0 = comm.rank == 0
        self.rows = 0  # rows written so far
        if self.rank0:
            self.fh = open(path, "w")  # noqa: SIM115 (a row per step until close())
            self.fh.write(",".join(columns) + "\n")

    def row(self, values: dict) -> None:
        self.rows += 1
        if self.rank0:
            self.fh.write(",".join(f"{values[c]:.12g}" for c in self.columns) + "\n")
            self.fh.flush()

    def copy_rows(self, source: Path, count: int) -> None:
        """Continue from the first ``count`` rows of an earlier run's CSV ``source`` (a resumed run)."""
        self.rows += count
        if self.rank0:
            lines = source.read_text().splitlines()
            if lines[0].split(",") != self.columns or len(lines) - 1 < count:
                raise OutputError(f"{source} does not hold the {count} rows the checkpoint expects")
            self.fh.write("\n".join(lines[1:count + 1]) + ("\n" if count else ""))
            self.fh.flush()

    def close(self) -> None:
        if self.rank0:
            self.fh.close()


def write_tagged_mesh(path: Path, msh, cell_tags) -> Path:
    """Write ``msh`` to VTKHDF with its cell tags as cell data (for pictures of meshes)."""
    n = msh.topology.index_map(msh.topology.dim).size_local
    tags = np.zeros(n)
    keep = cell_tags.indices < n
    tags[cell_tags.indices[keep]] = cell_tags.values[keep]
    dolfinx.io.vtkhdf.write_mesh(path, msh)
    dolfinx.io.vtkhdf.write_cell_data(path, msh, tags, 0.0)
    return Path(path)


def _pad3(values: np.ndarray) -> np.ndarray:
    """VTK vectors have 3 components: pad 2D (x, y) vectors with z = 0."""
    if values.ndim == 2 and values.shape[1] == 2:
        return np.c_[values, np.zeros(len(values))]
    return values


def _at_geometry_nodes(u) -> np.ndarray:
    """Values of a P1 function at the mesh's owned geometry nodes (first-order meshes)."""
    V = u.function_space
    msh = V.mesh
    bs = V.dofmap.index_map_bs
    nnode = msh.geometry.index_map().size_local + msh.geometry.index_map().num_ghosts
    out = np.zeros((nnode, bs))
    xdofs = geometry_dofmap(msh)
    udofs = V.dofmap.list
    out[xdofs.ravel()] = u.x.array.reshape(-1, bs)[udofs.ravel()]
    return out[: msh.geometry.index_map().size_local]
