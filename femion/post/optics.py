"""Optics of a finished transport run: ``optics.csv``, monitor curves, film "photos", animation.

Reads a results directory (``summary.json``, ``case.yaml`` and the θ fields) and applies
:mod:`femion.laws.optics` at every output time: θ̄(x, y) → Q_A → ΔOD → T(x, y). A monitor's
transmittance is the node mean of T over its square (what a transmittance meter over that area
reads) and its ΔOD = log10(T_0/T_monitor). A 2D x–z section run stands for every y: its x-profile
is extruded over the plate width in the photos, and monitors must cross the section line.
"""

from __future__ import annotations

import csv
import re
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from femion.laws import materials, optics

MM = 1e3  # m → mm for display
MIN = 60.0  # s per minute


@dataclass
class _Film:
    """Everything the optics of one result needs, read once."""

    path: Path
    res: object  # femion.results.reader.Result
    case: object  # femion.config.schema.Case
    coloration_efficiency: float  # m²/C
    bleached_transmittance: float  # 1
    c_max: float  # mol/m³ of inserted ions
    valence: int  # z of the inserted ion: each brings z electrons (charge zF per mol)
    thickness: float  # m
    monitors: dict  # name → shapely geometry (m)
    section: bool  # 2D x–z section run
    molar_volume: float  # m³/mol of host formula units, M/ρ
    chemical_expansion: float  # β (1): Δh/h per inserted ion per formula unit
    _od_top: float | None = None  # cached colour_scale()

    @property
    def summary(self) -> dict:
        return self.res.summary

    def optical_density_map(self, t: float) -> tuple[np.ndarray, np.ndarray]:
        """(xy (N, 2) m, ΔOD (N,)) of the film at output time ``t`` (s): ΔOD = CE·Q_A."""
        xy, theta = self.res.film_filling(t)
        q = optics.inserted_charge_per_area(theta, self.valence * self.c_max, self.thickness)
        return xy, optics.optical_density(q, self.coloration_efficiency)

    def transmittance_map(self, t: float) -> tuple[np.ndarray, np.ndarray]:
        """(xy (N, 2) m, T (N,)) of the film at output time ``t`` (s): T = T₀·10^(−ΔOD)."""
        xy, od = self.optical_density_map(t)
        return xy, optics.transmittance(od, self.bleached_transmittance)

    def thickness_change_map(self, t: float) -> tuple[np.ndarray, np.ndarray]:
        """(xy (N, 2) m, Δh (N,) m) of the film at output time ``t`` (s): Δh = β·x·h
        (:func:`femion.laws.host.thickness_change`), against the as-deposited (empty) film."""
        from femion.laws.host import thickness_change

        xy, theta = self.res.film_filling(t)
        return xy, thickness_change(theta, thickness=self.thickness, c_max=self.c_max,
                                    molar_volume=self.molar_volume, chemical_expansion=self.chemical_expansion)

    def colour_scale(self) -> float:
        """Top of the photos' ΔOD colour scale (1): the largest ΔOD of the run, at least
        :data:`OD_FULL_SCALE_MIN`; one scale for every photo of a run, so they compare."""
        if self._od_top is None:
            top = max((float(self.optical_density_map(t)[1].max()) for t in self.res.times), default=0.0)
            self._od_top = film_colour_scale(top)
        return self._od_top


#: the photos' colour map: ColorBrewer "Blues" (matplotlib). Its CIELAB lightness falls
#: monotonically from 98 (white) to 21 in near-equal steps, so equal steps of ΔOD look like equal
#: steps of colour and the darkest film of a run is still told apart from a slightly lighter one.
FILM_COLOURMAP = "Blues"
#: ΔOD at the dark end of the scale for a pale run: a film that never passes ΔOD = 1 (T = T₀/10)
#: is drawn pale, as the eye sees it, not stretched to the darkest colour
OD_FULL_SCALE_MIN = 1.0


def film_colour_scale(delta_od_max: float) -> float:
    """Top of the ΔOD colour scale (1) for a run whose largest ΔOD is ``delta_od_max``: the larger
    of it and :data:`OD_FULL_SCALE_MIN`, so nothing saturates and a pale film stays pale."""
    return max(OD_FULL_SCALE_MIN, float(delta_od_max))


def film_colours(delta_od, od_top: float) -> np.ndarray:
    """RGB (N, 3) in [0, 1] of a film of optical density change ``delta_od`` (1) on a colour scale
    from ΔOD = 0 (white) to ``od_top`` (the map's darkest blue). A ΔOD below 0 (bleached under its
    reference) is drawn white; none lies above ``od_top`` when it comes from
    :func:`film_colour_scale` of the run."""
    import matplotlib

    cmap = matplotlib.colormaps[FILM_COLOURMAP]
    u = np.atleast_1d(np.asarray(delta_od, dtype=float)) / od_top
    return cmap(np.clip(u, 0.0, 1.0))[:, :3]


def _open(path: str | Path) -> _Film:
    import yaml

    from femion.config import validate_case
    from femion.geometry.plan import shape_geometry
    from femion.results import OutputError
    from femion.results.reader import open_result

    path = Path(path)
    res = open_result(path)
    s = res.summary
    if not s.get("transport"):
        raise ValueError(f"{path}: not a transport run (no 'transport' in summary.json), so no film optics")
    try:
        case = validate_case(yaml.safe_load((path / "case.yaml").read_text()))
    except (OSError, ValueError, yaml.YAMLError) as exc:  # ValueError: also CaseError (one line)
        msg = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise OutputError(f"{path / 'case.yaml'}: unreadable ({msg})") from None
    oxide = s["transport"]["oxide_layer"]
    settings = case.optics
    ce = settings.coloration_efficiency
    if ce is None:
        ce = materials.get(case.layer(oxide).material).value("coloration_efficiency")
    host = materials.get(case.layer(oxide).material)
    beta = settings.chemical_expansion
    if beta is None:
        beta = host.value("chemical_expansion")
    z0, z1 = s["layer_z_m"][oxide]
    monitors = {name: shape_geometry(shape, case.geometry.plate) for name, shape in settings.monitors.items()}
    return _Film(path, res, case, float(ce), float(settings.bleached_transmittance),
                 float(s["transport"]["c_max_mol_m3"]), int(s["transport"].get("exchanging_valence", 1)),
                 float(f"{z1 - z0:.12g}"), monitors,
                 s["transport"]["dimension"] == 2,
                 host.value("molar_mass") / host.value("density"), float(beta))


def write_optics(result_path: str | Path) -> dict:
    """Write ``<result>/optics.csv`` and return the optics entries for ``summary.json``.

    Columns: ``t_s``, then ``T_<m>`` and ``dOD_<m>`` for each monitor m, then ``T_mean`` and
    ``dOD_mean`` (node means over the whole film), one row per output time.
    """
    film = _open(result_path)
    times = film.res.times
    T0 = film.bleached_transmittance
    rows, per_monitor, T_min, dh_max = [], {name: [] for name in film.monitors}, np.inf, []
    for t in times:
        xy, T = film.transmittance_map(t)
        T_min = min(T_min, float(T.min()))
        dh_max.append(float(film.thickness_change_map(t)[1].max()))
        row = {"t_s": t}
        for name, Tm in optics.monitor_means(xy, T, film.monitors).items():
            row[f"T_{name}"], row[f"dOD_{name}"] = Tm, np.log10(T0 / Tm)
            per_monitor[name].append(Tm)
        row["T_mean"] = float(T.mean())
        row["dOD_mean"] = float(np.log10(T0 / row["T_mean"]))
        rows.append(row)
    columns = ["t_s"] + [f"{q}_{n}" for n in film.monitors for q in ("T", "dOD")] + ["T_mean", "dOD_mean"]
    with open(film.path / "optics.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(columns)
        w.writerows([[f"{r[c]:.12g}" for c in columns] for r in rows])
    return {
        "coloration_efficiency_m2_per_C": film.coloration_efficiency,
        "bleached_transmittance": T0,
        "film_thickness_m": film.thickness,
        "times_s": list(times),
        "monitors": per_monitor,
        "T_mean": [r["T_mean"] for r in rows],
        "T_min": T_min if times else None,
        "chemical_expansion": film.chemical_expansion,
        "thickness_change_max_m": dh_max,
    }


# ------------------------------------------------------------------ figures


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _stages(summary: dict) -> list[dict]:
    return list(summary.get("protocol") or [])


def _stage_label(stage: dict) -> str:
    return stage.get("label") or stage.get("name") or stage.get("action", "")


def _stage_at(stages: list[dict], t: float) -> str:
    """Label of the stage running at time ``t`` (the one ending there counts)."""
    for st in stages:
        if st["t_start_s"] - 1e-9 <= t <= st["t_end_s"] + 1e-9 and t > st["t_start_s"] + 1e-9:
            return _stage_label(st)
    return "initial" if stages and t <= stages[0]["t_start_s"] + 1e-9 else ""


def _photo_times(film: _Film) -> list[tuple[float, str]]:
    """(time, label) of each photo: the start and every stage end ("stages"), or every output."""
    times = film.res.times
    mode = film.case.optics.photos
    stages = _stages(film.summary)
    if mode == "none" or not times:
        return []
    if mode == "outputs" or not stages:
        return [(t, _stage_at(stages, t) or f"t={t:g}s") for t in times]
    arr = np.asarray(times)
    picks = [(times[0], "initial")]
    for st in stages:
        k = int(np.argmin(np.abs(arr - st["t_end_s"])))
        if abs(arr[k] - st["t_end_s"]) > 1e-6 * max(1.0, st["t_end_s"]):
            warnings.warn(f"optics photo of stage {_stage_label(st)!r}: no output at its end "
                          f"t = {st['t_end_s']:g} s, using t = {arr[k]:g} s", stacklevel=2)
        picks.append((times[k], _stage_label(st)))
    return picks


def _image(film: _Film, t: float, nx: int = 500) -> tuple[np.ndarray, tuple]:
    """RGB image (ny, nx, 3) of the film on the plate at time ``t`` and its extent (mm)."""
    (x0, x1), (y0, y1) = film.res.plate_bounds
    ny = max(2, int(round(nx * (y1 - y0) / (x1 - x0))))
    xs = x0 + (np.arange(nx) + 0.5) * (x1 - x0) / nx
    ys = y0 + (np.arange(ny) + 0.5) * (y1 - y0) / ny
    xy, od = film.optical_density_map(t)
    if film.section:  # the section stands for every y
        od_img = np.tile(np.interp(xs, xy[:, 0], od), (ny, 1))
    else:
        from scipy.interpolate import griddata

        gx, gy = np.meshgrid(xs, ys)
        od_img = griddata(xy, od, (gx, gy), method="linear")
    rgb = film_colours(np.nan_to_num(od_img.ravel(), nan=0.0), film.colour_scale()).reshape(ny, nx, 3)
    rgb[np.isnan(od_img)] = 1.0  # no film there: bare (white) background
    return rgb, (x0 * MM, x1 * MM, y0 * MM, y1 * MM)


def _outlines(film: _Film) -> list[tuple[str, object, dict]]:
    """(label, plan geometry in m, line style) of what the paper's photos show by eye: the
    electrolyte's coated area and the driven conductors' tracks, where they are patterned."""
    from femion.geometry.plan import pattern_geometry

    case, out = film.case, []
    tr = case.transport_layers()
    if tr.electrolyte is not None and tr.electrolyte.pattern is not None:
        out.append(("electrolyte", pattern_geometry(tr.electrolyte.pattern, case.geometry.plate),
                    {"color": "#00b4d8", "ls": "--", "lw": 1.4}))
    for d in case.drives:
        layer = case.layer(d.conductor)
        if layer.pattern is not None and layer.kind == "conductor":
            out.append((f"{d.conductor} track", pattern_geometry(layer.pattern, case.geometry.plate),
                        {"color": "#f77f00", "ls": ":", "lw": 1.6}))
    return out


def _stage_drive(film: _Film, t: float) -> dict | None:
    """The drive or reverse stage ending at (or running at) ``t``, with its current and destination."""
    for st in _stages(film.summary):
        if st["t_start_s"] - 1e-9 < t <= st["t_end_s"] + 1e-9 and st.get("toward_xy_m") is not None \
                and st.get("action") in ("drive", "reverse"):
            return st
    return None


def _photo_figure(film: _Film, t: float, label: str):
    """A matplotlib figure: the plate coloured by ΔOD (and T) with its colour bar, the coated area
    and the driven track outlined, the current's direction while a drive runs, monitors labelled
    above their squares, a 1 cm scale bar."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(9.6, 4.2), dpi=100)
    _draw_photo(ax, film, t, label)
    _film_colour_bar(fig, ax, film)
    return fig


def _before_after_figure(film: _Film):
    """The film before the protocol (first output) above the film after it (last output), on one
    ΔOD scale: the paper's before/after pair of a painted picture (seed 000 Fig. 5e)."""
    plt = _plt()
    stages, times = _stages(film.summary), film.res.times
    fig, axes = plt.subplots(2, 1, figsize=(9.6, 8.4), dpi=100)
    fig.subplots_adjust(left=0.07, right=0.86, top=0.95, bottom=0.06, hspace=0.3)
    for ax, t, name in ((axes[0], times[0], "before"), (axes[1], times[-1], "after")):
        _draw_photo(ax, film, t, _stage_at(stages, t), show_drive=False)
        ax.set_title(f"{name}: " + ax.get_title(), fontsize=10)
    _film_colour_bar(fig, list(axes), film)
    return fig


def _film_colour_bar(fig, ax, film: _Film) -> None:
    """The photos' colour bar: ΔOD on its right, the same scale read as T = T₀·10^(−ΔOD) on its left."""
    from matplotlib.cm import ScalarMappable
    from matplotlib.colors import Normalize

    T0, top = film.bleached_transmittance, film.colour_scale()
    bar = fig.colorbar(ScalarMappable(Normalize(0.0, top), FILM_COLOURMAP), ax=ax, fraction=0.03, pad=0.09)
    bar.set_label("ΔOD = log₁₀(T₀/T)")
    t_axis = bar.ax.secondary_yaxis("left", functions=(lambda od: T0 * 10.0 ** (-od),
                                                       lambda T: np.log10(T0 / np.maximum(T, 1e-300))))
    t_ticks = [T0 * 10.0 ** (-k * top / 4) for k in range(5)]
    t_axis.set_ticks(t_ticks, labels=[f"{v:.2g}" for v in t_ticks])
    t_axis.set_ylabel("transmittance T")


def _draw_photo(ax, film: _Film, t: float, label: str, show_drive: bool = True) -> None:
    """The plate at time ``t`` drawn into ``ax`` (see :func:`_photo_figure`)."""
    from matplotlib import patheffects

    halo = [patheffects.withStroke(linewidth=3, foreground="black")]
    rgb, extent = _image(film, t)
    ax.imshow(rgb, origin="lower", extent=extent, interpolation="bilinear")
    for name, geom, style in _outlines(film):
        for poly in getattr(geom, "geoms", [geom]):
            for line in [poly.exterior, *poly.interiors] if hasattr(poly, "exterior") else []:
                gx, gy = line.xy
                ax.plot(np.asarray(gx) * MM, np.asarray(gy) * MM, label=name, **style)
                name = None  # one legend entry per outline
    x0, x1, y0, y1 = extent
    for name, geom in film.monitors.items():
        for line in getattr(geom.boundary, "geoms", [geom.boundary]):
            gx, gy = line.xy
            ax.plot(np.asarray(gx) * MM, np.asarray(gy) * MM, color="black", lw=1.2)
        # the label just above its square, so it does not hide what the square shows
        bx0, _, bx1, by1 = geom.bounds
        ax.text(0.5 * (bx0 + bx1) * MM, by1 * MM + 0.02 * (y1 - y0), name, ha="center", va="bottom", fontsize=8,
                weight="bold", color="white", path_effects=halo)
    bx, by = x1 - 0.05 * (x1 - x0) - 10.0, y0 + 0.08 * (y1 - y0)
    ax.plot([bx, bx + 10.0], [by, by], color="white", lw=3, path_effects=halo)
    ax.text(bx + 5.0, by + 0.03 * (y1 - y0), "1 cm", ha="center", va="bottom", fontsize=10, color="white",
            path_effects=halo)
    drive = _stage_drive(film, t) if show_drive else None
    if drive is not None:  # the current's direction: toward the end it flows to
        toward = float(drive["toward_xy_m"][0]) * MM
        xc, dx = 0.5 * (x0 + x1), 0.2 * (x1 - x0) * (1 if toward > 0.5 * (x0 + x1) else -1)
        ya = y1 + 0.06 * (y1 - y0)
        ax.annotate("", xy=(xc + dx, ya), xytext=(xc - dx, ya), annotation_clip=False,
                    arrowprops={"arrowstyle": "-|>", "color": "#d62828", "lw": 2})
        current = drive.get("current_A")
        text = f"I = {abs(current):g} A in {drive.get('conductor')}" if current is not None else "current"
        ax.text(xc, ya + 0.02 * (y1 - y0), text, ha="center", va="bottom", fontsize=9, color="#d62828")
        _track_arrows(ax, film, drive)
    ax.plot([x0, x1, x1, x0, x0], [y0, y0, y1, y1, y0], color="0.3", lw=1)
    ax.set_xlim(x0 - 1, x1 + 1)
    ax.set_ylim(y0 - 1, y1 + 0.2 * (y1 - y0))
    ax.set_aspect("equal")
    ax.set_xlabel("x (mm)")
    ax.set_ylabel("y (mm)")
    if ax.get_legend_handles_labels()[0]:
        ax.legend(loc="lower left", fontsize=8, framealpha=0.8)
    where = "x–z section, uniform in y" if film.section else "plan"
    stage = f", {label}" if label and not label.startswith("t=") else ""
    ax.set_title(f"{film.summary['case']}: film at t = {t / MIN:.3g} min{stage} ({where})", fontsize=10)


def _track_arrows(ax, film: _Film, drive: dict, at=(0.15, 0.4, 0.65, 0.9)) -> None:
    """Over a driven "2"-shaped track, arrowheads along its centreline at the arc-length shares
    ``at``, pointing the way the stage's current flows in it (toward the end nearer the stage's
    destination): the arrow above the plate only says toward which end."""
    from femion.geometry.plan import track_centreline

    line = track_centreline(film.case.layer(drive["conductor"]).pattern, film.case.geometry.plate)
    if line is None:
        return
    toward = np.asarray(drive["toward_xy_m"], dtype=float)[:2]
    forward = np.linalg.norm(np.asarray(line.coords[-1]) - toward) < np.linalg.norm(np.asarray(line.coords[0]) - toward)
    step = 1e-3 if forward else -1e-3  # m along the track
    for share in at:
        s = share * line.length
        (px, py), (qx, qy) = line.interpolate(s).coords[0], line.interpolate(s + step).coords[0]
        ax.annotate("", xy=(qx * MM, qy * MM), xytext=(px * MM, py * MM),
                    arrowprops={"arrowstyle": "-|>", "color": "#d62828", "lw": 1.5, "mutation_scale": 14})


def _safe(label: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", label).strip("_") or "t"


#: the shade of each kind of stage in the monitor plot (seed 000 Fig. 2 bands its stages)
STAGE_COLOURS = {"inject": "#c8e6c9", "drive": "#ffe0b2", "reverse": "#ffccbc", "relax": "#e3f2fd",
                 "remove": "#eeeeee"}


#: characters of a 7 pt stage label that fit across the whole monitor plot's time axis
LABEL_CHARS_ACROSS = 110


def _fit_label(label: str, share: float) -> str:
    """``label`` wrapped into lines that fit a stage band ``share`` of the time axis wide, so
    neighbouring short stages' labels do not run into each other; a band too narrow for even a
    short word gets its label cut to what fits (with "…")."""
    import textwrap

    width = int(share * LABEL_CHARS_ACROSS)
    if width >= len(label):
        return label
    if width < 4:
        return label[: max(width, 1)] + "…" if width < len(label) else label
    return "\n".join(textwrap.wrap(label, width, break_long_words=True)[:3])


def plot_monitors(film: _Film, out: Path) -> Path:
    """Write :func:`_monitors_figure` to ``out``."""
    plt = _plt()
    fig = _monitors_figure(film)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def _monitors_figure(film: _Film):
    """T of each monitor (and the film mean) against time (min), each stage a shaded band labelled
    with it (seed 000 Fig. 2 and Supp. Fig. 3)."""
    plt = _plt()
    times = np.asarray(film.res.times)
    maps = [film.transmittance_map(t) for t in times]
    fig, ax = plt.subplots(figsize=(8, 4.5))
    for name in film.monitors:
        ax.plot(times / MIN, [optics.monitor_means(xy, T, {name: film.monitors[name]})[name] for xy, T in maps],
                marker="o", ms=3, label=name)
    ax.plot(times / MIN, [T.mean() for _, T in maps], color="0.4", ls="--", label="film mean")
    stages = _stages(film.summary)
    span = max((stages[-1]["t_end_s"] - stages[0]["t_start_s"]) if stages else 0.0, times[-1] if len(times) else 0.0)
    lines = 1
    for st in stages:
        ax.axvspan(st["t_start_s"] / MIN, st["t_end_s"] / MIN, color=STAGE_COLOURS.get(st.get("action"), "#f5f5f5"),
                   alpha=0.8, zorder=0, label=None)
        ax.axvline(st["t_start_s"] / MIN, color="0.6", lw=0.8)
        label = _fit_label(_stage_label(st), (st["t_end_s"] - st["t_start_s"]) / span if span else 1.0)
        lines = max(lines, label.count("\n") + 1)
        ax.text(0.5 * (st["t_start_s"] + st["t_end_s"]) / MIN, 1.0, label, ha="center", va="bottom",
                fontsize=7, linespacing=1.0, transform=ax.get_xaxis_transform())
    if stages:
        ax.axvline(stages[-1]["t_end_s"] / MIN, color="0.6", lw=0.8)
    ax.set_xlabel("t (min)")
    ax.set_ylabel("transmittance T")
    ax.legend(fontsize=8)
    ax.set_title(f"{film.summary['case']}: T = T0·10^(−CE·Q), CE = {film.coloration_efficiency * 1e4:.3g} cm²/C, "
                 f"T0 = {film.bleached_transmittance:g}", fontsize=9, pad=6 + 10 * lines if stages else 6)
    fig.tight_layout()
    return fig


def _thickness_figure(film: _Film):
    """The film's thickness change Δh (nm) along x at the start and at the end of every stage,
    through the middle of the plate (3D: through the coated area or the driven track): what the
    paper's AFM step profile at the Li-rich end measures (seed 000, Supp. Fig. 4)."""
    from scipy.interpolate import LinearNDInterpolator

    from femion.post.metrics import profile_line_y

    plt = _plt()
    (x0, x1), (y0, y1) = film.res.plate_bounds
    xs = np.linspace(x0, x1, 400)
    yc = profile_line_y(film.case, film.summary["transport"].get("section_y_m", 0.5 * (y0 + y1)))
    picks = _photo_times(film) or [(t, "") for t in film.res.times]
    cmap = plt.get_cmap("viridis")
    fig, ax = plt.subplots(figsize=(8, 4))
    for k, (t, label) in enumerate(picks):
        xy, dh = film.thickness_change_map(t)
        if film.section:
            order = np.argsort(xy[:, 0])
            line = np.interp(xs, xy[order, 0], dh[order], left=np.nan, right=np.nan)
        else:
            line = LinearNDInterpolator(xy, dh)(np.c_[xs, np.full_like(xs, yc)])
        ax.plot(xs * MM, line * 1e9, color=cmap(k / max(len(picks) - 1, 1)),
                label=f"{t / MIN:.3g} min {label}".strip())
    ax.set_xlabel("x (mm)")
    ax.set_ylabel("film thickness change Δh (nm)")
    ax.legend(fontsize=8)
    where = "" if film.section else f" at y = {yc * MM:g} mm"
    ax.set_title(f"{film.summary['case']}: Δh = β·x·h{where}; β = {film.chemical_expansion:g} per ion per formula "
                 f"unit, h = {film.thickness * 1e9:.4g} nm", fontsize=9)
    fig.tight_layout()
    return fig


def _frames(film: _Film):
    plt = _plt()
    stages = _stages(film.summary)
    for t in film.res.times:
        fig = _photo_figure(film, t, _stage_at(stages, t))
        fig.canvas.draw()
        yield np.asarray(fig.canvas.buffer_rgba())[..., :3].copy()
        plt.close(fig)


def render_optics(result_path: str | Path) -> list[Path]:
    """Draw ``figures/transmittance_monitors.png``, ``figures/thickness_change.png``,
    ``figures/before_after.png``,
    ``figures/photo_<k>_<label>.png`` and the
    animation ``figures/protocol.gif`` (or ``.mp4`` when asked and imageio-ffmpeg is present)."""
    plt = _plt()
    film = _open(result_path)
    figs = film.path / "figures"
    figs.mkdir(exist_ok=True)
    written = [plot_monitors(film, figs / "transmittance_monitors.png")]
    for name, draw in (("thickness_change", _thickness_figure), ("before_after", _before_after_figure)):
        fig = draw(film)
        written.append(figs / f"{name}.png")
        fig.savefig(written[-1], dpi=110)
        plt.close(fig)
    for k, (t, label) in enumerate(_photo_times(film)):
        fig = _photo_figure(film, t, label)
        written.append(figs / f"photo_{k}_{_safe(label)}.png")
        fig.savefig(written[-1], dpi=110)
        plt.close(fig)
    anim = film.case.optics.animation
    if anim != "none" and film.res.times:
        import imageio.v3 as iio

        if anim == "mp4":
            try:
                import imageio_ffmpeg  # noqa: F401
            except ImportError:
                warnings.warn("optics.animation: mp4 needs imageio-ffmpeg, which is not installed; writing a gif",
                              stacklevel=2)
                anim = "gif"
        frames = list(_frames(film))
        out = figs / f"protocol.{anim}"
        if anim == "gif":
            iio.imwrite(out, frames, duration=600, loop=0)
        else:
            iio.imwrite(out, frames, fps=2)
        written.append(out)
    return written
