"""A run never loses data: results directories, interrupts, locks and one-rank failures.

Each test drives `femion run` as a user would (in-process, or as a subprocess it can signal) and
checks what is on disk afterwards.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from femion import cli
from femion.results.writer import MANIFEST, RunLock

from ..conftest import CASES, problems

FAST = ["--no-progress", "--set", "mesh.cell_size=2 mm", "--set", "output.figures=false"]
MPIEXEC = Path(sys.executable).parent / "mpiexec"


def run(out, *extra, case="strip_drive.yaml"):
    return cli.main(["run", str(CASES / case), "--out", str(out), *FAST, *extra])


def femion_proc(*args, np_=1, **kw):
    """`femion ARGS` as a subprocess (under mpiexec when np_ > 1), output captured."""
    cmd = [sys.executable, "-m", "femion", *args]
    if np_ > 1:
        cmd = [str(MPIEXEC), "-n", str(np_), *cmd]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kw)


def error_lines(stderr: str) -> list[str]:
    return [ln for ln in stderr.splitlines() if ln.startswith("femion: error")]


def test_result_writer_commits_with_its_status_and_abandons_on_an_error(tmp_path):
    """``with ResultWriter(out) as w``: leaving the block commits with ``w.status`` (an incomplete
    status beside an earlier result); an exception in it leaves neither a result nor a lock."""
    from femion._dolfinx import MPI
    from femion.results.writer import ResultWriter, read_manifest

    for status in ("completed", "stopped"):
        with ResultWriter(tmp_path / "res", MPI.COMM_SELF) as w:
            w.write_text("note.txt", status)
            w.status = status
        assert read_manifest(w.path)["status"] == status and (w.path / "note.txt").read_text() == status
    assert w.path.name.startswith("res.stopped-")  # beside the completed one, which stays
    assert (tmp_path / "res" / "note.txt").read_text() == "completed"

    def fails_half_way():
        with ResultWriter(tmp_path / "other", MPI.COMM_SELF) as w:
            w.write_text("note.txt", "half")
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        fails_half_way()
    assert not (tmp_path / "other").exists() and not list(tmp_path.glob("other.*"))


def test_out_holding_foreign_files_is_never_deleted(tmp_path, capsys):
    """--out naming a directory with a summary.json among the user's own files refuses with exit 2
    and deletes nothing (a result is recognised by femion's manifest, not by a file name)."""
    out = tmp_path / "mine"
    (out / "sub").mkdir(parents=True)
    (out / "summary.json").write_text("{}")
    (out / "notes.txt").write_text("three weeks of measurements")
    (out / "sub" / "data.csv").write_text("1,2\n")
    assert run(out) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "not a femion result" in err[0]
    assert (out / "notes.txt").read_text() == "three weeks of measurements"
    assert (out / "sub" / "data.csv").is_file()
    assert not list(tmp_path.glob("mine.*"))  # no partial directory, no lock left


def test_a_result_with_files_added_by_the_user_is_not_replaced(tmp_path, capsys):
    """A femion result is replaced by a new complete one, but not once the user put a file into it."""
    out = tmp_path / "res"
    assert run(out) == 0
    manifest = json.loads((out / MANIFEST).read_text())
    assert manifest["status"] == "completed" and "summary.json" in manifest["entries"]
    first = (out / MANIFEST).read_text()
    time.sleep(1.1)  # a new manifest has a new time stamp
    assert run(out) == 0
    assert (out / MANIFEST).read_text() != first  # replaced by the new complete result
    (out / "figures" / "my_annotation.png").write_bytes(b"x")
    capsys.readouterr()
    assert run(out) == 2
    assert "femion did not write" in capsys.readouterr().err
    assert (out / "figures" / "my_annotation.png").is_file()


def test_out_in_a_new_directory_tree(tmp_path):
    """--out whose parent directories do not exist yet (results/<case> on a fresh clone) is created."""
    out = tmp_path / "results" / "deeper" / "res"
    assert run(out) == 0
    assert (out / "summary.json").is_file() and not list(out.parent.glob("res.*"))


def test_out_is_a_file(tmp_path, capsys):
    """--out naming a file: exit 2, one line, the file untouched."""
    out = tmp_path / "a_file"
    out.write_text("keep me")
    assert run(out) == 2
    assert len(capsys.readouterr().err.strip().splitlines()) == 1
    assert out.read_text() == "keep me"


def test_a_stopped_run_goes_beside_a_complete_result(tmp_path, capsys):
    """A run whose time step collapses never replaces a complete result: its last good state goes
    to <out>.stopped-<time>, the complete result stays, exit 1 naming where the state went."""
    out = tmp_path / "res"
    assert run(out, "--set", "transport.duration=4 s", "--set", "transport.outputs=1", case="strip_transport.yaml") == 0
    before = json.loads((out / "summary.json").read_text())
    capsys.readouterr()
    code = run(out, "--set", "transport.duration=2 min", "--set", "drives[0].current=3 A",
               "--set", "transport.steps.initial=60 s", "--set", "transport.steps.min=30 s",
               "--set", "transport.steps.max=60 s", case="strip_transport.yaml")
    assert code == 1
    err = problems(capsys.readouterr().err)
    assert len(err) == 1 and "res.stopped-" in err[0]
    assert json.loads((out / "summary.json").read_text()) == before
    (stopped,) = tmp_path.glob("res.stopped-*")
    summary = json.loads((stopped / "summary.json").read_text())
    assert summary["transport"]["status"] == "stopped" and "dt_min" in summary["transport"]["stop_reason"]
    assert json.loads((stopped / MANIFEST).read_text())["status"] == "stopped"
    assert not list(tmp_path.glob("res.partial-*")) and not list(tmp_path.glob("res.lock"))


def test_a_second_run_into_a_locked_directory_is_refused(tmp_path, capsys):
    """While a run holds <out>.lock, another run into <out> exits 2 naming the holder and writes nothing."""
    out = tmp_path / "res"
    lock = RunLock.acquire(out)
    try:
        proc = femion_proc("run", str(CASES / "strip_drive.yaml"), "--out", str(out), *FAST)
        _, stderr = proc.communicate(timeout=300)
        assert proc.returncode == 2
        (line,) = error_lines(stderr)
        assert "being written by another femion run" in line and f"pid {os.getpid()}" in line
        assert not out.exists() and not list(tmp_path.glob("res.partial-*"))
    finally:
        lock.release()
    assert not (tmp_path / "res.lock").exists()


def test_two_runs_started_at_once_cannot_both_succeed(tmp_path):
    """Two runs into one --out started together: one writes the result; the other either ran after
    it (and replaced it whole) or was refused with exit 2. Never two exits 0 with one result lost."""
    out = tmp_path / "res"
    procs = [femion_proc("run", str(CASES / "strip_drive.yaml"), "--out", str(out), *FAST,
                         "--set", f"drives[0].current={i + 1} A") for i in range(2)]
    results = [(*p.communicate(timeout=300), p.returncode) for p in procs]
    codes = sorted(r[2] for r in results)
    assert codes in ([0, 2], [0, 0]), results
    summary = json.loads((out / "summary.json").read_text())
    if codes == [0, 2]:
        winner = next(i for i, r in enumerate(results) if r[2] == 0)
        assert summary["current_A"] == pytest.approx(winner + 1.0)
        assert "being written by another femion run" in results[1 - winner][1]
    assert not list(tmp_path.glob("res.partial-*")) and not (tmp_path / "res.lock").exists()


def _start_long_transport(out: Path, np_: int = 1):
    """A transport run that takes minutes: signalled once its partial directory has a few steps."""
    proc = femion_proc("run", str(CASES / "strip_transport.yaml"), "--out", str(out), *FAST,
                       "--set", "transport.duration=1 h", "--set", "transport.steps.max=0.5 s",
                       "--set", "transport.outputs=2", np_=np_)
    deadline = time.time() + 240
    while time.time() < deadline:
        csvs = list(out.parent.glob(f"{out.name}.partial-*/transport.csv"))
        if csvs and len(csvs[0].read_text().splitlines()) > 4:
            return proc
        if proc.poll() is not None:
            raise AssertionError(f"run ended early: {proc.communicate()}")
        time.sleep(0.2)
    proc.kill()
    raise AssertionError("transport did not start within 240 s")


@pytest.mark.parametrize("sig, np_", [(signal.SIGINT, 1), (signal.SIGTERM, 1), (signal.SIGINT, 2)])
def test_a_signal_stops_at_a_step_and_keeps_the_state(tmp_path, sig, np_):
    """SIGINT/SIGTERM during transport (1 and 2 ranks): exit 128+signal with one line, the state at the
    step boundary kept as an "interrupted" result beside the earlier complete result, which is intact;
    never taken for a solver failure (no step cut), no partial directory or lock left behind."""
    out = tmp_path / "res"
    assert run(out) == 0
    before = (out / "summary.json").read_text()
    proc = _start_long_transport(out, np_)
    proc.send_signal(sig)
    _, stderr = proc.communicate(timeout=240)
    assert proc.returncode == 128 + sig, stderr
    (line,) = error_lines(stderr)
    assert f"interrupted by {signal.Signals(sig).name} at t = " in line
    assert (out / "summary.json").read_text() == before
    (kept,) = tmp_path.glob("res.interrupted-*")
    summary = json.loads((kept / "summary.json").read_text())
    tr = summary["transport"]
    assert tr["status"] == "interrupted" and 0 < tr["final_time_s"] < 3600
    assert summary["times_s"][-1] == pytest.approx(tr["final_time_s"])  # the state at the stop is written
    assert summary["mpi_size"] == np_
    rows = (kept / "transport.csv").read_text().splitlines()
    dts = [float(r.split(",")[2]) for r in rows[2:]]
    assert min(dts) > 0.01  # no halving cascade: the signal was not taken for a failed step
    assert json.loads((kept / MANIFEST).read_text())["status"] == "interrupted"
    assert not list(tmp_path.glob("res.partial-*")) and not (tmp_path / "res.lock").exists()


_FAULT_SCRIPT = """
import sys, errno, pathlib
from femion._dolfinx import MPI
from femion import cli
rank = MPI.COMM_WORLD.rank
mode = sys.argv[1]
if mode == "disk-full-on-rank-0" and rank == 0:
    real = pathlib.Path.write_text
    def full(self, *a, **k):
        if self.name == "summary.json":
            raise OSError(errno.ENOSPC, "No space left on device", str(self))
        return real(self, *a, **k)
    pathlib.Path.write_text = full
if mode == "bug-on-rank-1" and rank == 1:
    import femion.runner.pipeline as s
    def broken(*a, **k):
        raise RuntimeError("a bug on one rank")
    s.solve_conductors = broken
sys.exit(cli.main(["run", sys.argv[2], "--out", sys.argv[3]] + sys.argv[4:]))
"""


@pytest.mark.parametrize("mode, code, words", [
    ("disk-full-on-rank-0", 2, "No space left on device"),
    ("bug-on-rank-1", 1, "rank 1 failed: RuntimeError: a bug on one rank"),
])
def test_a_failure_on_one_rank_ends_every_rank(tmp_path, mode, code, words):
    """Under mpiexec -n 2 a failure on one rank alone (rank 0 cannot write, a bug on rank 1) ends the
    whole job promptly with one line, instead of leaving the other rank waiting for ever."""
    out = tmp_path / "res"
    t0 = time.time()
    proc = subprocess.run([str(MPIEXEC), "-n", "2", sys.executable, "-c", _FAULT_SCRIPT, mode,
                           str(CASES / "strip_drive.yaml"), str(out), *FAST],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == code, proc.stderr
    lines = error_lines(proc.stderr)
    assert len(lines) == 1 and words in lines[0], proc.stderr
    assert time.time() - t0 < 200
    if mode == "disk-full-on-rank-0":
        assert not out.exists() and not list(tmp_path.glob("res.partial-*"))


@pytest.fixture
def small_tmpfs(tmp_path):
    """A 400 KiB and a read-only tmpfs under tmp_path (root only; skipped where mounting is not allowed)."""
    mounts = {}
    for name, opts in (("tiny", "size=400k"), ("ro", "ro,size=64k")):
        point = tmp_path / name
        point.mkdir()
        if subprocess.run(["mount", "-t", "tmpfs", "-o", opts, "tmpfs", str(point)], capture_output=True).returncode:
            pytest.skip("cannot mount a tmpfs here")
        mounts[name] = point
    yield mounts
    for point in mounts.values():
        subprocess.run(["umount", "-l", str(point)], capture_output=True)


@pytest.mark.parametrize("np_", [1, 2])
def test_read_only_and_full_file_systems(small_tmpfs, np_):
    """--out on a read-only file system or on one that fills up during the run: exit 2 with one line
    on 1 and 2 ranks, no hang, nothing half-written left on the full one."""
    for where, words in ((small_tmpfs["ro"] / "res", ("Read-only file system",)),
                         (small_tmpfs["tiny"] / "res", ("No space left on device", "KiB free there"))):
        proc = femion_proc("run", str(CASES / "strip_drive.yaml"), "--out", str(where), *FAST,
                           "--set", "mesh.cell_size=1 mm", np_=np_)
        _, stderr = proc.communicate(timeout=300)
        lines = error_lines(stderr)
        assert proc.returncode == 2 and len(lines) == 1 and any(w in lines[0] for w in words), stderr
        assert not where.exists()
        assert list(where.parent.iterdir()) == []
