"""Off-screen pictures of results and meshes (pyvista; rank 0 only).

Figures are rendered from the files of a results directory, so ``femion plot``
can redraw them later. Lengths are shown in millimetres, fields in the units
named on their colour bars.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from femion.post import one_blas_thread
from femion.post.metrics import profile_line_y

os.environ.setdefault("VTK_DEFAULT_OPENGL_WINDOW", "vtkEGLRenderWindow")

MM = 1e3  # metres → millimetres for display
WINDOW = (1400, 700)


def _pv():
    import pyvista as pv

    pv.OFF_SCREEN = True
    return pv


def _read(path: Path):
    from femion.results.reader import read_vtkhdf

    grid = read_vtkhdf(Path(path))  # OutputError naming the file if it is damaged
    grid.points = grid.points * MM
    return grid


def _thin(points, vectors, n_max: int = 500):
    """A point cloud of about ``n_max`` of ``points`` (evenly spread on a grid) with ``vectors``."""
    pv = _pv()
    lo, hi = points.min(axis=0), points.max(axis=0)
    span = np.maximum(hi - lo, 1e-30)
    area = span[0] * span[1]
    h = np.sqrt(area / n_max)
    key = np.floor((points[:, :2] - lo[:2]) / h).astype(np.int64)
    _, first = np.unique(key[:, 0] * 10**9 + key[:, 1], return_index=True)
    cloud = pv.PolyData(points[first])
    cloud["u"] = vectors[first]
    return cloud, h


def _plotter(title: str):
    pv = _pv()
    pl = pv.Plotter(off_screen=True, window_size=WINDOW)
    pl.set_background("white")
    pl.add_text(title, font_size=11, color="black")
    return pl


def _finish(pl, path: Path, bounds_mm) -> Path:
    pv = _pv()
    x0, x1, y0, y1 = bounds_mm[:4]
    outline = pv.MultipleLines(points=[[x0, y0, 0], [x1, y0, 0], [x1, y1, 0], [x0, y1, 0], [x0, y0, 0]])
    pl.add_mesh(outline, color="black", line_width=1.5)  # the plate, so every figure frames all of it
    pl.view_xy()
    pl.reset_camera()
    pl.show_bounds(xtitle="x (mm)", ytitle="y (mm)", color="black", location="outer", bounds=bounds_mm)
    pl.camera.zoom(1.15)
    pl.screenshot(str(path))
    pl.close()
    return path


def plot_potential_and_current(phi_file: Path, k_file: Path, out: Path, conductor: str, plate_mm) -> Path:
    """φ_s colour map with sheet-current arrows (direction and relative size of K)."""
    phi = _read(phi_file)
    K = _read(k_file)
    pl = _plotter(f"{conductor}: potential phi_s (V) and sheet current K")
    pl.add_mesh(phi, scalars="u", cmap="viridis", scalar_bar_args={"title": "phi_s (V)", "color": "black"})
    centres = K.cell_centers()
    arrows, spacing = _thin(centres.points, np.asarray(centres["u"]))
    kmag = np.linalg.norm(arrows["u"], axis=1)
    if kmag.max() > 0:
        arrows["dir"] = arrows["u"] / kmag.max()
        glyphs = arrows.glyph(orient="dir", scale="dir", factor=1.6 * spacing)
        pl.add_mesh(glyphs, color="black", show_scalar_bar=False)
    bounds = (0, plate_mm[0], 0, plate_mm[1], 0, 0)
    return _finish(pl, out, bounds)


def plot_interface_field(b_file: Path, out: Path, title: str, plate_mm) -> Path:
    """|B| on the interface (µT) with arrows of its in-plane part (length ∝ |B_t|)."""
    B = _read(b_file)
    B["|B| (uT)"] = np.linalg.norm(B["u"], axis=1) * 1e6
    pl = _plotter(title)
    pl.add_mesh(B, scalars="|B| (uT)", cmap="magma", scalar_bar_args={"title": "|B| (uT)", "color": "black"})
    bt = np.asarray(B["u"]).copy()
    bt[:, 2] = 0.0
    pts, spacing = _thin(B.points, bt)
    mag = np.linalg.norm(pts["u"], axis=1)
    if mag.max() > 0:
        # Arrow length grows with |B_t| up to its median over the stronger half, so the
        # edge singularities of B do not shrink every other arrow to nothing.
        ref = np.median(mag[mag >= np.median(mag)])
        pts["dir"] = pts["u"] / np.where(mag > 0, mag, 1.0)[:, None] * np.minimum(mag / ref, 1.0)[:, None]
        pl.add_mesh(pts.glyph(orient="dir", scale="dir", factor=0.8 * spacing), color="cyan", show_scalar_bar=False)
    return _finish(pl, out, (0, plate_mm[0], 0, plate_mm[1], 0, 0))


@one_blas_thread
def render_result(path: str | Path) -> list[Path]:
    """Draw every standard figure of a results directory into ``figures/`` (of each variant's for a
    parent of variants)."""
    from femion.results.reader import open_result

    path = Path(path)
    summary = open_result(path).summary  # checked: OutputError naming the file if damaged
    if summary.get("variants"):
        return [p for name in summary["variants"] for p in render_result(path / name)]
    (x0, x1), (y0, y1) = summary["plate_m"]
    plate_mm = ((x1 - x0) * MM, (y1 - y0) * MM)
    figs = path / "figures"
    figs.mkdir(exist_ok=True)
    written = []
    for cond in summary["conductors"]:
        phi, K = path / "fields" / f"phi_s_{cond}.vtkhdf", path / "fields" / f"K_{cond}.vtkhdf"
        if phi.exists() and K.exists():
            written.append(plot_potential_and_current(phi, K, figs / f"phi_s_{cond}.png", cond, plate_mm))
    b = path / "fields" / "B_interface.vtkhdf"
    if b.exists():
        z = summary["interface"]["z_m"]
        sheet = summary["drives"][0]
        title = (f"|B| and in-plane B at the {summary['interface']['name'].replace('|', '/')} interface, "
                 f"{(z - sheet['sheet_z_m']) * 1e6:.3g} um above the {sheet['conductor']} sheet")
        written.append(plot_interface_field(b, figs / "B_interface.png", title, plate_mm))
    if summary.get("transport"):
        written.extend(plot_transport(path))
    if (path / "optics.csv").exists():
        written.extend(render_optics(path))
    return written


def render_optics(path: str | Path) -> list[Path]:
    """Film optics figures of a transport run (see :func:`femion.post.optics.render_optics`)."""
    from femion.post.optics import render_optics as _render

    return _render(path)


def render_mesh(plan_file: Path, stack_file: Path, out: Path, layer_z: dict[str, tuple[float, float]],
                section: bool = False) -> Path:
    """Picture of the plan mesh (fragments coloured) beside the layer stack or x–z section.

    The layers span 30 nm to 1 mm, so the stack is drawn with every layer the
    same visual height (not to scale), each labelled by name.
    """
    pv = _pv()
    plan = _read(plan_file)
    stack = pv.read(stack_file)
    names = list(layer_z)
    zb = np.array([layer_z[n][0] for n in names] + [layer_z[names[-1]][1]])
    span = plan.bounds[1] - plan.bounds[0]
    height = span / 4  # drawn height of the whole stack, mm
    zcol = 1 if section else 2  # a section's second coordinate is z
    zvis = np.interp(stack.points[:, zcol], zb, np.linspace(0.0, height, len(zb)))
    pts = stack.points * MM
    pts[:, zcol] = zvis
    stack.points = pts
    pl = pv.Plotter(off_screen=True, window_size=(1800, 700), shape=(1, 2))
    pl.set_background("white")
    pl.subplot(0, 0)
    pl.add_text("plan mesh, fragments coloured (mm)", font_size=10, color="black")
    pl.add_mesh(plan, scalars="u", show_edges=True, cmap="tab20", show_scalar_bar=False)
    pl.view_xy()
    pl.subplot(0, 1)
    pl.add_text(f"{'x-z section' if section else 'layer stack'}: every layer drawn equally thick", font_size=10,
                color="black")
    pl.add_mesh(stack, scalars="u", show_edges=True, cmap="tab20", show_scalar_bar=False)
    xmax = stack.bounds[1]
    for i, n in enumerate(names):
        zc = (i + 0.5) * height / len(names)
        p = [xmax * 1.02, 0.0, zc] if not section else [xmax * 1.02, zc, 0.0]
        pl.add_point_labels([p], [n], font_size=11, text_color="black", shape=None, show_points=False)
    if section:
        pl.view_xy()
    else:
        pl.view_isometric()
    pl.screenshot(str(out))
    pl.close()
    return out


def plot_transport(path: Path) -> list[Path]:
    """Line plots of θ (oxide) and c of the exchanged ion (electrolyte) along x at every output time,
    through the middle of the plate (3D: through the coated area's or the driven track's middle);
    for 3D runs also a plan map of θ at the last output and, over a "2"-shaped track, θ̄ along it."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from femion.results.reader import open_result

    res = open_result(path)
    s = res.summary
    (x0, x1), (y0, y1) = res.plate_bounds
    zo = float(np.mean(res.layer_z[s["transport"]["oxide_layer"]]))
    ze = float(np.mean(res.layer_z[s["transport"]["electrolyte_layer"]]))
    case = _case_of(path)
    yc = s["transport"].get("section_y_m", 0.5 * (y0 + y1))
    if s["transport"]["dimension"] == 3 and case is not None:
        yc = profile_line_y(case, yc)
    xs = np.linspace(x0, x1, 400)[1:-1]
    fig, axes = plt.subplots(2, 1, figsize=(9, 6.5), sharex=True)
    ion = s["transport"]["exchanging"]
    cmap = plt.get_cmap("viridis")
    times = res.times
    oxide_line = np.c_[xs, np.full_like(xs, yc), np.full_like(xs, zo)]
    electrolyte_line = np.c_[xs, np.full_like(xs, yc), np.full_like(xs, ze)]
    for k, t in enumerate(times):
        color = cmap(k / max(len(times) - 1, 1))
        # NaN where the line leaves a layer (uncoated ends): matplotlib leaves those parts out
        th = res.probe("theta", oxide_line, time=t, outside=np.nan)
        axes[0].plot(xs * MM, th, color=color, label=f"t = {t:g} s")
        c = res.probe(f"c_{ion}", electrolyte_line, time=t, outside=np.nan)
        axes[1].plot(xs * MM, c, color=color)
    axes[0].set_ylabel("oxide filling fraction θ")
    axes[1].set_ylabel(f"c_{ion} in the electrolyte (mol/m³)")
    axes[1].set_xlabel("x (mm)")
    axes[0].legend(fontsize=8, ncol=3)
    axes[0].set_title(f"{s['case']}: along x at y = {yc * MM:g} mm (oxide and electrolyte mid-planes)")
    fig.tight_layout()
    out = [path / "figures" / "transport_profiles.png"]
    fig.savefig(out[0], dpi=110)
    plt.close(fig)
    if s["transport"]["dimension"] == 3:
        fig, ax = plt.subplots(figsize=(9, 4))
        _plan_map(fig, ax, res, "theta", zo, times[-1], "Blues", "θ")
        ax.set_title(f"oxide filling fraction at t = {times[-1]:g} s")
        fig.tight_layout()
        out.append(path / "figures" / "theta_plan.png")
        fig.savefig(out[-1], dpi=110)
        plt.close(fig)
    if "T" in res.transport_fields():
        out.append(_plot_temperature_rise(res, path, zo, yc, xs, plt))
    if s["transport"]["dimension"] == 3 and case is not None:
        along = _plot_along_track(res, case, path, zo, plt)
        if along is not None:
            out.append(along)
    return out


def _case_of(path: Path):
    """The run's resolved case (case.yaml), or None if it cannot be read (figures still drawn)."""
    import yaml

    from femion.config import validate_case

    try:
        return validate_case(yaml.safe_load((path / "case.yaml").read_text()))
    except Exception:  # a figure must not fail on an old or damaged case.yaml
        return None


def _plot_along_track(res, case, path: Path, zo: float, plt) -> Path | None:
    """θ̄ along a "2"-shaped driven track's centreline, by arc length from its start pad, at every
    output time (seed 000 Fig. 5c follows the track, not x); None without such a track."""
    from scipy.interpolate import LinearNDInterpolator

    from femion.geometry.plan import track_centreline

    line = next((c for c in (track_centreline(case.layer(d.conductor).pattern, case.geometry.plate)
                             for d in case.drives) if c is not None), None)
    if line is None:
        return None
    arc = np.linspace(0.0, line.length, 300)
    pts = np.array([line.interpolate(v).coords[0] for v in arc])
    fig, ax = plt.subplots(figsize=(9, 4))
    cmap = plt.get_cmap("viridis")
    for k, t in enumerate(res.times):
        xy, th = res.film_filling(t)
        ax.plot(arc * MM, LinearNDInterpolator(xy, th)(pts), color=cmap(k / max(len(res.times) - 1, 1)),
                label=f"t = {t:g} s")
    ax.set_xlabel("arc length along the track's centreline from its start pad (mm)")
    ax.set_ylabel("mean film filling θ̄")
    ax.set_title(f"{res.summary['case']}: the film along the driven track")
    ax.legend(fontsize=8, ncol=3)
    fig.tight_layout()
    target = path / "figures" / "theta_along_track.png"
    fig.savefig(target, dpi=110)
    plt.close(fig)
    return target


def _plan_map(fig, ax, res, name: str, z: float, time: float, cmap: str, label: str, offset: float = 0.0) -> None:
    """Field ``name`` − ``offset`` on a 200-point-wide plan grid at height ``z``, output ``time``
    (blank where the field is not), with its colour bar."""
    (x0, x1), (y0, y1) = res.plate_bounds
    nx, ny = 200, max(20, int(200 * (y1 - y0) / (x1 - x0)))
    gx, gy = np.meshgrid(np.linspace(x0, x1, nx + 2)[1:-1], np.linspace(y0, y1, ny + 2)[1:-1])
    pts = np.c_[gx.ravel(), gy.ravel(), np.full(gx.size, z)]
    values = res.probe(name, pts, time=time, outside=np.nan).reshape(gx.shape) - offset
    im = ax.imshow(values, origin="lower", extent=(x0 * MM, x1 * MM, y0 * MM, y1 * MM), cmap=cmap)
    fig.colorbar(im, ax=ax, label=label)
    ax.set_xlabel("x (mm)")
    ax.set_ylabel("y (mm)")


def _plot_temperature_rise(res, path: Path, zo: float, yc: float, xs, plt) -> Path:
    """ΔT = T − T∞ of Joule heating at the film: along x at every output time (2D section), or a
    plan map at the last output (3D)."""
    s = res.summary
    T_inf = s["thermal"]["ambient_K"]
    times = res.times
    fig, ax = plt.subplots(figsize=(9, 4))
    if s["transport"]["dimension"] == 2:
        cmap = plt.get_cmap("inferno")
        line = np.c_[xs, np.full_like(xs, yc), np.full_like(xs, zo)]
        for k, t in enumerate(times):
            dT = res.probe("T", line, time=t, outside=np.nan) - T_inf
            ax.plot(xs * MM, dT, color=cmap(0.85 * k / max(len(times) - 1, 1)), label=f"t = {t:g} s")
        ax.set_xlabel("x (mm)")
        ax.set_ylabel("ΔT = T − T∞ at the film (K)")
        ax.legend(fontsize=8, ncol=3)
        ax.set_title(f"{s['case']}: Joule heating along x at y = {yc * MM:g} mm")
    else:
        _plan_map(fig, ax, res, "T", zo, times[-1], "inferno", "ΔT = T − T∞ (K)", offset=T_inf)
        ax.set_title(f"Joule heating at the film, t = {times[-1]:g} s")
    fig.tight_layout()
    target = path / "figures" / "temperature_rise.png"
    fig.savefig(target, dpi=110)
    plt.close(fig)
    return target
