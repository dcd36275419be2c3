"""Reading a results directory back (:func:`open_result`, :class:`Result`), every file checked:
a damaged or incomplete one is an :class:`~femion.results.OutputError` naming it. The layout is
described in :mod:`femion.results.writer`.
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

import numpy as np

from femion.magnetic.biot_savart import DEFAULT_TOLERANCE, SheetCurrent, magnetic_flux_density
from femion.results import OutputError


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
# ... of a parent of variants (it has "variants", see femion.runner.variants)
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
    # format 2 names the array after its field (the file's stem), format 1 "u": read as "u"
    name = file.stem if file.stem in (grid.array_names if grid is not None else []) else "u"
    if grid is None or grid.n_points == 0 or name not in grid.array_names:
        raise OutputError(f"{file}: unreadable, no points or no values {file.stem}")
    if name != "u":
        grid.rename_array(name, "u")
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
        #: a parent of variants: their names, in the order run (``variants`` opens them)
        self.variant_names: list[str] = list(self.summary.get("variants", []))
        if not self.variant_names and not (self.path / "sheets.npz").is_file():
            raise OutputError(f"{self.path / 'sheets.npz'}: missing")
        self._variants: dict[str, Result] | None = None
        # The figures, optics and report read the same output steps again and again: keep the last
        # few grids (a 3D step can be large) and every film filling (plan nodes only, small).
        self._grid = lru_cache(maxsize=4)(self._read_grid)
        self._film: dict[int, tuple[np.ndarray, np.ndarray]] = {}

    @property
    def variants(self) -> dict[str, Result]:
        """A parent of variants: each variant's result by name ({} for a single run)."""
        if self._variants is None:
            self._variants = {n: Result(self.path / n) for n in self.variant_names}
        return self._variants

    def _run_only(self) -> None:
        if self.variant_names:
            raise OutputError(f"{self.path} holds the variants {', '.join(self.variant_names)}: open one of "
                              f"them, e.g. result.variants[{self.variant_names[0]!r}]")

    def __repr__(self) -> str:
        if self.variant_names:
            return f"<femion Result {self.path}: variants {', '.join(self.variant_names)}>"
        return f"<femion Result {self.path}: fields {', '.join(self.fields())}; outputs at {self.times} s>"

    @property
    def format_version(self) -> int:
        """The results layout (femion.results.writer.FORMAT_VERSION; 1 for results without it)."""
        return int(self.summary.get("format_version", 1))

    def field(self, name: str, time: float | None = None):
        """The pyvista grid of field ``name`` (:meth:`fields`) at output ``time`` (s; None for the
        fields that do not change in time: B, phi_s_<conductor>, B_interface), its values in the
        array ``name``, points in the plate's frame (m; a 2D section at y = section_y)."""
        self._run_only()
        if name in self.transport_fields():
            if time is None:
                raise ValueError(f"{name} changes in time: give time= one of the output times {self.times} s")
            grid = self._read_step(name, time).copy()
        elif time is not None:
            raise ValueError(f"{name} does not change in time: call field({name!r}) without time")
        else:
            grid = self._grid(name, None).copy()
        grid.rename_array("u", name)
        if self._section_in_xy(name, grid):
            pts = np.asarray(grid.points)
            grid.points = np.c_[pts[:, 0], np.full(len(pts), self.summary["transport"]["section_y_m"]), pts[:, 1]]
        return grid

    def series(self, name: str) -> list[tuple[float, object]]:
        """[(t, :meth:`field` at t)] of a transport field over every output time."""
        return [(t, self.field(name, t)) for t in self.times]

    def _section_in_xy(self, name: str, grid) -> bool:
        """Whether ``grid`` is a 2D section field in format 1's x–y frame (y holding z)."""
        tr = self.summary.get("transport") or {}
        if tr.get("dimension") != 2 or name not in self.transport_fields():
            return False
        return self.format_version < 2 or bool(np.allclose(np.asarray(grid.points)[:, 2], 0.0))

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

    def probe(self, name: str, points, time: float | None = None, outside: float | None = None) -> np.ndarray:
        """SI values of field ``name`` at ``points`` ((N, 3) array, m), at output ``time`` (s).

        A point outside the region of the field (an uncoated part, off the plate) raises ValueError,
        or, with ``outside`` given (e.g. ``np.nan``), gets that value: a whole line or grid in one call.

        ``B`` (T, (N, 3)) is evaluated from the stored sheet currents by the same analytic
        Biot–Savart integration as the run, anywhere off the sheets (steady: no time).
        ``phi_s`` (V) without a time is the conductor stage's sheet potential at or below each
        point; with a time (transport runs) it is the oxide's electron potential then.
        Transport fields at an output time (``times_s`` in the summary): ``theta`` (oxide filling
        fraction), ``c_oxide`` (mol/m³), ``c_<ion>`` (mol/m³), ``phi_l`` (V), ``phi_s`` (V).
        In a 2D x–z section run, y is ignored (the section stands for every y); in a shell run, z (each
        film is one sheet).
        """
        self._run_only()
        pts = np.atleast_2d(np.asarray(points, dtype=float))
        if pts.shape[1] != 3:
            raise ValueError(f"points must be an (N, 3) array in metres, got shape {pts.shape}")
        if name == "B":
            if time is not None:
                raise ValueError("B is steady (the drive is constant); call probe('B', points) without time")
            sheets, external = self.sheets()
            tolerance = self.summary.get("magnetic_tolerance", DEFAULT_TOLERANCE)
            return magnetic_flux_density(sheets, pts, external_field=external, tolerance=tolerance)
        if name == "phi_s" and time is None:
            return self._probe_phi_s(pts, outside)
        if name in self.transport_fields():
            return self._probe_transport(name, pts, time, outside)
        raise KeyError(f"unknown field {name!r}; available: {', '.join(self.fields())}")

    def transport_fields(self) -> list[str]:
        tr = self.summary.get("transport")
        return [] if tr is None else [f for group in tr["fields"].values() for f in group]

    def fields(self) -> list[str]:
        return ["B", "phi_s"] + [f for f in self.transport_fields() if f != "phi_s"]

    @property
    def times(self) -> list[float]:
        """Output times of the transport fields (s)."""
        return list(self.summary.get("times_s", []))

    def _probe_transport(self, name: str, pts: np.ndarray, time: float | None, outside: float | None) -> np.ndarray:
        if time is None:
            raise ValueError(f"{name} changes in time: give time= one of the output times {self.times} s")
        grid = self._read_step(name, time)
        tr = self.summary["transport"]
        if tr["dimension"] == 2 and self._section_in_xy(name, grid):  # the x–z section, drawn in x–y
            frame = np.c_[pts[:, 0], pts[:, 2], np.zeros(len(pts))]
        elif tr["dimension"] == 2:  # the x–z section in the plate's frame
            frame = np.c_[pts[:, 0], np.full(len(pts), tr["section_y_m"]), pts[:, 2]]
        elif tr.get("model") == "shell":  # the plan mesh: each film is one sheet, z is not resolved
            frame = np.c_[pts[:, 0], pts[:, 1], np.zeros(len(pts))]
        else:
            frame = pts
        return _sample(grid, frame, pts, outside, f"the region of {name}")

    def film_filling(self, time: float) -> tuple[np.ndarray, np.ndarray]:
        """Mean oxide filling over the film thickness at each plan node, at output ``time`` (s).

        Returns (xy (N, 2) m, θ̄ (N,)): the nodes of the oxide mesh grouped by plan position and
        θ averaged over their z levels (the trapezoid rule for the film's uniform layers). A 2D
        x–z section gives its nodes at y = section_y, sorted by x.
        """
        k = self._step(time)
        if k in self._film:
            return self._film[k]
        grid = self._grid("theta", k)
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
        film = out_xy[order], (sums / counts)[order]
        for a in film:
            a.flags.writeable = False  # shared by every later call
        self._film[k] = film
        return film

    def _step(self, time: float) -> int:
        """Index of output ``time`` (s) in the field files."""
        self._run_only()
        times = self.times
        if not times:
            raise ValueError(f"{self.path} is not a transport run: no output times")
        k = int(np.argmin(np.abs(np.asarray(times) - time)))
        if abs(times[k] - time) > 1e-9 * max(abs(time), 1.0):
            raise ValueError(f"no output at t = {time:g} s; output times: {times} s")
        return k

    def _read_step(self, name: str, time: float):
        """The pyvista grid of transport field ``name`` at output ``time`` (read once, then kept)."""
        return self._grid(name, self._step(time))

    def _read_grid(self, name: str, step: int | None):
        return read_vtkhdf(self.path / "fields" / f"{name}.vtkhdf", step=step)

    def _probe_phi_s(self, pts: np.ndarray, outside: float | None) -> np.ndarray:
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
            grid = self._grid(f"phi_s_{cond}", None)
            out[idx] = _sample(grid, np.c_[pts[idx, :2], np.zeros(idx.size)], pts[idx], outside,
                               f"conductor {cond} in plan")
        return out


def _sample(grid, frame: np.ndarray, pts: np.ndarray, outside: float | None, region: str) -> np.ndarray:
    """Values ``u`` of ``grid`` at the points ``frame`` (its coordinates of ``pts``, which name them in
    the error): ``outside`` where a point is outside the grid, or ValueError if that is None."""
    import pyvista as pv

    sampled = pv.PolyData(frame).sample(grid, snap_to_closest_point=False)
    values = np.array(sampled["u"], dtype=float)
    outer = ~sampled["vtkValidPointMask"].astype(bool)
    if outer.any():
        if outside is None:
            bad = np.flatnonzero(outer)
            raise ValueError(f"{bad.size} point(s) lie outside {region} (first: {pts[bad[0]].tolist()} m)")
        values[outer] = outside
    return values


def open_result(path: str | Path) -> Result:
    """Open a finished run directory for probing (see :class:`Result`)."""
    return Result(path)
