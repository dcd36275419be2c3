"""femion from Python: load a case, run it, open what it wrote.

    import femion

    case = femion.load_case("cases/fig4_model_III.yaml", quick=True, set={"transport.outputs": 2})
    result = femion.run(case, out="results/model_III")   # a femion.Result
    xy, theta = result.film_filling(result.times[-1])    # the film's mean filling at the plan nodes
    grid = result.field("theta", result.times[-1])       # a pyvista grid

``load_case`` takes what ``femion run`` takes (a case file, or the same content as a mapping),
applies ``quick`` (the case's ``quick:`` block) and ``set`` (key paths, as ``--set``), and
validates every run the case asks for: a bad case raises :class:`femion.config.CaseError` with the
one line the command prints. ``run`` runs it (every variant of it, as ``femion run`` does) and
returns the result directory opened; on several MPI ranks every rank calls it and gets it.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from femion.config import Case, load_runs, parse_overrides, read_case_mapping, validate_case
from femion.config.loading import _apply_mapping

__all__ = ["load_case", "run"]


def _override_mapping(overrides: Mapping[str, Any] | Sequence[str] | None) -> dict[str, Any]:
    if overrides is None:
        return {}
    if isinstance(overrides, Mapping):
        return {str(k): v for k, v in overrides.items()}
    if isinstance(overrides, str):
        overrides = [overrides]
    return parse_overrides(list(overrides))


def load_case(source: str | Path | Mapping, set: Mapping[str, Any] | Sequence[str] | None = None,
              quick: bool = False) -> Case:
    """The case of a case file (or of its content as a mapping), checked as ``femion run`` checks it.

    ``set``: key paths and values, ``{"drives[0].current": "0.1 A"}`` or ``["drives[0].current=0.1 A"]``
    (values as in the case file, units included). ``quick``: apply the case's ``quick:`` overrides.
    A case with ``variants`` keeps them; ``set`` wins over a variant's own value of the same key,
    as ``--set`` does. Raises :class:`femion.config.CaseError` (one line) on a bad case.
    """
    sets = _override_mapping(set)
    raw = copy.deepcopy(dict(source)) if isinstance(source, Mapping) else read_case_mapping(source)
    base, _ = load_runs(raw, sets, quick=quick)  # every run checked; errors named as the command names them
    resolved = copy.deepcopy(raw)
    if quick:
        _apply_mapping(resolved, base.quick, "quick")
    _apply_mapping(resolved, sets, "set")
    if base.variants:  # --set wins over a variant's own value: carry it into each variant
        resolved["variants"] = {name: {**dict(v), **sets} for name, v in base.variants.items()}
    return validate_case(resolved)


def run(case: Case | str | Path | Mapping, out: str | Path | None = None, comm=None, *, progress: bool = False,
        variant: str | None = None, resume: str | Path | None = None):
    """Run ``case`` (a :class:`Case` from :func:`load_case`, or what it takes) into ``out`` (default
    ``results/<case name>``) and return the result, opened (:class:`femion.results.reader.Result`;
    for a case with variants the parent, whose ``variant(name)`` opens each run).

    ``comm``: the MPI communicator (default COMM_WORLD; every rank calls ``run``). ``progress``: the
    rich progress display on rank 0 (off by default, for notebooks and scripts; logging still
    reports). ``variant``: run only that variant. ``resume``: continue an interrupted run from the
    results directory it left. Raises :class:`femion.runner.stops.RunStopped` when the transport
    stopped early (its last good state kept) and CaseError on a bad case.
    """
    from femion._dolfinx import MPI
    from femion.config import dump_case
    from femion.results.reader import open_result
    from femion.runner.interrupts import stop_on_signals
    from femion.runner.pipeline import run_all

    if not isinstance(case, Case):
        case = load_case(case)
    import yaml

    raw = yaml.safe_load(dump_case(case))
    base, runs = load_runs(raw, [], quick=False, variant=variant)
    comm = MPI.COMM_WORLD if comm is None else comm
    target = Path(out) if out is not None else Path("results") / base.name
    with stop_on_signals():
        where, _ = run_all(base, runs, target, comm, progress=progress, resume=resume)
    return open_result(where)
