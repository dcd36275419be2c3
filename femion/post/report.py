"""Measured outcomes of a run beside the paper's observation (``femion report RESULT_DIR``).

Everything is read from a results directory (see :mod:`femion.results.reader`) through
``Result.film_filling(t)``: the film's mean filling θ̄ at each plan node. The metrics are
:mod:`femion.post.metrics`; which a stage gets is its action's ``metrics``
(:mod:`femion.protocol.actions`: "motion" for drive and reverse, "relaxation" for relax and
remove electrolyte), and the report explains them in the actions' ``report_text``.

:func:`case_report` applies them stage by stage (``summary["protocol"]``; a run without one is
one drive stage over the whole run) and :func:`write_report` writes ``report.md`` and
``report.json`` (and, for a parent of variants, one report comparing them).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from femion.post import one_blas_thread
from femion.post.metrics import (  # noqa: F401 (node_weights, ... are also read from here)
    MOTION_TOL,
    RELAX_FLOOR,
    TRACK_FAR,
    TRACK_NEAR,
    destination_axis,
    front_position,
    li_centroid,
    motion_direction,
    node_weights,
    relaxation_time,
    share_in_destination_third,
    track_following,
    weighted_mean_std,
)
from femion.post.optics import _plt
from femion.protocol.actions import report_texts, with_metrics

_MOVING = with_metrics("motion")
_RELAXING = with_metrics("relaxation")


# ------------------------------------------------------------------ one run


def _default_stages(res) -> list[dict]:
    """A run without a protocol: one drive stage over the whole run, toward the first drive's
    ``to`` contact when that is a plate edge (``at``), else without a direction."""
    times = res.times
    stage = {"name": "run", "action": "drive", "t_start_s": times[0], "t_end_s": times[-1], "label": "whole run",
             "conductor": None, "current_A": res.summary.get("current_A"), "voltage_V": res.summary.get("voltage_V"),
             "toward_xy_m": None}
    try:
        import yaml

        case = yaml.safe_load((res.path / "case.yaml").read_text())
        drive = case["drives"][0]
        stage["conductor"] = drive.get("conductor")
        value = str(drive.get("current", drive.get("voltage", "")))
        end = drive["from"] if value.strip().startswith("-") else drive["to"]
        at = next(c.get("at") for c in case["geometry"]["contacts"] if c["name"] == end)
        (x0, x1), (y0, y1) = res.plate_bounds
        edges = {"x_min": [x0, (y0 + y1) / 2], "x_max": [x1, (y0 + y1) / 2],
                 "y_min": [(x0 + x1) / 2, y0], "y_max": [(x0 + x1) / 2, y1]}
        stage["toward_xy_m"] = edges.get(at)
    except Exception:  # no case.yaml, no drive, a pad contact: no direction metrics
        pass
    return [stage]


def _stage_times(times: list[float], t0: float, t1: float) -> list[float]:
    """Outputs of a stage: the last output at or before its start (the state it starts from)
    and every later output up to its end."""
    eps = 1e-9 * max(1.0, abs(t1))
    before = [t for t in times if t <= t0 + eps]
    start = before[-1] if before else None
    inner = [t for t in times if t0 + eps < t <= t1 + eps]
    return ([start] if start is not None else []) + inner


def _fmt(v, spec=".3g", unit=""):
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "–"
    return f"{v:{spec}}{unit}"


def case_report(result_path) -> dict:
    """Per-stage measured outcomes of one run (a JSON-able dict; see the module doc).

    Every stage: mean and std of θ̄ at its start and end. drive/reverse with a ``toward_xy_m``:
    direction (+1/−1/0) and displacement of the Li centroid toward that point, its series at each
    output, the share of Li in the destination third at start and end, and in a 2D section the
    bleaching front (:func:`front_position`, θ_ref = mean θ̄ at the stage start) at each output
    as distance from the source end. relax/remove_electrolyte: :func:`relaxation_time` of the
    std of θ̄ (and of |share − 1/3| toward the previous drive's destination).
    Missing pieces (no transport, no protocol, no toward point) are skipped and noted.
    """
    from femion.results import OutputError
    from femion.results.reader import open_result

    res = open_result(result_path)  # OutputError if it is damaged
    rep = _report_header(res)
    tr = res.summary.get("transport") or {}
    times = res.times
    if not times or "theta" not in (tr.get("fields") or {}).get("oxide", []):
        rep["notes"].append("no transport outputs: no Li metrics")
        return rep
    protocol = res.summary.get("protocol")
    if not protocol:
        protocol = _default_stages(res)
        rep["notes"].append("no protocol in summary.json: the whole run is read as one drive stage")
    film = res.film_filling  # read once per output time, then kept by the Result
    try:
        rep["series"] = _film_series(times, film)
    except OutputError:  # a damaged field file: say which, rather than a report without metrics
        raise
    except Exception as exc:
        rep["notes"].append(f"cannot read the film filling: {exc}")
        return rep
    rep["stages"] = _stages_report(protocol, film, times, res.plate_bounds, rep["dimension"])
    _monitor_changes(rep["stages"], res.summary.get("optics") or {})
    if rep["dimension"] == 3:
        rep["track_following"] = _track_following(res, film)
    return rep


def _track_following(res, film) -> dict | None:
    """:func:`femion.post.metrics.track_following` of the change from the first to the last output
    over the first driven "2"-shaped track of the run's case (None without one)."""
    import yaml

    from femion.config import validate_case
    from femion.geometry.plan import driven_track

    case = validate_case(yaml.safe_load((res.path / "case.yaml").read_text()))
    track = next((t for t in (driven_track(case.layer(d.conductor).pattern, case.geometry.plate)
                              for d in case.drives) if t is not None), None)
    if track is None or len(res.times) < 2:
        return None
    xy, start = film(res.times[0])
    _, end = film(res.times[-1])
    return track_following(xy, end - start, track.polygon, track.centreline)


#: a monitor's transmittance change smaller than this (absolute, 1) reads "holds"
MONITOR_TOL = 0.005


def _monitor_changes(stages: list[dict], optics: dict) -> None:
    """Per moving stage, each optics monitor's change of transmittance T over the stage's first
    output interval and over the whole stage: the paper's L/M/R picture (seed 000 Fig. 2, Supp.
    Fig. 3: in cycle 2 the source end clears first while the destination darkens at once)."""
    times, monitors = optics.get("times_s") or [], optics.get("monitors") or {}
    if not monitors or not times:
        return
    index = {round(t, 9): k for k, t in enumerate(times)}
    for e in stages:
        ts = [index.get(round(t, 9)) for t in e.get("output_times_s") or []]
        if e.get("action") not in _MOVING or len(ts) < 2 or None in ts:
            continue
        e["monitor_dT_first"] = {m: T[ts[1]] - T[ts[0]] for m, T in monitors.items()}
        e["monitor_dT_stage"] = {m: T[ts[-1]] - T[ts[0]] for m, T in monitors.items()}


def _monitor_words(changes: dict) -> str:
    def word(dT):
        return "holds" if abs(dT) < MONITOR_TOL else "clears" if dT > 0 else "darkens"

    return ", ".join(f"{m} {word(dT)} ({dT:+.3f})" for m, dT in changes.items())


def _report_header(res) -> dict:
    """What a report says of the run before any metric (the paper's observation from case.yaml
    for older summaries without it)."""
    s = res.summary
    tr = s.get("transport") or {}
    rep = {
        "case": s.get("case", res.path.name), "description": s.get("description", ""),
        "observation": s.get("observation", ""), "dimension": tr.get("dimension"),
        "conservation_error_rel": s.get("conservation_error_rel"), "stages": [], "notes": [],
        "ion": (tr or {}).get("exchanging") or "Li",
        "host": (tr or {}).get("oxide_material"),
        # Joule heating (transport.mechanism.thermal): the largest rise of T over the stack and the run
        "max_temperature_rise_K": (s.get("thermal") or {}).get("max_temperature_rise_K"),
        "heated": bool((tr.get("mechanism") or {}).get("thermal")),
        "current_A": s.get("current_A"),  # the first drive's current as the case sets it
        # the film's largest Vegard thickness change over the run (the paper's AFM step), and its β
        "thickness_change_max_nm": max((s.get("optics") or {}).get("thickness_change_max_m") or [math.nan]) * 1e9,
        "chemical_expansion": (s.get("optics") or {}).get("chemical_expansion"),
    }
    if not rep["description"] or not rep["observation"]:
        try:  # older summaries: take them from the resolved case
            import yaml

            case = yaml.safe_load((res.path / "case.yaml").read_text()) or {}
            rep["description"] = rep["description"] or case.get("description", "")
            rep["observation"] = rep["observation"] or case.get("observation", "")
        except Exception:
            pass
    return rep


def _film_series(times, film) -> dict:
    """Centroid, mean and std of θ̄ at every output time."""
    series = {"t_s": [], "centroid_m": [], "mean_filling": [], "std_filling": []}
    for t in times:
        xy, th = film(t)
        m, sd = weighted_mean_std(xy, th)
        series["t_s"].append(t)
        series["centroid_m"].append(li_centroid(xy, th).tolist())
        series["mean_filling"].append(m)
        series["std_filling"].append(sd)
    return series


def _stages_report(protocol, film, times, plate, dimension) -> list[dict]:
    """The metrics of each stage; a relax stage also sees the destination of the drive before it."""
    stages, last_toward = [], None
    for st in protocol:
        entry = {k: st.get(k) for k in ("name", "action", "label", "t_start_s", "t_end_s", "conductor",
                                        "current_A", "voltage_V", "toward_xy_m")}
        stages.append(entry)
        try:
            _stage_metrics(entry, film, times, plate, dimension, last_toward)
        except Exception as exc:  # a report must not stop a finished run
            entry["note"] = f"could not compute: {type(exc).__name__}: {exc}"
        if entry["action"] in _MOVING and entry.get("toward_xy_m") is not None:
            last_toward = entry["toward_xy_m"]
    return stages


def _stage_metrics(entry: dict, film, times, plate, dimension, last_toward) -> None:
    ts = _stage_times(times, entry["t_start_s"], entry["t_end_s"])
    entry["output_times_s"] = ts
    if not ts:
        entry["note"] = "no output in this stage"
        return
    xy0, th0 = film(ts[0])
    xy1, th1 = film(ts[-1])
    entry["mean_filling"] = [weighted_mean_std(xy0, th0)[0], weighted_mean_std(xy1, th1)[0]]
    entry["std_filling"] = [weighted_mean_std(xy0, th0)[1], weighted_mean_std(xy1, th1)[1]]
    if len(ts) < 2:
        entry["note"] = "one output only: no change measured"
        return
    action, toward = entry["action"], entry.get("toward_xy_m")
    if action in _MOVING:
        if toward is None:
            entry["note"] = "no toward point: direction metrics skipped"
            return
        direction, d = motion_direction(xy0, th0, xy1, th1, toward)
        entry["direction"] = direction
        entry["displacement_m"] = d
        entry["displacement_mm"] = d * 1e3
        entry["share_destination_third"] = [share_in_destination_third(xy0, th0, toward, plate),
                                            share_in_destination_third(xy1, th1, toward, plate)]
        entry["displacement_series_mm"] = [motion_direction(xy0, th0, *film(t), toward)[1] * 1e3 for t in ts]
        if dimension == 2:
            axis, sign = destination_axis(toward, plate)
            if axis == 0:
                source = "min" if sign > 0 else "max"
                x_src = plate[0][0] if sign > 0 else plate[0][1]
                ref = entry["mean_filling"][0]
                fronts = []
                for t in ts:
                    xy, th = film(t)
                    xf = front_position(xy[:, 0], th, ref, source=source)
                    fronts.append(abs(xf - x_src) * 1e3 if math.isfinite(xf) else float("nan"))
                entry["front_from_source_mm"] = fronts
    elif action in _RELAXING:
        std = [weighted_mean_std(*film(t))[1] for t in ts]
        tau, note = relaxation_time(ts, std)
        entry["relaxation"] = {"contrast": "std of mean filling", "tau_s": tau, "tau_min": tau / 60,
                               "note": note, "final_over_initial": std[-1] / std[0] if std[0] > 0 else float("nan")}
        if last_toward is not None:
            share = [abs(share_in_destination_third(*film(t), last_toward, plate) - 1 / 3) for t in ts]
            tau2, note2 = relaxation_time(ts, share)
            entry["relaxation_share"] = {"contrast": "|share in previous destination third - 1/3|", "tau_s": tau2,
                                         "tau_min": tau2 / 60, "note": note2}


# ------------------------------------------------------------------ writing


def _json_safe(obj):
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: _json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_json_safe(v) for v in obj]
    if isinstance(obj, np.generic):
        return _json_safe(obj.item())
    return obj


_ARROW = {1: "+1 (toward)", -1: "−1 (away)", 0: "0 (none)"}


def _stage_table(rep: dict) -> list[str]:
    ion = rep.get("ion", "Li")
    lines = [f"| # | stage | action | t (s) | drive | {ion} motion | displacement (mm) | {ion} in destination third "
             "(start → end) | bleaching front from source end (mm, end) | relaxation τ | note |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for i, e in enumerate(rep["stages"], 1):
        drive = []
        if e.get("current_A") is not None:
            drive.append(f"{e['current_A']:g} A")
        if e.get("voltage_V") is not None:
            drive.append(f"{e['voltage_V']:.3g} V")
        if e.get("conductor"):
            drive.append(f"in {e['conductor']}")
        share = e.get("share_destination_third")
        front = (e.get("front_from_source_mm") or [None])[-1]
        rel = e.get("relaxation")
        tau = "–"
        if rel:
            tau = (f"{rel['tau_s']:.3g} s ({rel['tau_min']:.3g} min)" if math.isfinite(rel["tau_s"])
                   else f"none: {rel['note']}")
        t0, t1 = e.get("t_start_s"), e.get("t_end_s")
        lines.append("| " + " | ".join([
            str(i), str(e.get("label") or e.get("name") or ""), str(e.get("action")), f"{_fmt(t0, 'g')}–{_fmt(t1, 'g')}",
            " ".join(drive) or "–", _ARROW.get(e.get("direction"), "–"), _fmt(e.get("displacement_mm"), ".3g"),
            f"{share[0]:.3f} → {share[1]:.3f}" if share else "–", _fmt(front, ".3g"), tau, e.get("note", ""),
        ]) + " |")
    return lines


def _gallery(path: Path, prefix: str = "") -> list[str]:
    figs = sorted(list((path / "figures").glob("*.png")) + list((path / "figures").glob("*.gif")))
    figs = [f for f in figs if not (prefix == "" and f.name == "variants.png")]
    if not figs:
        return ["(no figures)"]
    return [f"![{f.stem}]({prefix}figures/{f.name})" for f in figs]


def _case_markdown(rep: dict, path: Path, level: int = 1, prefix: str = "", title: str | None = None) -> list[str]:
    h = "#" * level
    ion = rep.get("ion", "Li")
    out = [f"{h} {title or rep['case']}", ""]
    if rep.get("description"):
        out += [rep["description"], ""]
    out += [f"{h}# The paper's observation", "", f"> {rep['observation']}" if rep.get("observation") else "(none given)", ""]
    out += [f"{h}# Measured", ""]
    out += [f"Film: {'2D x–z section' if rep.get('dimension') == 2 else '3D' if rep.get('dimension') == 3 else 'no transport'}. "
            + " ".join(t.format(ion=ion, motion_tol=MOTION_TOL, relax_floor=RELAX_FLOOR) for t in report_texts()), ""]
    if rep["stages"]:
        out += [*_stage_table(rep), ""]
        for i, e in enumerate(rep["stages"], 1):
            if e.get("front_from_source_mm"):
                pairs = ", ".join(f"{t:g} s: {_fmt(f, '.3g')}" for t, f in zip(e["output_times_s"], e["front_from_source_mm"], strict=False))
                out += [f"- stage {i} front (mm from source end): {pairs}"]
            elif e.get("displacement_series_mm"):
                pairs = ", ".join(f"{t:g} s: {d:.3g}" for t, d in zip(e["output_times_s"], e["displacement_series_mm"], strict=False))
                out += [f"- stage {i} {ion} centroid displacement toward the destination (mm): {pairs}"]
            if e.get("monitor_dT_first"):
                t0, t1 = e["output_times_s"][:2]
                out += [f"- stage {i} transmittance of the monitors, first output ({t0:g} → {t1:g} s): "
                        f"{_monitor_words(e['monitor_dT_first'])}; whole stage: {_monitor_words(e['monitor_dT_stage'])}"]
            if e.get("relaxation_share"):
                r = e["relaxation_share"]
                out += [f"- stage {i} relaxation of {r['contrast']}: "
                        + (f"τ = {r['tau_s']:.3g} s ({r['tau_min']:.3g} min)" if math.isfinite(r["tau_s"]) else f"none ({r['note']})")]
        out += [""]
    tf = rep.get("track_following")
    if tf:
        out += [f"Track following (seed 000 Fig. 5c), first to last output: {100 * tf['share_near']:.0f} % of the "
                f"change of θ̄ lies within {TRACK_NEAR * 1e3:g} mm of the track; beyond {TRACK_FAR * 1e3:g} mm it is at "
                f"most {tf['off_track_ratio']:.2f} of the largest; along the track from its start pad θ̄ changes by "
                f"{tf['change_at_start']:+.3f} at the start and {tf['change_at_end']:+.3f} at the end, rank "
                f"correlation with arc length {tf['rank_with_arc']:.3f} (with x {tf['rank_with_x']:.2f}).", ""]
    cons = rep.get("conservation_error_rel")
    out += [f"{ion} conservation (relative error): {_fmt(cons, '.2e')}", ""]
    if math.isfinite(rep.get("thickness_change_max_nm", math.nan)):
        out += [f"Largest film thickness change (Δh = β·x·h, β = {rep['chemical_expansion']:g}): "
                f"{rep['thickness_change_max_nm']:.3g} nm", ""]
    for n in rep.get("notes", []):
        out += [f"- {n}"]
    out += ["", f"{h}# Figures", "", *_gallery(path, prefix), ""]
    return out


def _final_stage(rep: dict, actions) -> dict | None:
    hits = [e for e in rep["stages"] if e.get("action") in actions]
    return hits[-1] if hits else None


def _save(plt, fig, path: Path, name: str) -> Path:
    """Write ``fig`` to ``path/figures/name`` (laid out, 120 dpi) and close it."""
    fig.tight_layout()
    out = path / "figures" / name
    out.parent.mkdir(exist_ok=True)
    fig.savefig(out, dpi=120)
    plt.close(fig)
    return out


def _current_sweep_figure(path: Path, rows: list[dict]) -> Path | None:
    """Seed 000 Fig. 5b: the Li centroid's displacement (mm) and mean rate (mm/min) over the last
    drive against the drive current, one series without and one with Joule heating, when the
    variants differ in current (None otherwise). A line through the origin fitted to the unheated
    points shows how far the motion is proportional to I."""
    pts = [r for r in rows if r.get("current_A") is not None and r.get("displacement_mm") is not None]
    if len({abs(r["current_A"]) for r in pts}) < 2:
        return None
    plt = _plt()

    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for heated, style, name in ((False, "o-", "ohmic drop only"), (True, "s--", "with Joule heating")):
        series = sorted((abs(r["current_A"]), r["displacement_mm"], r["rate_mm_per_min"]) for r in pts
                        if bool(r.get("heated")) == heated)
        if not series:
            continue
        current, moved, rate = (np.array([v if v is not None else np.nan for v in col]) for col in zip(*series, strict=True))
        axes[0].plot(current * 1e3, moved, style, label=name)
        axes[1].plot(current * 1e3, rate, style, label=name)
        if not heated and len(current) > 1:
            slope = float(current @ moved / (current @ current))
            grid = np.linspace(0, current.max(), 20)
            axes[0].plot(grid * 1e3, slope * grid, ":", color="0.5", label="∝ I (fit)")
    axes[0].set(xlabel="drive current (mA)", ylabel="Li centroid displacement (mm)", title="distance")
    axes[1].set(xlabel="drive current (mA)", ylabel="mean rate (mm/min)", title="rate over the drive")
    for ax in axes:
        ax.legend(fontsize=8)
        ax.grid(alpha=0.3)
    return _save(plt, fig, path, "current_sweep.png")


def _monitor_variants_figure(path: Path, names: list[str]) -> Path | None:
    """Write :func:`monitor_variants_plot` of the variants ``names`` under ``path``."""
    optics = {}
    for n in names:
        try:
            optics[n] = json.loads((path / n / "summary.json").read_text()).get("optics") or {}
        except (OSError, ValueError):
            continue
    fig = monitor_variants_plot(optics)
    return None if fig is None else _save(_plt(), fig, path, "monitor_variants.png")


def monitor_variants_plot(optics: dict[str, dict]):
    """Seed 000 Fig. 5a: the transmittance of each optics monitor every variant has, against time
    (min), one line per variant; ``optics`` maps a variant to its summary's ``optics`` entry. None
    when the variants share no monitor."""
    common = set.intersection(*(set(o.get("monitors") or {}) for o in optics.values())) if optics else set()
    shared = [m for m in next(iter(optics.values()), {}).get("monitors", {}) if m in common]
    if not shared:
        return None
    plt = _plt()
    fig, axes = plt.subplots(1, len(shared), figsize=(5 * len(shared) + 2, 4), squeeze=False)
    for ax, monitor in zip(axes[0], shared, strict=True):
        for n, o in optics.items():
            ax.plot(np.asarray(o["times_s"]) / 60.0, o["monitors"][monitor], marker="o", ms=3, label=n)
        ax.set(xlabel="t (min)", ylabel=f"transmittance T of square {monitor}", title=f"square {monitor}")
        ax.grid(alpha=0.3)
    axes[0][-1].legend(fontsize=7)
    return fig


def _variants_figure(path: Path, names: list[str], reports: dict) -> Path | None:
    plt = _plt()

    from femion.results.reader import open_result

    fig, ax = plt.subplots(figsize=(7, 4))
    drew = False
    for name in names:
        rep = reports.get(name)
        if not rep or "series" not in rep:
            continue
        if rep.get("dimension") == 2:
            res = open_result(path / name)
            xy, th = res.film_filling(res.times[-1])
            ax.plot(xy[:, 0] * 1e3, th, label=name)
            ax.set(xlabel="x (mm)", ylabel="mean filling θ̄", title=f"final profile, t = {res.times[-1]:g} s")
        else:
            c = np.asarray(rep["series"]["centroid_m"])
            e = _final_stage(rep, _MOVING)
            toward = e.get("toward_xy_m") if e else None
            u = np.asarray(toward) - c[0] if toward is not None else np.array([1.0, 0.0])
            u = u / np.linalg.norm(u)
            ax.plot(rep["series"]["t_s"], (c - c[0]) @ u * 1e3, label=name)
            ax.set(xlabel="t (s)", ylabel="Li centroid displacement (mm)", title="toward the last drive's destination")
        drew = True
    if not drew:
        plt.close(fig)
        return None
    ax.legend()
    return _save(plt, fig, path, "variants.png")


@one_blas_thread
def write_report(result_path) -> Path:
    """Write ``report.md`` and ``report.json`` into the results directory; return the .md path.

    A parent of variants (summary.json has ``variants``) gets one report: a comparison table
    (last drive stage's direction, displacement, destination-third share, front; last relax
    stage's τ), ``figures/variants.png`` and a section per variant.
    """
    from femion.results.reader import open_result

    path = Path(result_path)
    summary = open_result(path).summary  # checked: OutputError naming the file if damaged
    if summary.get("variants"):
        rep, md = variants_report(path, summary)
    else:
        rep = case_report(path)
        md = _case_markdown(rep, path)
    (path / "report.json").write_text(json.dumps(_json_safe(rep), indent=2) + "\n")
    out = path / "report.md"
    out.write_text("\n".join(md).rstrip() + "\n")
    return out


def variants_report(path: Path, summary: dict) -> tuple[dict, list[str]]:
    """The report of a parent of variants and its markdown lines (see :func:`write_report`)."""
    names = list(summary["variants"])
    reports = {}
    for n in names:
        try:
            reports[n] = case_report(path / n)
        except Exception as exc:
            reports[n] = {"case": n, "stages": [], "notes": [f"no report: {type(exc).__name__}: {exc}"]}
    rep = {"case": summary.get("case", path.name), "description": summary.get("description", ""),
           "observation": summary.get("observation", ""), "variants": reports,
           "comparison": [_comparison_row(n, reports[n]) for n in names]}
    md = [f"# {rep['case']} (variants)", ""]
    if rep["description"]:
        md += [rep["description"], ""]
    md += ["## The paper's observation", "", f"> {rep['observation']}" if rep["observation"] else "(none given)", ""]
    md += ["## Comparison (last drive/reverse stage; last relax stage)", "",
           "| variant | host | ion | motion | displacement (mm) | share in destination third | front from source (mm) | relaxation τ (s) | ΔT max (K) | conservation |",
           "|---|---|---|---|---|---|---|---|---|---|"]
    for c in rep["comparison"]:
        md.append(f"| {c['variant']} | {c['host'] or '–'} | {c['ion']} | {_ARROW.get(c['direction'], '–')} | {_fmt(c['displacement_mm'])} | "
                  f"{_fmt(c['share_destination_third'], '.3f')} | {_fmt(c['front_from_source_mm'])} | "
                  f"{_fmt(c['tau_relax_s'])} | {_fmt(c['max_temperature_rise_K'], '.3g')} | "
                  f"{_fmt(c['conservation_error_rel'], '.2e')} |")
    md.append("")
    figures = (  # (draw, what it is, the caption above it or None)
        (lambda: _variants_figure(path, names, reports), "comparison", None),
        (lambda: _current_sweep_figure(path, rep["comparison"]), "current-sweep",
         "Distance and rate against the drive current (seed 000 Fig. 5b):"),
        (lambda: _monitor_variants_figure(path, names), "monitor comparison",
         "The monitors' transmittance in time, one line per variant (seed 000 Fig. 5a, square T):"),
    )
    for draw, what, caption in figures:
        try:
            fig = draw()
        except Exception as exc:  # a figure that cannot be drawn is said, not fatal to the report
            md += [f"(no {what} figure: {type(exc).__name__}: {exc})", ""]
            continue
        if fig is not None:
            md += ([caption, ""] if caption else []) + [f"![{fig.stem.replace('_', ' ')}](figures/{fig.name})", ""]
    for n in names:
        md += _case_markdown(reports[n], path / n, level=2, prefix=f"{n}/", title=f"Variant {n}")
    return rep, md


def _comparison_row(name: str, r: dict) -> dict:
    """A variant's last drive/reverse and last relaxing stage, side by side with the others."""
    e = _final_stage(r, _MOVING) or {}
    x = _final_stage(r, _RELAXING) or {}
    return {"variant": name, "host": r.get("host"), "ion": r.get("ion", "Li"), "direction": e.get("direction"),
            "displacement_mm": e.get("displacement_mm"),
            "share_destination_third": (e.get("share_destination_third") or [None, None])[1],
            "front_from_source_mm": (e.get("front_from_source_mm") or [None])[-1],
            "tau_relax_s": (x.get("relaxation") or {}).get("tau_s"),
            "max_temperature_rise_K": r.get("max_temperature_rise_K"),
            "conservation_error_rel": r.get("conservation_error_rel"),
            "current_A": r.get("current_A"), "heated": r.get("heated", False),
            "rate_mm_per_min": _rate(e)}


def _rate(stage: dict) -> float | None:
    """Mean speed of the Li centroid over a moving stage (mm/min): displacement / duration."""
    d, t0, t1 = stage.get("displacement_mm"), stage.get("t_start_s"), stage.get("t_end_s")
    if d is None or t0 is None or t1 is None or t1 <= t0:
        return None
    return d / ((t1 - t0) / 60.0)
