"""How a run ends early: :class:`Stop` (inside the run) and :class:`RunStopped` (raised to the caller)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from femion.runner import interrupts
from femion.transport.stepping import StepFailure


class RunStopped(RuntimeError):
    """The transport stopped early (``status`` "stopped": the step collapsed; "interrupted": by
    signal ``signum``); the results directory ``path`` holds the last good state."""

    def __init__(self, reason: str, path: Path, status: str = "stopped", signum: int = 0):
        super().__init__(f"{reason} (results with the last good state: {path})")
        self.reason, self.path, self.status, self.signum = reason, path, status, signum

    @property
    def exit_status(self) -> int:
        """1 for a solver failure, 128 + signal number for an interrupt (the shell's convention)."""
        return 128 + self.signum if self.signum else 1


@dataclass
class Stop:
    """Why a run ended early: ``status`` "stopped" (the step collapsed) or "interrupted"."""

    status: str
    reason: str
    signum: int = 0

    @classmethod
    def of(cls, exc: StepFailure | interrupts.Interrupted) -> Stop:
        """The stop a collapsed time step or an interrupt during the transport means."""
        if isinstance(exc, interrupts.Interrupted):
            return cls("interrupted", str(exc), exc.signum)
        return cls("stopped", f"transport stopped at t = {exc.t_last_good:g} s: {exc}")

    def error(self, path: Path) -> RunStopped:
        return RunStopped(self.reason, path, self.status, self.signum)
