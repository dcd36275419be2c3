"""Restart: a transport run stopped by a signal continues with --resume to the same final state,
on 1 and 2 ranks and across rank counts; a checkpoint never continues another case."""

from __future__ import annotations

import json
import signal
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from femion import cli

from ..conftest import CASES, problems
from .test_lifecycle import femion_proc

CASE = str(CASES / "strip_transport.yaml")
ARGS = ["--no-progress", "--set", "mesh.cell_size=2 mm", "--set", "output.figures=false",
        "--set", "transport.duration=60 s", "--set", "transport.steps.max=0.5 s", "--set", "transport.outputs=3"]


def final_theta(result: Path):
    """(points, θ) of the oxide at the last output time, sorted by coordinates."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
    from compare_results import theta_at_last_time

    return theta_at_last_time(result)


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    """The reference: the same run from start to end without a stop."""
    out = tmp_path_factory.mktemp("resume") / "reference"
    assert cli.main(["run", CASE, "--out", str(out), *ARGS]) == 0
    return out


def interrupted_run(out: Path, np_: int, rows: int = 40, args=ARGS) -> Path:
    """The run, stopped by SIGINT once transport.csv has ``rows`` rows (before the 20 s output)."""
    proc = femion_proc("run", CASE, "--out", str(out), *args, np_=np_)
    deadline = time.time() + 240
    while time.time() < deadline:
        csvs = list(out.parent.glob(f"{out.name}.partial-*/transport.csv"))
        if csvs and len(csvs[0].read_text().splitlines()) > rows:
            break
        if proc.poll() is not None:
            raise AssertionError(f"the run ended before it could be interrupted: {proc.communicate()}")
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=240)
    assert proc.returncode == 130, stderr
    return out


@pytest.mark.parametrize("np_stop, np_resume", [(1, 1), (1, 2), (2, 1)])
def test_a_resumed_run_ends_in_the_state_of_an_uninterrupted_one(uninterrupted, tmp_path, np_stop, np_resume):
    """Interrupted mid-stage on np_stop ranks, resumed on np_resume ranks: the same output times,
    steps and CSV rows as the uninterrupted run, and the final θ equal to it within 1e-10."""
    stopped = interrupted_run(tmp_path / "stopped", np_stop)
    assert json.loads((stopped / "summary.json").read_text())["transport"]["status"] == "interrupted"
    out = tmp_path / "resumed"
    proc = femion_proc("run", CASE, "--out", str(out), *ARGS, "--resume", str(stopped), np_=np_resume)
    _, stderr = proc.communicate(timeout=300)
    assert proc.returncode == 0, stderr
    ref = json.loads((uninterrupted / "summary.json").read_text())
    got = json.loads((out / "summary.json").read_text())
    assert got["transport"]["status"] == "completed" and got["mpi_size"] == np_resume
    assert got["times_s"] == pytest.approx(ref["times_s"], rel=1e-12)
    assert got["transport"]["steps"] == ref["transport"]["steps"]
    assert got["transport"]["newton_iterations"] == ref["transport"]["newton_iterations"]
    assert got["conservation_error_rel"] <= 1e-10
    rows = (out / "transport.csv").read_text().splitlines()
    assert len(rows) == len((uninterrupted / "transport.csv").read_text().splitlines())
    (p_ref, th_ref), (p_got, th_got) = final_theta(uninterrupted), final_theta(out)
    assert np.allclose(p_ref, p_got, rtol=0, atol=1e-12)
    assert np.abs(th_got - th_ref).max() < 1e-10
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == [f"output_{k}.npz" for k in range(4)]


def test_a_checkpoint_does_not_continue_another_case(uninterrupted, tmp_path, capsys):
    """--resume with other settings than the checkpoint's, or from a directory without checkpoints,
    exits 2 with one line and writes nothing."""
    assert cli.main(["run", CASE, "--out", str(tmp_path / "a"), *ARGS, "--set", "drives[0].current=0.1 A",
                     "--resume", str(uninterrupted)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "written for another case" in err[0]
    (tmp_path / "empty").mkdir()
    assert cli.main(["run", CASE, "--out", str(tmp_path / "b"), *ARGS, "--resume", str(tmp_path / "empty")]) == 2
    assert "holds no checkpoints" in capsys.readouterr().err
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def test_a_killed_run_leaves_a_partial_directory_that_resumes(uninterrupted, tmp_path):
    """A run killed outright (SIGKILL: no chance to stop cleanly) leaves <out>.partial-<pid>: the next
    run into <out> reports it and keeps it, and --resume from it reaches the uninterrupted final state."""
    out = tmp_path / "res"
    proc = femion_proc("run", CASE, "--out", str(out), *ARGS)
    deadline = time.time() + 240
    while time.time() < deadline:
        csvs = list(tmp_path.glob("res.partial-*/transport.csv"))
        if csvs and len(csvs[0].read_text().splitlines()) > 60:  # past the 20 s output
            break
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.05)
    proc.kill()
    proc.communicate(timeout=60)
    (partial,) = tmp_path.glob("res.partial-*")
    resumed = femion_proc("run", CASE, "--out", str(out), *ARGS, "--resume", str(partial))
    _, stderr = resumed.communicate(timeout=300)
    assert resumed.returncode == 0, stderr
    assert f"{partial} is left over from an earlier run that did not finish; kept" in stderr
    assert partial.is_dir()
    (_, th_ref), (_, th_got) = final_theta(uninterrupted), final_theta(out)
    assert np.abs(th_got - th_ref).max() < 1e-10
    got = json.loads((out / "summary.json").read_text())
    assert got["times_s"] == pytest.approx(json.loads((uninterrupted / "summary.json").read_text())["times_s"])


HEATED = [*ARGS, "--set", "transport.mechanism.thermal=true"]


def test_a_heated_run_resumes_with_its_temperature(tmp_path, capsys):
    """With Joule heating the checkpoints hold the stack's temperature: interrupted and resumed, the
    run ends with the uninterrupted run's θ (1e-10) and temperature rise; a heated checkpoint does
    not continue an unheated run (exit 2, one line)."""
    ref = tmp_path / "reference"
    assert cli.main(["run", CASE, "--out", str(ref), *HEATED]) == 0
    stopped = interrupted_run(tmp_path / "stopped", 1, args=HEATED)
    out = tmp_path / "resumed"
    proc = femion_proc("run", CASE, "--out", str(out), *HEATED, "--resume", str(stopped))
    _, stderr = proc.communicate(timeout=300)
    assert proc.returncode == 0, stderr
    got, want = (json.loads((p / "summary.json").read_text()) for p in (out, ref))
    assert got["transport"]["steps"] == want["transport"]["steps"]
    assert got["thermal"]["max_temperature_rise_K"] == pytest.approx(want["thermal"]["max_temperature_rise_K"],
                                                                     rel=1e-10)
    assert np.abs(final_theta(out)[1] - final_theta(ref)[1]).max() < 1e-10
    assert cli.main(["run", CASE, "--out", str(tmp_path / "cold"), *ARGS, "--resume", str(stopped)]) == 2
    err = problems(capsys.readouterr().err)
    assert len(err) == 1 and ("written for another case" in err[0] or "Joule heating" in err[0]), err
