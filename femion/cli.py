"""Command line: ``femion run | mesh | plot | report | validate | info | reproduce | schema | examples``.

Works the same under ``mpiexec -n N femion ...``; only rank 0 prints. A case
that cannot be run exits with status 2 and one line naming the key; a solver
failure exits with status 1 and says why.

Heavy modules (DOLFINx, PETSc, gmsh, the solvers, the figures) are imported inside the
command that needs them: ``femion validate`` loads only the case schema and mpi4py.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

EXIT_BAD_INPUT = 2
EXIT_FAILURE = 1
ABORT_GRACE_S = 1.0  # s between a rank's last error line and MPI_Abort


def _comm():
    from femion._mpi import MPI  # mpi4py only (after the wheel's initialisation): no DOLFINx

    return MPI.COMM_WORLD


class _NotRaised(Exception):
    """Stands in for an exception class whose module was never imported (so it cannot have been raised)."""


def _raised(module: str, name: str) -> type[Exception]:
    """The exception class ``module.name`` if ``module`` is imported, else :class:`_NotRaised`: main()
    catches the solver's and the results' errors by type without importing DOLFINx to name them."""
    loaded = sys.modules.get(module)
    return getattr(loaded, name) if loaded is not None else _NotRaised


def _err(comm, msg: str) -> None:
    if comm is None or comm.rank == 0:
        print(f"femion: error: {msg}", file=sys.stderr, flush=True)


def _load(args):
    from femion.config import load_case

    return load_case(args.case, args.set)


def cmd_validate(args, comm) -> int:
    from femion.config import load_runs

    case, runs = load_runs(args.case, args.set, quick=args.quick, variant=args.variant)  # what `run` loads
    if comm.rank == 0:
        layers = ", ".join(f"{layer.name} ({layer.material})" for layer in case.geometry.layers)
        variants = ", ".join(name for name, _ in runs if name is not None)
        print(f"ok: case {case.name!r}: {layers}; drives: {', '.join(d.conductor for d in case.drives)}"
              + (f"; variants: {variants}" if variants else "") + ("; quick" if args.quick else ""))
    return 0


def cmd_run(args, comm) -> int:
    from femion.config import load_runs
    from femion.runner.interrupts import stop_on_signals
    from femion.runner.pipeline import run_all

    base, runs = load_runs(args.case, args.set, quick=args.quick, variant=args.variant)
    out = Path(args.out) if args.out else Path("results") / base.name
    with stop_on_signals():  # Ctrl-C / SIGTERM: stop at the next step, keep the state
        where, results = run_all(base, runs, out, comm, progress=not args.no_progress, resume=args.resume)
    if comm.rank == 0:
        for result in results:
            s = result.summary
            print(f"case {s['case']}: R = {s['resistance_ohm']:.6g} ohm, I = {s['current_A']:.6g} A, "
                  f"V = {s['voltage_V']:.6g} V, P = {s['joule_power_W']:.6g} W, "
                  f"max |B| at {s['interface']['name']} = {s['max_B_interface_T'] or 0:.6g} T")
            if s.get("transport"):
                print(transport_outcome(result.path, s))
        print(f"results: {where}")
        if (where / "report.md").exists():
            print(f"report: {where / 'report.md'}")
    return 0


def transport_outcome(path: Path, s: dict) -> str:
    """The last line a transport run prints: how it ended, its steps, conservation and how far the
    exchanged ion moved in its last drive (from report.json, when the report was written)."""
    import json

    tr = s["transport"]
    line = (f"transport {tr['status']} at t = {tr['final_time_s']:.6g} s: {tr['steps']} steps, "
            f"{tr['newton_iterations']} Newton iterations, {tr['exchanging']} conservation "
            f"{s.get('conservation_error_rel') or 0:.1e}")
    try:
        report = json.loads((path / "report.json").read_text())
    except (OSError, ValueError):
        return line
    moves = [e for e in report.get("stages", []) if e.get("displacement_mm") is not None]
    if moves:
        e = moves[-1]
        line += (f"; {e['label'] or e['action']}: {tr['exchanging']} centroid moved {e['displacement_mm']:.3g} mm "
                 f"{'toward' if e['displacement_mm'] >= 0 else 'away from'} the current's end")
    return line


def cmd_reproduce(args, comm) -> int:
    """Run every paper case of ``args.cases_dir`` (a case with an ``observation``) into
    ``args.out/<case>``, then write the table of their headline figures (femion.post.reproduce)."""
    import time

    import yaml

    from femion.config import CaseError, load_runs
    from femion.post.reproduce import case_rows, write_table
    from femion.results import on_root
    from femion.runner.interrupts import stop_on_signals
    from femion.runner.pipeline import run_all

    folder = Path(args.cases_dir)
    files = sorted(folder.glob("*.yaml"))
    paper = [f for f in files if (yaml.safe_load(f.read_text()) or {}).get("observation")]
    if args.cases:
        unknown = sorted(set(args.cases) - {f.stem for f in paper})
        if unknown:
            raise CaseError(f"--cases: {', '.join(unknown)} is not a paper case in {folder} "
                            f"(allowed: {', '.join(f.stem for f in paper)})")
        paper = [f for f in paper if f.stem in args.cases]
    if not paper:
        raise CaseError(f"{folder}: no paper cases (case files with an 'observation')")
    out = Path(args.out)
    entries, failed = [], 0
    with stop_on_signals():
        for f in paper:
            base, runs = load_runs(f, [], quick=args.quick)
            t0 = time.perf_counter()
            entry = {"case": f.stem, "observation": base.observation}
            try:
                run_all(base, runs, out / f.stem, comm, progress=not args.no_progress)
                entry["rows"] = case_rows(f.stem, out / f.stem)
            except Exception as exc:  # one case failing does not lose the others
                if comm.size > 1 and not isinstance(exc, CaseError):
                    raise
                failed += 1
                entry["error"] = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            entry["wall_time_s"] = time.perf_counter() - t0
            entries.append(entry)
    on_root(comm, lambda: print(write_table(out, entries)), f"cannot write the table in {out}")
    return EXIT_FAILURE if failed else 0


def cmd_report(args, comm) -> int:
    from femion.post.report import write_report
    from femion.results import on_root
    from femion.results.reader import open_result

    open_result(args.result)  # checks it is a result directory with a complete summary.json
    on_root(comm, lambda: print(write_report(args.result)), f"cannot write the report of {args.result}")
    return 0


def cmd_mesh(args, comm) -> int:
    from femion.geometry import mesh as geometry
    from femion.geometry import plan

    case = _load(args)
    out = Path(args.out) if args.out else Path("meshes")
    if comm.rank == 0:
        out.mkdir(parents=True, exist_ok=True)
    comm.barrier()
    spec = plan.stack_spec(case)
    plan_msh = out / f"{case.name}_plan.msh"
    plan_mesh = geometry.build_plan_mesh(spec, comm, msh_path=plan_msh)
    if case.mesh.dimension == 3:
        stack_msh = out / f"{case.name}_stack.msh"
        stack = geometry.build_stack_mesh(spec, comm, msh_path=stack_msh)
    else:
        stack_msh = out / f"{case.name}_section.msh"
        stack = geometry.build_section_mesh(spec, comm, msh_path=stack_msh)
    from femion.results.writer import write_tagged_mesh

    plan_vtk = write_tagged_mesh(out / f"{case.name}_plan.vtkhdf", plan_mesh.mesh, plan_mesh.cell_tags)
    stack_vtk = write_tagged_mesh(stack_msh.with_suffix(".vtkhdf"), stack.mesh, stack.cell_tags)
    ncell = stack.mesh.topology.index_map(stack.mesh.topology.dim).size_global
    nplan = plan_mesh.mesh.topology.index_map(2).size_global
    comm.barrier()
    if comm.rank == 0:
        from femion.post.figures import render_mesh

        png = render_mesh(plan_vtk, stack_vtk, out / f"{case.name}_mesh.png", case.layer_z(),
                          section=case.mesh.dimension == 2)
        print(f"plan mesh: {nplan} cells -> {plan_msh}")
        print(f"{'3D stack' if case.mesh.dimension == 3 else '2D section'}: {ncell} cells -> {stack_msh}")
        print(f"picture: {png}")
    comm.barrier()  # the picture exists for every rank once mesh returns
    return 0


def cmd_plot(args, comm) -> int:
    from femion.post.figures import render_result
    from femion.results import on_root
    from femion.results.reader import open_result

    open_result(args.result)  # checks it is a result directory with a complete summary.json
    on_root(comm, lambda: [print(p) for p in render_result(args.result)], f"cannot draw {args.result}")
    return 0


def cmd_info(args, comm) -> int:
    from femion._dolfinx import WHEEL, PETSc
    from femion.runner.summary import versions

    if comm.rank == 0:
        for k, v in versions().items():
            print(f"{k:10s} {v}")
        print(f"{'install':10s} {'dolfinx-solver-real wheel' if WHEEL else 'system DOLFINx (conda-forge/container)'}")
        print(f"{'mpi size':10s} {comm.size}")
        pkgs = ["mumps", "superlu_dist", "hypre", "hdf5", "metis", "parmetis", "ptscotch"]
        have = [p for p in pkgs if PETSc.Sys.hasExternalPackage(p)]
        print(f"{'petsc has':10s} {', '.join(have)}")
        print(f"{'no':10s} {', '.join(p for p in pkgs if p not in have) or '-'}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="femion", description=__doc__.splitlines()[0])
    p.add_argument("-v", "--verbose", action="count", default=0, help="more log lines (each pipeline stage)")
    p.add_argument("-q", "--quiet", action="count", default=0, help="warnings and errors only")
    sub = p.add_subparsers(dest="command", required=True)

    def case_cmd(name, help_):
        s = sub.add_parser(name, help=help_)
        s.add_argument("case", help="case file (YAML)")
        s.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                       help="override a case value, e.g. --set drives[0].current='0.1 A'")
        return s

    def runs_args(s, verb):
        s.add_argument("--quick", action="store_true",
                       help="coarse first look: apply the case's 'quick' overrides (about two minutes on one core)")
        s.add_argument("--variant", help=f"{verb} only this one of the case's variants")

    r = case_cmd("run", "run a case and write its results directory")
    r.add_argument("--out", help="results directory (default results/<case name>)")
    r.add_argument("--no-progress", action="store_true",
                   help="no progress bar: plain log lines instead (as without a terminal)")
    r.add_argument("--resume", metavar="DIR",
                   help="continue the transport of an earlier run of the same case (an interrupted or stopped "
                        "result, or a leftover <out>.partial-<pid>) from its latest checkpoint")
    runs_args(r, "run")
    m = case_cmd("mesh", "build a case's meshes (.msh) and a picture of them")
    m.add_argument("--out", help="directory (default meshes/)")
    runs_args(case_cmd("validate", "check a case file (every run that `run` would make) and exit"), "check")
    pl = sub.add_parser("plot", help="redraw the figures of a results directory")
    pl.add_argument("result")
    rp = sub.add_parser("report", help="(re)write report.md: measured outcomes beside the paper's observation")
    rp.add_argument("result")
    sub.add_parser("info", help="versions, MPI size and PETSc packages")
    ex = sub.add_parser("examples", help="copy the shipped paper cases into a directory, to run or edit")
    ex.add_argument("directory", nargs="?", default="femion-cases", help="where to (default ./femion-cases)")
    sc = sub.add_parser("schema", help="print the case file's JSON Schema (or its Markdown reference)")
    sc.add_argument("--markdown", action="store_true", help="the reference of docs/case-reference.md instead")
    rr = sub.add_parser("reproduce", help="run every paper case and write a table of their headline figures")
    rr.add_argument("cases_dir", nargs="?", default="cases", help="folder of case files (default cases/)")
    rr.add_argument("--out", default="results/reproduce", help="results directory (default results/reproduce)")
    rr.add_argument("--cases", nargs="+", metavar="NAME", help="only these paper cases (file names without .yaml)")
    rr.add_argument("--quick", action="store_true", help="each case's 'quick' overrides")
    rr.add_argument("--no-progress", action="store_true", help="no progress bar")
    return p


def cmd_examples(args, comm) -> int:
    """Copy the shipped case files into ``args.directory``."""
    from femion.config import CaseError
    from femion.examples import copy_examples

    if comm.rank == 0:
        try:
            files = copy_examples(Path(args.directory))
        except (FileExistsError, FileNotFoundError) as exc:
            raise CaseError(str(exc)) from None
        print(f"{len(files)} cases in {args.directory}: {', '.join(f.stem for f in files)}")
        print(f"run one: femion run {Path(args.directory) / 'fig4_model_III.yaml'} --quick")
    return 0


def cmd_schema(args, comm) -> int:
    """Print the case file's JSON Schema, or with --markdown the case-file reference."""
    import json

    from femion.config.reference import case_reference, case_schema

    if comm.rank == 0:
        print(case_reference() if args.markdown else json.dumps(case_schema(), indent=2) + "\n", end="")
    return 0


COMMANDS = {"run": cmd_run, "mesh": cmd_mesh, "plot": cmd_plot, "validate": cmd_validate, "info": cmd_info,
            "report": cmd_report, "reproduce": cmd_reproduce, "schema": cmd_schema, "examples": cmd_examples}


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from femion._versions import DolfinxVersionError
    from femion.config import CaseError
    from femion.config.units import UnitError
    from femion.geometry.spec import GeometryError
    from femion.results import OutputError
    from femion.runner.interrupts import Interrupted

    comm = _comm()
    from femion.runner.progress import configure_logging

    configure_logging(args.verbose - args.quiet, comm.rank)

    # The errors caught by type below are raised on every rank alike (collective checks); anything
    # else may have hit one rank only, whose partners would wait for it for ever: under MPI that
    # ends the whole job (MPI_Abort) after one line. The classes of modules that import DOLFINx are
    # looked up as the error is matched (a command that raised one has imported its module), so
    # that `femion validate` never loads DOLFINx.
    try:
        return COMMANDS[args.command](args, comm)
    except (CaseError, UnitError, GeometryError, OutputError) as exc:
        _err(comm, str(exc))
        return EXIT_BAD_INPUT
    except DolfinxVersionError as exc:
        _err(comm, str(exc))
        return EXIT_BAD_INPUT
    except _raised("femion.conductor", "ConductorSolveError") as exc:
        _err(comm, f"solver failed: {exc}")
        return EXIT_FAILURE
    except _raised("femion.runner.stops", "RunStopped") as exc:
        _err(comm, str(exc))
        return exc.exit_status
    except Interrupted as exc:
        _err(comm, str(exc))
        return exc.exit_status
    except KeyboardInterrupt:  # a second Ctrl-C: stop now
        print(f"femion: error: interrupted (rank {comm.rank}); nothing more written", file=sys.stderr, flush=True)
        if comm.size > 1:
            comm.Abort(130)
        return 130
    except Exception as exc:
        if comm.size == 1 or os.environ.get("FEMION_TRACEBACK"):
            raise
        print(f"femion: error: rank {comm.rank} failed: {type(exc).__name__}: {exc} "
              f"(ending all {comm.size} ranks; FEMION_TRACEBACK=1 shows the traceback)", file=sys.stderr, flush=True)
        # MPI_Abort kills the job at once: give mpiexec a moment to forward that line first (it
        # was lost now and then on a loaded machine)
        time.sleep(ABORT_GRACE_S)
        comm.Abort(EXIT_FAILURE)
        return EXIT_FAILURE  # pragma: no cover (Abort does not return)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
