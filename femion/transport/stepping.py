"""Adaptive implicit time stepping that lands exactly on requested times.

The step size follows the local truncation error of the BDF step (as variable-step BDF codes
do: CVODE, IDA, DASSL), measured on the quantities that evolve, θ and c_i/c_i,0:

    ε_n = max_i |LTE_i| / tolerance,   Δt_new = Δt · min(grow_max, max(0.2, 0.9 ε_n^{−1/(p+1)}))

and a step with ε_n > 1 is taken again with the smaller step. LTE is estimated from divided
differences of the solution (:func:`local_error`). Newton's behaviour limits it as well, as in
MOOSE's IterationAdaptiveDT: a hard step (at least ``hard_iterations`` Newton iterations) does
not grow the next, one that needs more than ``newton_budget`` (or fails) is retried with half the
step; the first steps of a stage, before
there is an error estimate (and every step without a ``tolerance``), grow by ``grow`` after an
easy step and shrink by ``shrink`` after a hard one. Below ``dt_min``
the run stops with :class:`StepFailure`, the problem left at its last good state. Steps are
clipped so that every time in ``advance_to`` is hit exactly (output times, stage boundaries).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from femion._dolfinx import MPI
from femion.transport.newton import TransportSolveError


class StepFailure(RuntimeError):
    """No step above dt_min converged; the problem holds the last good state."""

    def __init__(self, message: str, t_last_good: float):
        super().__init__(message)
        self.t_last_good = t_last_good


def _divided_difference(values: list[np.ndarray], times: list[float]) -> np.ndarray:
    """f[t_0, ..., t_k] of the arrays ``values`` at ``times`` (Newton's table)."""
    table = list(values)
    for k in range(1, len(times)):
        table = [(table[i] - table[i + 1]) / (times[i] - times[i + k]) for i in range(len(table) - 1)]
    return table[0]


def local_error(new: np.ndarray, past: list[np.ndarray], dts: list[float], order: int) -> np.ndarray | None:
    """Local truncation error of the step of ``dts[0]`` (s) to ``new`` from the levels ``past``
    (y_n, y_{n−1}, y_{n−2}, newest first; ``dts`` the steps between them, newest first).

    BDF2 (variable step, ω = Δt_{n+1}/Δt_n), with four levels: the derivative of the quadratic
    through y_{n−1}, y_n, y_{n+1} misses y'(t_{n+1}) by y'''Δt_{n+1}(Δt_{n+1}+Δt_n)/6, which
    becomes in y

        LTE = (1+ω)² / (6ω(1+2ω)) · Δt_{n+1}³ · y''',   y''' ≈ 6·y[t_{n+1}, …, t_{n−2}];

    backward Euler (or a BDF2 step with three levels only, which this overestimates):
    LTE = Δt²/2 · y'', y'' ≈ 2·y[t_{n+1}, t_n, t_{n−1}]. None with fewer levels."""
    points = [new, *past]
    times = np.concatenate([[0.0], -np.cumsum(dts[: len(past)])]).tolist()
    h = dts[0]
    if order == 2 and len(points) >= 4:
        om = h / dts[1]
        return (1 + om) ** 2 / (6 * om * (1 + 2 * om)) * h**3 * 6 * _divided_difference(points[:4], times[:4])
    if len(points) >= 3:
        return h**2 * _divided_difference(points[:3], times[:3])
    return None


@dataclass
class StepControl:
    """Step-size policy (seconds); ``tolerance``: the largest local error of one step in θ and in
    c_i/c_i,0 (dimensionless; None: Newton's behaviour alone sets the step)."""

    dt_initial: float = 1.0
    dt_min: float = 1e-6
    dt_max: float = 60.0
    order: int = 2
    tolerance: float | None = None
    grow: float = 1.5
    grow_max: float = 2.0  # below 1 + √2: variable-step BDF2 stays zero-stable
    shrink: float = 0.6
    easy_iterations: int = 4
    hard_iterations: int = 8
    #: Newton iterations a step may take while a smaller one is possible: a step that needs more
    #: is halved at once (measured on the full 3D "2": failing steps took 27–44 iterations before
    #: giving up and never recovered, most of the run's cost; accepted steps took ≤ 7; a budget of
    #: 12 made the shell run 241 → 108 s, 8 → 90 s, the same accepted steps)
    newton_budget: int | None = 10
    max_retries: int = 40  # attempts at one step before the run stops (each at least halves it)

    def __post_init__(self):
        if not 0 < self.dt_min <= self.dt_initial <= self.dt_max:
            raise ValueError("need 0 < dt_min <= dt_initial <= dt_max")
        if self.order not in (1, 2):
            raise ValueError("order must be 1 (backward Euler) or 2 (BDF2)")
        if self.tolerance is not None and not self.tolerance > 0:
            raise ValueError("tolerance must be > 0 (or None)")


@dataclass
class StepRecord:
    t: float
    dt: float
    newton_iterations: int
    retries: int
    error: float | None = None  # ε of the step (local error / tolerance)


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
        self.rejected = 0  # steps taken again for their local error

    @property
    def t(self) -> float:
        return self.problem.t

    def state(self) -> dict:
        """What the next step depends on besides the problem's state (for checkpoints)."""
        return {"dt": self.dt, "dt_prev": self.dt_prev, "rejected": self.rejected,
                "history": [[r.t, r.dt, r.newton_iterations, r.retries, r.error] for r in self.history]}

    def load_state(self, state: dict) -> None:
        """Continue from :meth:`state`: the same next step as the run it was taken from."""
        self.dt, self.dt_prev = state["dt"], state["dt_prev"]
        self.rejected = int(state.get("rejected", 0))
        self.history = [StepRecord(r[0], r[1], int(r[2]), int(r[3]), *(r[4:5] or [None])) for r in state["history"]]

    def restart(self) -> None:
        """The controls jumped: BDF1 from the initial step, no history."""
        self.problem.restart_at_first_order()
        self.dt, self.dt_prev = self.control.dt_initial, None

    def _error(self, past: list[np.ndarray], dts: list[float]) -> tuple[float | None, int]:
        """(ε, order of the estimate) of the step just taken, or (None, 0) without an estimate."""
        fields = self.problem.fields
        lte = local_error(fields.levels()[0], past, dts, self.control.order)
        if lte is None:
            return None, 0
        worst = float(np.abs(lte).max(initial=0.0))
        worst = self.problem.comm.allreduce(worst, op=MPI.MAX)
        p = 2 if self.control.order == 2 and len(past) >= 3 else 1
        return worst / self.control.tolerance, p

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
                    # (stretched to t_end only on a first attempt: a retry must be smaller than
                    # the step that failed or was rejected, or it would be that step again)
                    dt = remaining if remaining <= 1.2 * self.dt and not retries else remaining / 2
                if retries > c.max_retries:
                    raise StepFailure(f"no step was accepted in {retries} attempts at t = {self.t:.6g} s "
                                      f"(the last of {dt:.3g} s)", self.t)
                fields = self.problem.fields
                if c.tolerance is not None:
                    past, dts = fields.levels(), [dt, *fields.past_dt]
                    saved = self.problem.snapshot()
                # a budget only while the step can still be halved: at dt_min Newton takes its time
                budget = c.newton_budget if 0.5 * dt >= c.dt_min else None
                try:
                    its = self.problem.step(dt, order=c.order, dt_prev=self.dt_prev, budget=budget)
                except TransportSolveError as exc:
                    retries += 1
                    self.dt = dt * 0.5
                    if self.dt < c.dt_min:
                        raise StepFailure(
                            f"time step fell below dt_min = {c.dt_min:g} s at t = {self.t:.6g} s "
                            f"after {retries} retries; last error: {exc}",
                            self.t,
                        ) from None
                    continue
                err, p = self._error(past, dts) if c.tolerance is not None else (None, 0)
                if err is not None and err > 1.0 and dt > c.dt_min:
                    # too large a local error: the same step again, smaller
                    self.problem.restore(saved)
                    retries += 1
                    self.rejected += 1
                    self.dt = max(dt * max(0.2, 0.9 * err ** (-1.0 / (p + 1))), c.dt_min)
                    continue
                break
            self.dt_prev = dt
            self.dt = self._next(dt, its, err, p)
            record = StepRecord(self.t, dt, its, retries, err)
            self.history.append(record)
            if self.on_step is not None:
                self.on_step(record)

    def _next(self, dt: float, its: int, err: float | None, p: int) -> float:
        """The next step after an accepted one of ``dt`` with ``its`` Newton iterations and local
        error ``err`` (estimate of order ``p``)."""
        c = self.control
        base = max(dt, self.dt)  # a step clipped to land on t_end does not set the pace
        if err is None:
            if its >= c.hard_iterations:
                return max(dt * c.shrink, c.dt_min)
            factor = c.grow if its <= c.easy_iterations else 1.0
            return min(base * factor, c.dt_max)
        factor = min(c.grow_max, max(0.2, 0.9 * max(err, 1e-10) ** (-1.0 / (p + 1))))
        if its >= c.hard_iterations:  # Newton near its limit: no growth (failures halve the step)
            factor = min(factor, 1.0)
        proposal = dt * factor
        if dt < self.dt and factor >= 1.0:  # clipped and easy: keep the pace it had
            proposal = max(proposal, self.dt)
        return min(max(proposal, c.dt_min), c.dt_max)
