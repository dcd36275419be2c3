"""A case run several ways: each variant into ``out/<variant>``, a summary and a report comparing them."""

from __future__ import annotations

from pathlib import Path

from femion._dolfinx import MPI
from femion.config import dump_case
from femion.results.writer import ResultWriter
from femion.runner import interrupts
from femion.runner.pipeline import run_case
from femion.runner.stops import RunStopped, Stop
from femion.runner.summary import variants_summary


def run_variants(base, runs, out: str | Path, comm: MPI.Comm = MPI.COMM_WORLD, *, progress: bool = True):
    """Run every variant of a case into ``out/<variant>``; ``out`` gets a summary listing them and
    a report comparing them. A variant whose transport stops keeps its last good state: ``out``
    then holds the variants run so far and the stopped one, and :class:`RunStopped` says which.
    Any other failure leaves no ``out``."""
    with ResultWriter(out, comm) as writer:
        results, done, stopped = run_each(runs, writer.path, comm, progress)
        writer.write_text("case.yaml", dump_case(base))
        writer.write_json("summary.json", variants_summary(base, runs, done, stopped, comm))
        writer.on_root(lambda: _report(writer.path), "cannot write the report")
        if stopped is not None:
            writer.status = stopped[1].status
    if stopped is not None:
        name, stop = stopped
        later = [n for n, _ in runs if n not in done]
        stop.reason = f"variant {name}: {stop.reason}" + (f"; not run: {', '.join(later)}" if later else "")
        raise stop.error(writer.path / name if name in done else writer.path)
    return writer.path, results


def run_each(runs, path: Path, comm, progress: bool):
    """Run the variants into ``path/<name>`` until one stops: (results, names written, None or
    (name, Stop) of the one that stopped)."""
    results, done = [], []
    for name, case in runs:
        done.append(name)
        try:
            results.append(run_case(case, path / name, comm, progress=progress))
        except RunStopped as exc:
            return results, done, (name, Stop(exc.status, exc.reason, exc.signum))
        except interrupts.Interrupted as exc:  # before the variant had anything to keep
            done.pop()
            return results, done, (name, Stop("interrupted", str(exc), exc.signum))
    return results, done, None


def _report(path: Path) -> None:
    from femion.post.report import write_report

    write_report(path)
