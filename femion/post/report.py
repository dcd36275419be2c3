"""Measured outcomes of a run beside the paper's observation (``femion report RESULT_DIR``).

Everything is read from a results directory (see :mod:`femion.results.reader`) through
``Result.film_filling(t)``: the film's mean filling θ̄ (oxide Li / c_max, averaged over the film
thickness) at each plan node. The film is uniform in thickness, so θ̄ integrated over the plan
is proportional to the film's Li. All lengths in m, times in s (the markdown also shows mm, min).

Metrics (pure numpy functions, each defined in its docstring):

- :func:`li_centroid`: the Li-weighted plan centroid.
- :func:`motion_direction`: did that centroid move toward the end the current flows to (+1),
  away from it (−1), or by less than 1e-3 of the plate length (0)?
- :func:`share_in_destination_third`: fraction of the film's Li in the third of the plate
  nearest that end (1/3 for a uniform film).
- :func:`front_position`: the far edge of the depleted (bleached) region that grows from the
  source end, θ̄ = θ_ref/2.
- :func:`relaxation_time`: e-folding time of a decaying contrast (std of θ̄) in a relax stage.

:func:`case_report` applies them stage by stage (``summary["protocol"]``; a run without one is
one drive stage over the whole run) and :func:`write_report` writes ``report.md`` and
``report.json`` (and, for a parent of variants, one report comparing them).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

#: |centroid displacement| below this fraction of the plate length counts as no motion
MOTION_TOL = 1e-3
#: relaxation fit uses the outputs whose contrast is above this fraction of the initial one
RELAX_FLOOR = 0.05

_MOVING = ("drive", "reverse")
_RELAXING = ("relax", "remove_electrolyte")


# ------------------------------------------------------------------ metrics


def _line_axis(xy: np.ndarray) -> int | None:
    """The varying axis (0 = x, 1 = y) if the nodes lie on a line parallel to it, else None."""
    span = np.ptp(xy, axis=0)
    big = span.max()
    if big == 0.0:
        return None
    return int(np.argmax(span)) if span.min() <= 1e-9 * big else None


def node_weights(xy) -> np.ndarray:
    """Plan measure (length or area, m or m²) lumped to each node.

    Nodes on a line (a 2D x–z section: all y equal) get trapezoid weights along the line,
    (x_{i+1} − x_{i−1})/2, half a spacing at the ends. Nodes spread over the plan get a third of
    the area of each Delaunay triangle they belong to (lumped P1 mass). Equal weights otherwise.
    """
    xy = np.asarray(xy, dtype=float).reshape(-1, 2)
    n = len(xy)
    if n < 2:
        return np.ones(n)
    axis = _line_axis(xy)
    if axis is not None:
        order = np.argsort(xy[:, axis], kind="stable")
        d = np.diff(xy[order, axis])
        w_sorted = np.r_[d, 0.0] / 2 + np.r_[0.0, d] / 2
        w = np.empty(n)
        w[order] = w_sorted
        return w
    if np.ptp(xy, axis=0).max() == 0.0:
        return np.ones(n)
    try:
        from scipy.spatial import Delaunay

        tri = Delaunay(xy)
        p = xy[tri.simplices]
        area = 0.5 * np.abs((p[:, 1, 0] - p[:, 0, 0]) * (p[:, 2, 1] - p[:, 0, 1])
                            - (p[:, 2, 0] - p[:, 0, 0]) * (p[:, 1, 1] - p[:, 0, 1]))
        w = np.bincount(tri.simplices.ravel(), weights=np.repeat(area / 3, 3), minlength=n)
        if np.all(np.isfinite(w)) and w.sum() > 0:
            return w
    except Exception:  # scipy missing or a degenerate set: fall back to equal weights
        pass
    return np.ones(n)


def weighted_mean_std(xy, theta) -> tuple[float, float]:
    """Plan mean and standard deviation of θ̄ with the :func:`node_weights` measure."""
    w = node_weights(xy)
    th = np.asarray(theta, dtype=float)
    mean = float(np.sum(w * th) / np.sum(w))
    return mean, float(np.sqrt(np.sum(w * (th - mean) ** 2) / np.sum(w)))


def li_centroid(xy, theta) -> np.ndarray:
    """Li-weighted plan centroid (m): Σ wᵢθ̄ᵢ xyᵢ / Σ wᵢθ̄ᵢ, wᵢ from :func:`node_weights`.

    NaN if the film holds no Li.
    """
    xy = np.asarray(xy, dtype=float).reshape(-1, 2)
    m = node_weights(xy) * np.asarray(theta, dtype=float)
    total = m.sum()
    if not total > 0:
        return np.full(2, np.nan)
    return (m[:, None] * xy).sum(axis=0) / total


def motion_direction(xy0, th0, xy1, th1, toward_xy, tol: float | None = None) -> tuple[int, float]:
    """Direction of the Li motion between two states, and its size.

    d = (c₁ − c₀)·û, with cᵢ the :func:`li_centroid` of each state and û the unit vector from c₀
    to ``toward_xy`` (the plan point the current flows to). Returns (+1, d) if d > tol (Li moved
    toward that end), (−1, d) if d < −tol (away), (0, d) otherwise. ``tol`` defaults to
    ``MOTION_TOL`` (1e-3) × the largest plan extent of the nodes (the plate length). d in m.
    """
    xy0 = np.asarray(xy0, dtype=float).reshape(-1, 2)
    c0, c1 = li_centroid(xy0, th0), li_centroid(xy1, th1)
    u = np.asarray(toward_xy, dtype=float) - c0
    norm = np.linalg.norm(u)
    if not np.isfinite(norm) or norm == 0.0:
        return 0, float("nan")
    d = float(np.dot(c1 - c0, u / norm))
    if tol is None:
        tol = MOTION_TOL * float(np.ptp(xy0, axis=0).max())
    return (1 if d > tol else -1 if d < -tol else 0), d


def destination_axis(toward_xy, plate) -> tuple[int, float]:
    """The plate axis (0 = x, 1 = y) and sign (±1) pointing from the plate centre to
    ``toward_xy``: the axis along which it lies farthest out relative to the half-length."""
    (x0, x1), (y0, y1) = plate
    centre = np.array([(x0 + x1) / 2, (y0 + y1) / 2])
    half = np.array([(x1 - x0) / 2, (y1 - y0) / 2])
    rel = (np.asarray(toward_xy, dtype=float) - centre) / np.where(half > 0, half, np.inf)
    axis = int(np.argmax(np.abs(rel)))
    if rel[axis] == 0.0:
        raise ValueError(f"toward point {list(toward_xy)} is the plate centre: no destination end")
    return axis, float(np.sign(rel[axis]))


def _pl_integral(x: np.ndarray, f: np.ndarray, lo: float, hi: float) -> float:
    """∫_lo^hi of the piecewise-linear interpolant of f(x) (x ascending), clipped to the data."""
    lo, hi = max(lo, x[0]), min(hi, x[-1])
    if hi <= lo:
        return 0.0
    inside = (x > lo) & (x < hi)
    xs = np.r_[lo, x[inside], hi]
    return float(np.trapezoid(np.interp(xs, x, f), xs))


def share_in_destination_third(xy, theta, toward_xy, plate) -> float:
    """Fraction of the film's Li in the third of the plate nearest ``toward_xy``.

    The axis is the plate axis from the centre toward ``toward_xy`` (:func:`destination_axis`,
    x for a strip driven end to end); the destination third is the last third of the plate's
    length along it. A section (nodes on a line along that axis) is integrated exactly as the
    piecewise-linear θ̄; plan node sets by the midpoint rule on a 300 × 120 grid of the linear
    (Delaunay) interpolant of θ̄. Uniform θ̄ → 1/3.
    ``plate`` = ((x_min, x_max), (y_min, y_max)) in m.
    """
    xy = np.asarray(xy, dtype=float).reshape(-1, 2)
    th = np.asarray(theta, dtype=float)
    axis, sign = destination_axis(toward_xy, plate)
    lo, hi = plate[axis]
    third = (hi - lo) / 3
    cut_lo, cut_hi = (hi - third, hi) if sign > 0 else (lo, lo + third)
    if _line_axis(xy) == axis:
        order = np.argsort(xy[:, axis], kind="stable")
        x, f = xy[order, axis], th[order]
        total = _pl_integral(x, f, x[0], x[-1])
        return _pl_integral(x, f, cut_lo, cut_hi) / total if total > 0 else float("nan")
    try:  # plan set: midpoint rule on 300 × 120 cells of the P1 (Delaunay) interpolant
        from scipy.interpolate import LinearNDInterpolator

        (x0, x1), (y0, y1) = plate
        n = (300, 120) if axis == 0 else (120, 300)
        gx = x0 + (np.arange(n[0]) + 0.5) * (x1 - x0) / n[0]
        gy = y0 + (np.arange(n[1]) + 0.5) * (y1 - y0) / n[1]
        X, Y = np.meshgrid(gx, gy, indexing="ij")
        f = LinearNDInterpolator(xy, th)(X, Y)
        s = X if axis == 0 else Y
        ok = np.isfinite(f)
        total = f[ok].sum()
        return float(f[ok & (s >= cut_lo) & (s <= cut_hi)].sum() / total) if total > 0 else float("nan")
    except ImportError:
        m = node_weights(xy) * th
        s = xy[:, axis]
        inside = (s >= cut_lo) & (s <= cut_hi)
        return float(m[inside].sum() / m.sum()) if m.sum() > 0 else float("nan")


def front_position(x, theta, theta_ref: float, source: str = "min") -> float:
    """Position x (m) of the bleaching front in a profile θ̄(x).

    The depleted region is where θ̄ < θ_ref/2 (the film has lost more than half its Li;
    θ_ref is normally the film's mean filling when the stage starts). Scanning from the source
    end (``source`` = "min": from the smallest x, "max": from the largest), the front is the
    first point where θ̄ rises back to θ_ref/2 after the scan has entered the depleted region,
    linearly interpolated between nodes. Leading nodes that are not depleted (e.g. an uncoated
    strip at the source end) are skipped. NaN if θ̄ never falls below θ_ref/2; the far end if
    the film is depleted all the way.
    """
    x = np.asarray(x, dtype=float)
    th = np.asarray(theta, dtype=float)
    order = np.argsort(x, kind="stable")
    if source == "max":
        order = order[::-1]
    elif source != "min":
        raise ValueError(f"source must be 'min' or 'max', got {source!r}")
    x, th = x[order], th[order]
    half = theta_ref / 2
    below = th < half
    if not below.any():
        return float("nan")
    i = int(np.argmax(below))
    rest = np.flatnonzero(~below[i:])
    if rest.size == 0:
        return float(x[-1])
    j = i + int(rest[0])
    return float(x[j - 1] + (half - th[j - 1]) * (x[j] - x[j - 1]) / (th[j] - th[j - 1]))


def relaxation_time(times, contrast, floor: float = RELAX_FLOOR) -> tuple[float, str]:
    """e-folding time τ (s) of a decaying contrast c(t) ≥ 0, e.g. the std of θ̄ in a relax stage.

    Least-squares fit of ln c = a − (t − t₀)/τ over the outputs with c > ``floor`` × c(t₀)
    (5 %: the tail near the noise or a residual floor is left out). If only the first point is
    above the floor, the first two outputs give τ = (t₁ − t₀)/ln(c₀/c₁). Returns (τ, note): the
    note says how τ was found, or, with τ = NaN, why there is none (fewer than two outputs, no
    initial contrast, or the contrast did not decay: fitted slope ≥ 0 or a fall of less than
    5 % over the fitted span).
    """
    t = np.asarray(times, dtype=float)
    c = np.asarray(contrast, dtype=float)
    if t.size < 2:
        return float("nan"), "fewer than two outputs in the stage"
    if not (np.isfinite(c[0]) and c[0] > 0):
        return float("nan"), "no initial contrast"
    keep = np.isfinite(c) & (c > floor * c[0])
    if keep.sum() < 2:
        if c[1] > 0 and c[1] < c[0]:
            tau = (t[1] - t[0]) / math.log(c[0] / c[1])
            return float(tau), f"from the first two outputs (contrast fell below {floor:.0%} by the second)"
        return float("nan"), "contrast vanished by the second output: tau shorter than the output interval"
    tk = t[keep] - t[0]
    slope, _ = np.polyfit(tk, np.log(c[keep]), 1)
    if slope >= 0 or math.exp(slope * (tk[-1] - tk[0])) > 1 - floor:
        return float("nan"), (f"did not decay (contrast changed by {c[keep][-1] / c[0] - 1:+.1%} "
                               f"over {tk[-1] - tk[0]:g} s)")
    return float(-1.0 / slope), f"least-squares fit of ln(contrast) over {int(keep.sum())} outputs"


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
    s = res.summary
    tr = s.get("transport") or {}
    rep = {
        "case": s.get("case", res.path.name), "description": s.get("description", ""),
        "observation": s.get("observation", ""), "dimension": tr.get("dimension"),
        "conservation_error_rel": s.get("conservation_error_rel"), "stages": [], "notes": [],
        "ion": (tr or {}).get("exchanging") or "Li",
        "host": (tr or {}).get("oxide_material"),
    }
    if not rep["description"] or not rep["observation"]:
        try:  # older summaries: take them from the resolved case
            import yaml

            case = yaml.safe_load((res.path / "case.yaml").read_text()) or {}
            rep["description"] = rep["description"] or case.get("description", "")
            rep["observation"] = rep["observation"] or case.get("observation", "")
        except Exception:
            pass
    times = res.times
    if not times or "theta" not in (tr.get("fields") or {}).get("oxide", []):
        rep["notes"].append("no transport outputs: no Li metrics")
        return rep
    protocol = s.get("protocol")
    if not protocol:
        protocol = _default_stages(res)
        rep["notes"].append("no protocol in summary.json: the whole run is read as one drive stage")
    plate = res.plate_bounds
    cache: dict[float, tuple[np.ndarray, np.ndarray]] = {}

    def film(t):
        if t not in cache:
            cache[t] = res.film_filling(t)
        return cache[t]

    # whole-run series
    try:
        series = {"t_s": [], "centroid_m": [], "mean_filling": [], "std_filling": []}
        for t in times:
            xy, th = film(t)
            m, sd = weighted_mean_std(xy, th)
            series["t_s"].append(t)
            series["centroid_m"].append(li_centroid(xy, th).tolist())
            series["mean_filling"].append(m)
            series["std_filling"].append(sd)
        rep["series"] = series
    except OutputError:  # a damaged field file: say which, rather than a report without metrics
        raise
    except Exception as exc:
        rep["notes"].append(f"cannot read the film filling: {exc}")
        return rep

    last_toward = None
    for st in protocol:
        entry = {k: st.get(k) for k in ("name", "action", "label", "t_start_s", "t_end_s", "conductor",
                                        "current_A", "voltage_V", "toward_xy_m")}
        rep["stages"].append(entry)
        try:
            _stage_metrics(entry, film, times, plate, rep["dimension"], last_toward)
        except Exception as exc:  # a report must not stop a finished run
            entry["note"] = f"could not compute: {type(exc).__name__}: {exc}"
        if entry["action"] in _MOVING and entry.get("toward_xy_m") is not None:
            last_toward = entry["toward_xy_m"]
    return rep


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
            f"Direction: the {ion}-weighted centroid moved toward (+1) or away from (−1) the end the current flows to, "
            f"0 if by less than {MOTION_TOL:g} of the plate length. Bleaching front: where θ̄ rises back to half the "
            "stage-start mean filling, scanning from the source end. Relaxation τ: e-folding time of the std of θ̄ "
            f"(least-squares fit of its log over the outputs above {RELAX_FLOOR:.0%} of the initial value).", ""]
    if rep["stages"]:
        out += _stage_table(rep) + [""]
        for i, e in enumerate(rep["stages"], 1):
            if e.get("front_from_source_mm"):
                pairs = ", ".join(f"{t:g} s: {_fmt(f, '.3g')}" for t, f in zip(e["output_times_s"], e["front_from_source_mm"]))
                out += [f"- stage {i} front (mm from source end): {pairs}"]
            elif e.get("displacement_series_mm"):
                pairs = ", ".join(f"{t:g} s: {d:.3g}" for t, d in zip(e["output_times_s"], e["displacement_series_mm"]))
                out += [f"- stage {i} {ion} centroid displacement toward the destination (mm): {pairs}"]
            if e.get("relaxation_share"):
                r = e["relaxation_share"]
                out += [f"- stage {i} relaxation of {r['contrast']}: "
                        + (f"τ = {r['tau_s']:.3g} s ({r['tau_min']:.3g} min)" if math.isfinite(r["tau_s"]) else f"none ({r['note']})")]
        out += [""]
    cons = rep.get("conservation_error_rel")
    out += [f"{ion} conservation (relative error): {_fmt(cons, '.2e')}", ""]
    for n in rep.get("notes", []):
        out += [f"- {n}"]
    out += ["", f"{h}# Figures", ""] + _gallery(path, prefix) + [""]
    return out


def _final_stage(rep: dict, actions) -> dict | None:
    hits = [e for e in rep["stages"] if e.get("action") in actions]
    return hits[-1] if hits else None


def _variants_figure(path: Path, names: list[str], reports: dict) -> Path | None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

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
    fig.tight_layout()
    out = path / "figures" / "variants.png"
    out.parent.mkdir(exist_ok=True)
    fig.savefig(out, dpi=120)
    plt.close(fig)
    return out


def write_report(result_path) -> Path:
    """Write ``report.md`` and ``report.json`` into the results directory; return the .md path.

    A parent of variants (summary.json has ``variants``) gets one report: a comparison table
    (last drive stage's direction, displacement, destination-third share, front; last relax
    stage's τ), ``figures/variants.png`` and a section per variant.
    """
    from femion.results.reader import open_result

    path = Path(result_path)
    summary = open_result(path).summary  # checked: OutputError naming the file if damaged
    names = summary.get("variants")
    if names:
        names = list(names)
        reports = {}
        for n in names:
            try:
                reports[n] = case_report(path / n)
            except Exception as exc:
                reports[n] = {"case": n, "stages": [], "notes": [f"no report: {type(exc).__name__}: {exc}"]}
        rep = {"case": summary.get("case", path.name), "description": summary.get("description", ""),
               "observation": summary.get("observation", ""), "variants": reports, "comparison": []}
        for n in names:
            r = reports[n]
            e = _final_stage(r, _MOVING) or {}
            x = _final_stage(r, _RELAXING) or {}
            rep["comparison"].append({
                "variant": n, "host": r.get("host"), "ion": r.get("ion", "Li"), "direction": e.get("direction"), "displacement_mm": e.get("displacement_mm"),
                "share_destination_third": (e.get("share_destination_third") or [None, None])[1],
                "front_from_source_mm": (e.get("front_from_source_mm") or [None])[-1],
                "tau_relax_s": (x.get("relaxation") or {}).get("tau_s"),
                "conservation_error_rel": r.get("conservation_error_rel")})
        md = [f"# {rep['case']} (variants)", ""]
        if rep["description"]:
            md += [rep["description"], ""]
        md += ["## The paper's observation", "", f"> {rep['observation']}" if rep["observation"] else "(none given)", ""]
        md += ["## Comparison (last drive/reverse stage; last relax stage)", "",
               "| variant | host | ion | motion | displacement (mm) | share in destination third | front from source (mm) | relaxation τ (s) | conservation |",
               "|---|---|---|---|---|---|---|---|---|"]
        for c in rep["comparison"]:
            md.append(f"| {c['variant']} | {c['host'] or '–'} | {c['ion']} | {_ARROW.get(c['direction'], '–')} | {_fmt(c['displacement_mm'])} | "
                      f"{_fmt(c['share_destination_third'], '.3f')} | {_fmt(c['front_from_source_mm'])} | "
                      f"{_fmt(c['tau_relax_s'])} | {_fmt(c['conservation_error_rel'], '.2e')} |")
        md.append("")
        try:
            fig = _variants_figure(path, names, reports)
        except Exception as exc:
            fig = None
            md += [f"(no comparison figure: {type(exc).__name__}: {exc})", ""]
        if fig is not None:
            md += [f"![variants](figures/{fig.name})", ""]
        for n in names:
            md += _case_markdown(reports[n], path / n, level=2, prefix=f"{n}/", title=f"Variant {n}")
    else:
        rep = case_report(path)
        md = _case_markdown(rep, path)
    (path / "report.json").write_text(json.dumps(_json_safe(rep), indent=2) + "\n")
    out = path / "report.md"
    out.write_text("\n".join(md).rstrip() + "\n")
    return out
