"""A run without a terminal says how it advances: plain rank-0 log lines in simulated time, -q
silences them, and the last line gives the transport's outcome."""

from __future__ import annotations

import re

import pytest

from femion import cli
from femion.runner import progress

from ..conftest import CASES

ARGS = ["--set", "transport.duration=20 s", "--set", "transport.outputs=2", "--set", "output.figures=false"]


@pytest.mark.mpi
def test_a_batch_run_logs_simulated_time_and_ends_with_the_transport_outcome(shared_tmp, comm, capsys, monkeypatch):
    monkeypatch.setattr(progress, "LOG_EVERY", 0.0)  # a line after every step
    assert cli.main(["run", str(CASES / "strip_transport.yaml"), "--out", str(shared_tmp / "a"), *ARGS]) == 0
    out, err = capsys.readouterr()
    if comm.rank != 0:  # only rank 0 speaks
        assert err == "" and out == ""
        return
    lines = [line for line in err.splitlines() if line.startswith("femion: stage 1/1")]
    assert lines[0] == "femion: stage 1/1 drive +0.2 A bottom_ito: t = 0 to 20 s"
    times = [float(m[1]) for m in (re.search(r"t = (\S+) of 20 s", line) for line in lines) if m]
    assert len(times) >= 3 and times == sorted(times) and times[-1] == pytest.approx(20.0)
    assert "Newton iterations" in lines[-1] and lines[-1].startswith("femion: stage 1/1 drive +0.2 A bottom_ito done")
    last = [line for line in out.splitlines() if line.startswith("transport ")]
    assert last and re.match(r"transport completed at t = 20 s: \d+ steps, \d+ Newton iterations, Li conservation "
                             r"\S+; .*Li centroid moved \S+ mm toward the current's end", last[0])


def test_quiet_runs_log_nothing(tmp_path, capsys):
    assert cli.main(["-q", "run", str(CASES / "strip_transport.yaml"), "--out", str(tmp_path / "q"), *ARGS]) == 0
    assert "femion: stage" not in capsys.readouterr().err


def test_petsc_options_reach_the_transport_solver(tmp_path, capfd):
    """transport.petsc_options (here from the command line) go to the Newton solver's PETSc objects."""
    assert cli.main(["run", str(CASES / "strip_transport.yaml"), "--out", str(tmp_path / "p"), *ARGS,
                     "--set", "transport.duration=2 s", "--set", "transport.outputs=1",
                     "--set", "transport.petsc_options={ksp_view: null}"]) == 0
    out = capfd.readouterr().out
    assert re.search(r"KSP Object: \(femion_transport_\w+\) 1 MPI process", out) and "type: mumps" in out
