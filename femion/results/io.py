"""The results directory: a public contract that later stages add to, never rename.

Layout of ``<out>/``::

    case.yaml        the resolved case, every quantity in SI with its unit
    summary.json     SI scalars (resistance_ohm, current_A, voltage_V, joule_power_W,
                     max_B_interface_T, layer_z_m, plate_m, ...), versions, MPI size, wall time
    sheets.npz       the sheet currents (panels, K, z) that B is computed from
    fields/*.bp      VTX (ADIOS2) files for ParaView, one per field
    fields/*.vtkhdf  the same fields for pyvista / dolfinx (one field per file)
    figures/*.png    off-screen renderings

A run writes into ``<out>.partial-<pid>`` and renames it to ``<out>`` only once everything is
written, so a failed run leaves no half-written results; ``.femion-result.json``, written last,
marks the directory as femion's (see :class:`ResultWriter` for what may replace what).
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import time
from pathlib import Path

import numpy as np

from femion._dolfinx import MPI, dolfinx, geometry_dofmap
from femion.magnetic.biot_savart import SheetCurrent, magnetic_flux_density


class OutputError(RuntimeError):
    """The output directory cannot be written or read."""


# ------------------------------------------------------------------ writing


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
    """

    def __init__(self, out: str | Path, comm: MPI.Comm):
        self.final = Path(out).resolve()
        self.comm = comm
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

    def on_root(self, fn, what: str):
        """Run ``fn`` on rank 0 and return its value on every rank; a failure raises OutputError on
        every rank (instead of leaving the other ranks waiting at the next collective call)."""
        value, error = None, None
        if self.comm.rank == 0:
            try:
                value = fn()
            except OutputError as exc:
                error = str(exc)
            except OSError as exc:
                error = f"{what}: {exc.strerror or exc}" + (f" ({exc.filename})" if exc.filename else "")
        value, error = self.comm.bcast((value, error), root=0)
        if error is not None:
            raise OutputError(error)
        return value

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
    def write_function(self, u: "dolfinx.fem.Function", name: str, formats=("vtx", "vtkhdf"), time: float = 0.0) -> None:
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
    def acquire(cls, out: Path) -> "RunLock":
        import fcntl
        import socket

        path = out.with_name(f"{out.name}.lock")
        for _ in range(10):
            fh = open(path, "a+")
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
                "written": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "entries": entries + [MANIFEST]}
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


class FieldSeries:
    """Fields on one mesh written at several times: ``fields/<group>.bp`` (VTX, all fields, for
    ParaView) and ``fields/<name>.vtkhdf`` per field (time series, for pyvista/probe)."""

    def __init__(self, writer: "ResultWriter", group: str, functions: list, formats=("vtx", "vtkhdf")):
        self.functions = functions
        self.formats = formats
        self.comm = writer.comm
        self.where = writer.path
        self.vtx = None
        self.files: dict = {}
        collective(self.comm, lambda: self._open(writer, group, functions, formats), writer.path, f"fields/{group}")

    def _open(self, writer, group, functions, formats) -> None:
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
        if self.rank0:
            self.fh = open(path, "w")
            self.fh.write(",".join(columns) + "\n")

    def row(self, values: dict) -> None:
        if self.rank0:
            self.fh.write(",".join(f"{values[c]:.12g}" for c in self.columns) + "\n")
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


# ------------------------------------------------------------------ reading


def _number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _names(v) -> bool:
    return isinstance(v, list) and all(isinstance(n, str) for n in v)


def _interval(v) -> bool:
    return isinstance(v, list) and len(v) == 2 and all(_number(x) for x in v)


def _transport_block(t) -> bool:
    fields = t.get("fields") if isinstance(t, dict) else None
    return (isinstance(fields, dict) and all(_names(fields.get(k)) for k in ("oxide", "electrolyte"))
            and t.get("dimension") in (2, 3) and _number(t.get("c_max_mol_m3"))
            and all(isinstance(t.get(k), str) for k in ("oxide_layer", "electrolyte_layer", "exchanging")))


# What summary.json always holds, with what the readers (probe, report, plot) take it to be.
# A run's summary is written before the figures and the report are made, which read it:
# wall_time_s and stage_time_s are added only at the very end, so they are not required.
_RUN_SUMMARY = {
    "case": (lambda v: isinstance(v, str), "a name"),
    "resistance_ohm": (_number, "a number"),
    "current_A": (_number, "a number"),
    "voltage_V": (_number, "a number"),
    "joule_power_W": (_number, "a number"),
    "max_B_interface_T": (lambda v: v is None or _number(v), "a number or null"),
    "interface": (lambda v: isinstance(v, dict) and isinstance(v.get("name"), str) and _number(v.get("z_m")),
                  "{name, z_m}"),
    "layer_z_m": (lambda v: isinstance(v, dict) and bool(v) and all(_interval(z) for z in v.values()),
                  "{layer: [z_bottom, z_top]}"),
    "plate_m": (lambda v: isinstance(v, list) and len(v) == 2 and all(_interval(r) for r in v),
                "[[x_min, x_max], [y_min, y_max]]"),
    "conductors": (_names, "a list of layer names"),
    "drives": (lambda v: isinstance(v, list) and bool(v)
               and all(isinstance(d, dict) and isinstance(d.get("conductor"), str) and _number(d.get("sheet_z_m"))
                       for d in v), "a list of drives, each with conductor and sheet_z_m"),
    "magnetic_points": (lambda v: isinstance(v, list), "a list"),
    "versions": (lambda v: isinstance(v, dict), "a mapping"),
    "mpi_size": (_number, "a number"),
}
# ... of a transport run (it has "transport")
_TRANSPORT_SUMMARY = {
    "times_s": (lambda v: isinstance(v, list) and bool(v) and all(_number(t) for t in v), "a list of times"),
    "transport": (_transport_block,
                  "{dimension: 2|3, fields: {oxide: [...], electrolyte: [...]}, c_max_mol_m3, oxide_layer, "
                  "electrolyte_layer, exchanging}"),
}
# ... of a parent of variants (it has "variants", see simulation.run_variants)
_VARIANTS_SUMMARY = {
    "case": _RUN_SUMMARY["case"],
    "variants": (lambda v: _names(v) and bool(v), "a list of variant names"),
}


def read_summary(path: Path) -> dict:
    """The summary.json of result directory ``path``: a JSON object with the keys every run (or
    parent of variants) writes, of the shape the readers use; OutputError (one line) if not."""
    if not path.exists():
        raise OutputError(f"{path}: no such result directory")
    if not path.is_dir():
        raise OutputError(f"{path}: not a directory (a result is a directory holding summary.json)")
    file = path / "summary.json"
    if not file.is_file():
        raise OutputError(f"{path} is not a femion result directory (no summary.json)")
    try:
        summary = json.loads(file.read_text())
    except (OSError, ValueError) as exc:  # ValueError: bad JSON or bad UTF-8, e.g. a truncated file
        raise OutputError(f"{file}: unreadable, not complete JSON ({_one_line(exc)})") from None
    if not isinstance(summary, dict):
        raise OutputError(f"{file}: not a JSON object but {type(summary).__name__}")
    expected = dict(_VARIANTS_SUMMARY) if "variants" in summary else dict(_RUN_SUMMARY)
    if "transport" in summary:
        expected.update(_TRANSPORT_SUMMARY)
    missing = [k for k in expected if k not in summary]
    if missing:
        raise OutputError(f"{file}: incomplete, no {', '.join(missing)}")
    for key, (ok, what) in expected.items():
        if not ok(summary[key]):
            raise OutputError(f"{file}: {key} is not {what}")
    if "variants" not in summary:
        unknown = [c for c in summary["conductors"] if c not in summary["layer_z_m"]]
        if unknown:
            raise OutputError(f"{file}: conductors {', '.join(unknown)} are not in layer_z_m")
    return summary


def read_vtkhdf(file: Path, step: int | None = None):
    """The pyvista grid of a field file ``fields/<name>.vtkhdf`` (at time step ``step``) with its
    values ``u``; OutputError (one line) if the file is missing, unreadable or holds no such data."""
    import pyvista as pv
    import vtk

    if not file.is_file():
        raise OutputError(f"{file}: missing")
    reader = vtk.vtkHDFReader()
    display = vtk.vtkObject.GetGlobalWarningDisplay()
    vtk.vtkObject.GlobalWarningDisplayOff()  # a damaged file gets one line below, not VTK's error dump
    try:
        if not reader.CanReadFile(str(file)):  # also a truncated file: HDF5 checks the stored size
            raise OutputError(f"{file}: unreadable, not a complete VTKHDF file (truncated?)")
        reader.SetFileName(str(file))
        reader.UpdateInformation()
        if step is not None:
            n = reader.GetNumberOfSteps()
            if step >= n:
                raise OutputError(f"{file}: {n} time step(s), but summary.json lists output {step + 1}")
            reader.SetStep(step)
        reader.Update()
        grid = pv.wrap(reader.GetOutput())
    finally:
        vtk.vtkObject.SetGlobalWarningDisplay(display)
    if grid is None or grid.n_points == 0 or "u" not in grid.array_names:
        raise OutputError(f"{file}: unreadable, no points or no values u")
    return grid


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


class Result:
    """A finished run directory, read back for analysis (``femion.open_result``).

    Opening checks summary.json (:func:`read_summary`) and, for a run, that sheets.npz is there;
    the field files are checked when they are read (:func:`read_vtkhdf`). Every problem is an
    OutputError naming the file. A parent of variants (``variants`` in summary.json, each run in
    ``<path>/<variant>``) opens too, but holds no fields of its own.
    """

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.summary: dict = read_summary(self.path)
        self.variants: list[str] = list(self.summary.get("variants", []))
        if not self.variants and not (self.path / "sheets.npz").is_file():
            raise OutputError(f"{self.path / 'sheets.npz'}: missing")

    def _run_only(self) -> None:
        if self.variants:
            raise OutputError(f"{self.path} holds the variants {', '.join(self.variants)}: open one of them, "
                              f"e.g. {self.path / self.variants[0]}")

    @property
    def plate_bounds(self) -> tuple[tuple[float, float], tuple[float, float]]:
        """((x_min, x_max), (y_min, y_max)) of the plate, m."""
        (x0, x1), (y0, y1) = self.summary["plate_m"]
        return (x0, x1), (y0, y1)

    @property
    def layer_z(self) -> dict[str, tuple[float, float]]:
        return {k: tuple(v) for k, v in self.summary["layer_z_m"].items()}

    def sheets(self) -> tuple[list[SheetCurrent], np.ndarray]:
        """The stored sheet currents and the external field; OutputError if sheets.npz is unreadable."""
        import zipfile

        self._run_only()
        file = self.path / "sheets.npz"
        try:
            with np.load(file) as data:
                n = len(data["names"])
                sheets = [
                    SheetCurrent(vertices=data[f"vertices_{i}"], sheet_current=data[f"sheet_current_{i}"],
                                 z=float(data[f"z_{i}"]))
                    for i in range(n)
                ]
                return sheets, data["external_field"]
        except FileNotFoundError:
            raise OutputError(f"{file}: missing") from None
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as exc:
            raise OutputError(f"{file}: unreadable ({type(exc).__name__}: {_one_line(exc)})") from None

    def probe(self, name: str, points, time: float | None = None) -> np.ndarray:
        """SI values of field ``name`` at ``points`` ((N, 3) array, m), at output ``time`` (s).

        ``B`` (T, (N, 3)) is evaluated from the stored sheet currents by the same analytic
        Biot–Savart integration as the run, anywhere off the sheets (steady: no time).
        ``phi_s`` (V) without a time is the conductor stage's sheet potential at or below each
        point; with a time (transport runs) it is the oxide's electron potential then.
        Transport fields at an output time (``times_s`` in the summary): ``theta`` (oxide filling
        fraction), ``c_oxide`` (mol/m³), ``c_<ion>`` (mol/m³), ``phi_l`` (V), ``phi_s`` (V).
        In a 2D x–z section run, y is ignored (the section stands for every y).
        """
        self._run_only()
        pts = np.atleast_2d(np.asarray(points, dtype=float))
        if pts.shape[1] != 3:
            raise ValueError(f"points must be an (N, 3) array in metres, got shape {pts.shape}")
        if name == "B":
            if time is not None:
                raise ValueError("B is steady (the drive is constant); call probe('B', points) without time")
            sheets, external = self.sheets()
            return magnetic_flux_density(sheets, pts, external_field=external)
        if name == "phi_s" and time is None:
            return self._probe_phi_s(pts)
        if name in self.transport_fields():
            return self._probe_transport(name, pts, time)
        raise KeyError(f"unknown field {name!r}; available: {', '.join(self.fields())}")

    def transport_fields(self) -> list[str]:
        tr = self.summary.get("transport")
        return [] if tr is None else tr["fields"]["oxide"] + tr["fields"]["electrolyte"]

    def fields(self) -> list[str]:
        return ["B", "phi_s"] + [f for f in self.transport_fields() if f != "phi_s"]

    @property
    def times(self) -> list[float]:
        """Output times of the transport fields (s)."""
        return list(self.summary.get("times_s", []))

    def _probe_transport(self, name: str, pts: np.ndarray, time: float | None) -> np.ndarray:
        import pyvista as pv

        if time is None:
            raise ValueError(f"{name} changes in time: give time= one of the output times {self.times} s")
        grid = self._read_step(name, time)
        section = self.summary["transport"]["dimension"] == 2
        frame = np.c_[pts[:, 0], pts[:, 2], np.zeros(len(pts))] if section else pts
        sampled = pv.PolyData(frame).sample(grid, snap_to_closest_point=False)
        valid = sampled["vtkValidPointMask"].astype(bool)
        if not valid.all():
            bad = np.flatnonzero(~valid)
            raise ValueError(f"{bad.size} point(s) lie outside the region of {name} (first: {pts[bad[0]].tolist()} m)")
        return np.asarray(sampled["u"], dtype=float)

    def film_filling(self, time: float) -> tuple[np.ndarray, np.ndarray]:
        """Mean oxide filling over the film thickness at each plan node, at output ``time`` (s).

        Returns (xy (N, 2) m, θ̄ (N,)): the nodes of the oxide mesh grouped by plan position and
        θ averaged over their z levels (the trapezoid rule for the film's uniform layers). A 2D
        x–z section gives its nodes at y = section_y, sorted by x.
        """
        grid = self._read_step("theta", time)
        pts = np.asarray(grid.points, dtype=float)
        values = np.asarray(grid.point_data["u"], dtype=float)
        tr = self.summary["transport"]
        if tr["dimension"] == 2:
            xy = np.c_[pts[:, 0], np.full(len(pts), tr["section_y_m"])]
        else:
            xy = pts[:, :2]
        key = np.round(xy / 1e-9).astype(np.int64)
        uniq, inverse = np.unique(key, axis=0, return_inverse=True)
        inverse = inverse.ravel()
        sums = np.bincount(inverse, weights=values)
        counts = np.bincount(inverse)
        out_xy = uniq * 1e-9
        order = np.lexsort((out_xy[:, 1], out_xy[:, 0]))
        return out_xy[order], (sums / counts)[order]

    def _read_step(self, name: str, time: float):
        """The pyvista grid of transport field ``name`` at output ``time``."""
        self._run_only()
        times = self.times
        if not times:
            raise ValueError(f"{self.path} is not a transport run: no output times")
        k = int(np.argmin(np.abs(np.asarray(times) - time)))
        if abs(times[k] - time) > 1e-9 * max(abs(time), 1.0):
            raise ValueError(f"no output at t = {time:g} s; output times: {times} s")
        return read_vtkhdf(self.path / "fields" / f"{name}.vtkhdf", step=k)

    def _probe_phi_s(self, pts: np.ndarray) -> np.ndarray:
        import pyvista as pv

        planes = {c: self.summary["layer_z_m"][c] for c in self.summary["conductors"]}
        if not planes:
            raise ValueError("this result has no driven conductor, so no phi_s")

        def conductor_for(z: float) -> str:
            below = [c for c, (z0, _) in planes.items() if z0 - 1e-12 <= z]
            return max(below, key=lambda c: planes[c][0]) if below else min(planes, key=lambda c: planes[c][0])

        owner = np.array([conductor_for(z) for z in pts[:, 2]])
        out = np.empty(len(pts))
        for cond in planes:
            idx = np.flatnonzero(owner == cond)
            if idx.size == 0:
                continue
            grid = read_vtkhdf(self.path / "fields" / f"phi_s_{cond}.vtkhdf")
            sampled = pv.PolyData(np.c_[pts[idx, :2], np.zeros(idx.size)]).sample(grid)
            valid = sampled["vtkValidPointMask"].astype(bool)
            if not valid.all():
                bad = idx[~valid]
                raise ValueError(
                    f"{bad.size} point(s) lie outside conductor {cond} in plan (first: {pts[bad[0]].tolist()} m)"
                )
            out[idx] = sampled["u"]
        return out


def open_result(path: str | Path) -> Result:
    """Open a finished run directory for probing (see :class:`Result`)."""
    return Result(path)
