"""Adaptive implicit time stepping that lands exactly on requested times.

The step size follows Newton's behaviour: it grows by ``grow`` after an easy step (at most
``easy_iterations`` Newton iterations), shrinks by ``shrink`` after a hard one, and a failed
step is retried with half the step. Below ``dt_min`` the run stops with
:class:`StepFailure`, the problem left at its last good state. Steps are clipped so that
every time in ``advance_to`` is hit exactly (output times, stage boundaries).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from femion.transport.newton import TransportSolveError


class StepFailure(RuntimeError):
    """No step above dt_min converged; the problem holds the last good state."""

    def __init__(self, message: str, t_last_good: float):
        super().__init__(message)
        self.t_last_good = t_last_good


@dataclass
class StepControl:
    """Step-size policy (seconds)."""

    dt_initial: float = 1.0
    dt_min: float = 1e-6
    dt_max: float = 60.0
    order: int = 2
    grow: float = 1.5
    shrink: float = 0.6
    easy_iterations: int = 4
    hard_iterations: int = 8

    def __post_init__(self):
        if not 0 < self.dt_min <= self.dt_initial <= self.dt_max:
            raise ValueError("need 0 < dt_min <= dt_initial <= dt_max")
        if self.order not in (1, 2):
            raise ValueError("order must be 1 (backward Euler) or 2 (BDF2)")


@dataclass
class StepRecord:
    t: float
    dt: float
    newton_iterations: int
    retries: int


@dataclass
class Stepper:
    """Drives ``problem.step(dt, order, dt_prev)`` forward in time."""

    problem: object
    control: StepControl = field(default_factory=StepControl)
    on_step: object = None  # callable(StepRecord) after each accepted step

    def __post_init__(self):
        self.dt = self.control.dt_initial
        self.dt_prev: float | None = None
        self.history: list[StepRecord] = []

    @property
    def t(self) -> float:
        return self.problem.t

    def state(self) -> dict:
        """What the next step depends on besides the problem's state (for checkpoints)."""
        return {"dt": self.dt, "dt_prev": self.dt_prev,
                "history": [[r.t, r.dt, r.newton_iterations, r.retries] for r in self.history]}

    def load_state(self, state: dict) -> None:
        """Continue from :meth:`state`: the same next step as the run it was taken from."""
        self.dt, self.dt_prev = state["dt"], state["dt_prev"]
        self.history = [StepRecord(t, dt, int(n), int(r)) for t, dt, n, r in state["history"]]

    def advance_to(self, t_end: float) -> None:
        """Take steps until ``problem.t == t_end`` exactly (to round-off)."""
        c = self.control
        eps = 1e-12 * max(abs(t_end), 1.0)
        while self.t < t_end - eps:
            retries = 0
            while True:
                remaining = t_end - self.t
                dt = min(self.dt, remaining, c.dt_max)
                if remaining - dt < 0.2 * dt:  # avoid a sliver of a last step before t_end
                    dt = remaining if remaining <= 1.2 * self.dt else remaining / 2
                try:
                    its = self.problem.step(dt, order=c.order, dt_prev=self.dt_prev)
                    break
                except TransportSolveError as exc:
                    retries += 1
                    self.dt = dt * 0.5
                    if self.dt < c.dt_min:
                        raise StepFailure(
                            f"time step fell below dt_min = {c.dt_min:g} s at t = {self.t:.6g} s "
                            f"after {retries} retries; last error: {exc}",
                            self.t,
                        ) from None
            self.dt_prev = dt
            base = max(dt, self.dt)  # a step clipped to land on t_end does not set the pace
            if its <= c.easy_iterations:
                self.dt = min(base * c.grow, c.dt_max)
            elif its >= c.hard_iterations:
                self.dt = max(dt * c.shrink, c.dt_min)
            else:
                self.dt = base
            record = StepRecord(self.t, dt, its, retries)
            self.history.append(record)
            if self.on_step is not None:
                self.on_step(record)
