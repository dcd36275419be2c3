"""Checkpoints of a transport run and resuming from them (``femion run CASE --resume DIR``).

A run writes ``checkpoints/output_<k>.npz`` at every output time k and ``checkpoints/stop.npz``
where it stopped (interrupt or collapsed step): the problem's full state (unknowns and BDF
history, keyed by input node, :mod:`femion.results.checkpoint`) and in ``meta`` the time, the
stage, the stepper's next step and its history, the recorder's position (output times, CSV rows,
the conservation monitor) and a hash of the resolved case. Resuming rebuilds the mesh from the
case (the same input numbering on any number of ranks), rewrites the field series of the earlier
output times from their checkpoints, copies the CSV rows, restores the latest state and carries on
exactly as the uninterrupted run would have.
"""

from __future__ import annotations

import hashlib
import shutil
from dataclasses import dataclass
from pathlib import Path

from femion.config import CaseError
from femion.results.checkpoint import CheckpointError, read_checkpoint, restore_arrays, write_checkpoint

FOLDER = "checkpoints"


def case_hash(case_text: str) -> str:
    """A checkpoint belongs to one resolved case (its dump, SI with units)."""
    return hashlib.sha256(case_text.encode()).hexdigest()[:16]


def _arrays(snapshot: dict) -> dict:
    """{key: (space name, dof values)} of the unknowns and the history levels."""
    return {f"{key}/{n}": (n, snapshot[key][n]) for key in ("u", "u_old", "u_older", "u_oldest") for n in snapshot[key]}


class Checkpointer:
    """Writes a run's checkpoints into ``<writer.path>/checkpoints`` (collective)."""

    def __init__(self, writer, problem, stepper, recorder, case_text: str, comm, heating=None):
        self.folder = Path(writer.path) / FOLDER
        self.problem, self.stepper, self.recorder, self.comm = problem, stepper, recorder, comm
        self.heating = heating  # femion.runner.heating.Heating: its temperature is part of the state
        self.hash = case_hash(case_text)
        writer.on_root(lambda: self.folder.mkdir(exist_ok=True), f"cannot create {self.folder}")

    def save(self, kind: str, stage: int, stage_done: bool) -> Path:
        """``kind`` "output" (at the latest output time) or "stop"; ``stage``: the stage's index,
        ``stage_done``: whether the state is the end of that stage."""
        snap = self.problem.snapshot()
        k = len(self.recorder.times) - 1
        meta = {"case_hash": self.hash, "kind": kind, "output": k, "t": snap["t"],
                "have_older": bool(snap["have_older"]), "past_dt": snap["past_dt"],
                "stage": stage, "stage_done": stage_done,
                "stepper": self.stepper.state(), "recorder": self.recorder.state()}
        name = f"output_{k}.npz" if kind == "output" else "stop.npz"
        spaces, arrays = dict(self.problem.spaces), _arrays(snap)
        if self.heating is not None:
            heat_spaces, heat_arrays, meta["heat"] = self.heating.checkpoint()
            spaces.update(heat_spaces)
            arrays.update(heat_arrays)
        return write_checkpoint(self.folder / name, self.comm, spaces, arrays, meta)


@dataclass
class Resume:
    """The checkpoints of an earlier run of the same case, to continue from (``--resume DIR``)."""

    source: Path

    @classmethod
    def find(cls, source: str | Path) -> Resume:
        src = Path(source)
        if not (src / FOLDER).is_dir() or not any((src / FOLDER).glob("*.npz")):
            raise CaseError(f"--resume: {src} holds no checkpoints (a femion transport run writes them in "
                            f"{FOLDER}/ at every output time and where it stopped)")
        return cls(src)

    def latest(self) -> Path:
        stop = self.source / FOLDER / "stop.npz"
        if stop.is_file():
            return stop
        return max((self.source / FOLDER).glob("output_*.npz"), key=lambda p: int(p.stem.split("_")[1]))

    def restore(self, problem, stepper, recorder, case_text: str, comm, out_folder: Path, heating=None) -> dict:
        """Rebuild the field series of the earlier output times, copy the CSV rows and the
        checkpoints, then put the latest state into ``problem``, ``stepper``, ``recorder`` (and the
        stack's temperature into ``heating``). Returns the latest checkpoint's meta (``stage``,
        ``stage_done``, ``t``)."""
        try:
            meta, raw = read_checkpoint(self.latest(), comm)
        except CheckpointError as exc:
            raise CaseError(f"--resume: {exc}") from None
        if meta["case_hash"] != case_hash(case_text):
            raise CaseError(f"--resume: the checkpoints in {self.source} were written for another case or other "
                            f"settings (resume with the same case file, --set and --quick)")
        if (heating is not None) != ("heat" in meta):
            raise CaseError(f"--resume: the checkpoints in {self.source} were written "
                            f"{'without' if heating is not None else 'with'} Joule heating")
        for k in range(meta["output"] + 1):
            m, r = self._load(self.source / FOLDER / f"output_{k}.npz", comm)
            self._put(problem, m, r, heating)
            recorder.rewrite_output(m["t"])
        self._put(problem, meta, raw, heating)
        stepper.load_state(meta["stepper"])
        recorder.load_state(meta["recorder"], self.source / "transport.csv")
        if comm.rank == 0:
            out_folder.mkdir(exist_ok=True)
            for k in range(meta["output"] + 1):
                shutil.copy2(self.source / FOLDER / f"output_{k}.npz", out_folder / f"output_{k}.npz")
        comm.barrier()
        return meta

    @staticmethod
    def _load(path: Path, comm) -> tuple[dict, dict]:
        try:
            return read_checkpoint(path, comm)
        except CheckpointError as exc:
            raise CaseError(f"--resume: {exc}") from None

    @staticmethod
    def _put(problem, meta: dict, raw: dict, heating=None) -> None:
        spaces = dict(problem.spaces)
        if heating is not None:
            spaces.update(heating.spaces())
        try:
            values = restore_arrays(raw, meta, spaces)
        except CheckpointError as exc:
            raise CaseError(f"--resume: {exc}") from None
        if heating is not None:
            heating.restore(values.pop("heat/T"), meta["heat"])
        snap = {"t": meta["t"], "have_older": meta["have_older"], "past_dt": meta.get("past_dt", []),
                "u": {}, "u_old": {}, "u_older": {}, "u_oldest": {}}
        for key, arr in values.items():
            part, name = key.split("/")
            snap[part][name] = arr
        problem.restore(snap)
