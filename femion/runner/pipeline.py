"""Run a case: geometry → conductor currents → magnetic field → (transport) → results.

The run is a list of named stages (:data:`PIPELINE`), each a small function of the
:class:`Run` it fills in: mesh, conductor, magnetic field, transport, write fields, figures. A stop
requested between the first three leaves nothing behind; once the transport runs, a stop keeps
the last good state (:class:`~femion.runner.stops.RunStopped`). This module reads no files and
parses no options: the CLI hands it a validated :class:`~femion.config.schema.Case` and an output
directory; variants are :mod:`femion.runner.variants`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from femion._dolfinx import MPI
from femion.conductor import SheetSolution
from femion.config import Case, CaseError, dump_case
from femion.geometry import mesh as geometry
from femion.geometry import plan
from femion.results.writer import ResultWriter
from femion.runner import interrupts
from femion.runner.progress import Stages
from femion.runner.sheets import magnetic_field, solve_conductors
from femion.runner.stops import RunStopped, Stop
from femion.runner.summary import run_summary
from femion.runner.transport import run_transport

__all__ = ["PIPELINE", "STAGES", "Run", "RunResult", "RunStopped", "run_case"]


@dataclass
class RunResult:
    path: Path
    summary: dict
    sheets: list[SheetSolution] = field(default_factory=list)


@dataclass
class Run:
    """One run as it goes through the pipeline: the case, where it writes, what each stage made."""

    case: Case
    comm: MPI.Comm
    writer: ResultWriter
    spec: object = None  # the case's layer stack (femion.geometry.plan)
    plan_mesh: object = None
    solutions: list = field(default_factory=list)  # SheetSolution of each drive
    sheets: list = field(default_factory=list)  # their sheet currents
    magnetic: object = None  # femion.runner.sheets.MagneticField
    transport: dict | None = None  # summary entries of the transport
    stop: Stop | None = None
    summary: dict | None = None
    resume: object = None  # femion.runner.checkpoints.Resume: continue an earlier run's transport
    progress: Stages | None = None  # the run's progress display (the transport adds simulated time)


def mesh_stage(run: Run) -> None:
    run.spec = plan.stack_spec(run.case)
    run.plan_mesh = geometry.build_plan_mesh(run.spec, run.comm)


def conductor_stage(run: Run) -> None:
    run.solutions = solve_conductors(run.case, run.plan_mesh)


def magnetic_field_stage(run: Run) -> None:
    run.sheets = [s.panels() for s in run.solutions]
    run.magnetic = magnetic_field(run.case, run.plan_mesh, run.sheets)


def transport_stage(run: Run) -> None:
    run.transport, run.stop = run_transport(run.case, run.writer, run.spec, run.sheets, run.solutions, run.comm,
                                            run.resume, plan_mesh=run.plan_mesh, progress=run.progress)


def write_fields_stage(run: Run) -> None:
    """The conductor stage's fields, B, the sheets, the resolved case and summary.json."""
    case, writer = run.case, run.writer
    fmt = tuple(case.output.fields)
    for s in run.solutions:
        writer.write_function(s.potential, f"phi_s_{s.name}", fmt)
        writer.write_function(s.sheet_current, f"K_{s.name}", fmt)
    if run.magnetic.B is not None:
        writer.write_function(run.magnetic.B, "B_interface", fmt)
    writer.write_sheets([(s.name, p) for s, p in zip(run.solutions, run.sheets, strict=True)],
                        case.magnetic.external_field)
    writer.write_text("case.yaml", dump_case(case))
    run.summary = run_summary(case, run.solutions, run.magnetic, run.plan_mesh, run.comm)
    if run.transport is not None:
        run.summary.update(run.transport)
    writer.write_json("summary.json", run.summary)


def figures_stage(run: Run) -> None:
    """Optics table, figures and report of the written run (rank 0 draws; errors reach every rank)."""
    case, writer, summary = run.case, run.writer, run.summary
    if run.transport is not None:
        from femion.post.optics import write_optics

        summary["optics"] = writer.on_root(lambda: write_optics(writer.path), "cannot compute the film's optics")
        writer.write_json("summary.json", summary)  # the report reads the optics (monitors, Δh) from it

    def draw():
        if case.output.figures:
            from femion.post.figures import render_result

            render_result(writer.path)
        from femion.post.report import write_report

        write_report(writer.path)

    writer.on_root(draw, "cannot draw the figures")


def has_transport(run: Run) -> bool:
    return run.case.transport is not None


def draws_figures(run: Run) -> bool:
    """All is written but the figures: a stop requested now keeps the run as interrupted, undrawn."""
    if run.stop is None and interrupts.requested(run.comm):
        signum = interrupts.requested(run.comm)
        run.stop = Stop("interrupted", str(interrupts.Interrupted(signum, "before the figures")), signum)
    return run.stop is None or run.stop.status != "interrupted"


@dataclass(frozen=True)
class PipelineStage:
    name: str
    work: Callable[[Run], None]
    when: Callable[[Run], bool] = lambda run: True  # run the stage only if this says so
    nothing_written: bool = False  # a stop requested after it leaves nothing behind


PIPELINE = (
    PipelineStage("mesh", mesh_stage, nothing_written=True),
    PipelineStage("conductor", conductor_stage, nothing_written=True),
    PipelineStage("magnetic field", magnetic_field_stage, nothing_written=True),
    PipelineStage("transport", transport_stage, when=has_transport),
    PipelineStage("write fields", write_fields_stage),
    PipelineStage("figures", figures_stage, when=draws_figures),
)
STAGES = [s.name for s in PIPELINE]


def run_case(case: Case, out: str | Path, comm: MPI.Comm = MPI.COMM_WORLD, *, progress: bool = True,
             resume: str | Path | None = None) -> RunResult:
    """Run ``case`` and write its results directory ``out`` (see :mod:`femion.results.writer`);
    ``resume``: a results directory of an earlier run of the same case whose transport stopped
    (interrupted, or a leftover partial directory): continue from its latest checkpoint."""
    from femion.runner.checkpoints import Resume

    t_start = time.perf_counter()
    found = None if resume is None else Resume.find(resume)
    if found is not None and case.transport is None:
        raise CaseError("--resume: this case has no transport to resume")
    with ResultWriter(out, comm) as writer:
        run = Run(case, comm, writer, resume=found)
        names = [s for s in STAGES if s != "transport" or case.transport is not None]
        with Stages(names, comm.rank, enabled=progress) as bar:
            run.progress = bar
            for stage in PIPELINE:
                if not stage.when(run):
                    continue
                with bar.stage(stage.name):
                    stage.work(run)
                if stage.nothing_written:
                    interrupts.check(comm, f"after the {stage.name} stage; nothing written")
        run.summary["stage_time_s"] = bar.times
        run.summary["wall_time_s"] = time.perf_counter() - t_start
        writer.write_json("summary.json", run.summary)
        if run.stop is not None:
            writer.status = run.stop.status
    if run.stop is not None:
        raise run.stop.error(writer.path)
    return RunResult(path=writer.path, summary=run.summary, sheets=run.solutions)


def run_all(base: Case, runs: list, out: str | Path, comm: MPI.Comm = MPI.COMM_WORLD, *, progress: bool = True,
            resume: str | Path | None = None) -> tuple[Path, list[RunResult]]:
    """Run what :func:`femion.config.load_runs` gave: the case itself into ``out``, or each variant
    into ``out/<variant>`` (:func:`femion.runner.variants.run_variants`). (results path, run results)."""
    if len(runs) == 1 and runs[0][0] is None:
        result = run_case(runs[0][1], out, comm, progress=progress, resume=resume)
        return result.path, [result]
    if resume is not None:
        raise CaseError("--resume: resumes a case without variants (a variant's directory holds its checkpoints: "
                        "copy the variant into a case of its own to resume it)")
    from femion.runner.variants import run_variants

    return run_variants(base, runs, out, comm, progress=progress)
