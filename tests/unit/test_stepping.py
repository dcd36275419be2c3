"""The local truncation error estimate of the BDF steps (femion.transport.stepping.local_error)."""

from __future__ import annotations

import numpy as np
import pytest

from femion.transport.stepping import local_error


def bdf2_step(y, dydt, t_new, dt, dt_prev):
    """One variable-step BDF2 step of y' = dydt(t) from the exact y at t_n and t_{n−1}."""
    om = dt / dt_prev
    a0, a1, a2 = (1 + 2 * om) / (1 + om), -(1 + om), om**2 / (1 + om)
    t_n, t_nm1 = t_new - dt, t_new - dt - dt_prev
    return (dt * dydt(t_new) - a1 * y(t_n) - a2 * y(t_nm1)) / a0


@pytest.mark.parametrize("omega", [0.5, 1.0, 1.7, 2.0])
def test_bdf2_estimate_is_the_true_local_error_of_a_cubic(omega):
    """For y = t³ (y''' = 6 everywhere) the estimate from four exact levels equals the error of one
    BDF2 step from exact history, for any step ratio ω."""
    dt_prev, dt_prev2 = 0.3, 0.45
    dt = omega * dt_prev
    t_new = 2.0

    def y(t):
        return np.array([t**3, 2 * t**3 - t])  # a linear part has no error

    def dydt(t):
        return np.array([3 * t**2, 6 * t**2 - 1])

    true_error = bdf2_step(y, dydt, t_new, dt, dt_prev) - y(t_new)
    past = [y(t_new - dt), y(t_new - dt - dt_prev), y(t_new - dt - dt_prev - dt_prev2)]
    estimate = local_error(y(t_new), past, [dt, dt_prev, dt_prev2], order=2)
    assert np.abs(estimate) == pytest.approx(np.abs(true_error), rel=1e-10)
    assert np.abs(true_error[0]) > 1e-3  # the check is not of two zeros


def test_backward_euler_estimate_is_the_true_local_error_of_a_parabola():
    """y = t²: one backward-Euler step from the exact y_n misses by Δt² = Δt²/2·y''."""
    dt, dt_prev, t_new = 0.2, 0.35, 1.0

    def y(t):
        return np.array([t**2])

    stepped = y(t_new - dt) + dt * 2 * t_new
    estimate = local_error(y(t_new), [y(t_new - dt), y(t_new - dt - dt_prev)], [dt, dt_prev], order=1)
    assert np.abs(estimate) == pytest.approx(np.abs(stepped - y(t_new)), rel=1e-12)


def test_no_estimate_without_history_and_first_order_with_three_levels():
    y = [np.array([1.0]), np.array([0.5]), np.array([0.1])]
    assert local_error(y[0], [], [0.1], order=2) is None
    assert local_error(y[0], y[1:2], [0.1, 0.1], order=2) is None
    # a BDF2 step with three levels is judged by the first-order (larger) estimate
    assert local_error(y[0], y[1:], [0.1, 0.1], order=2) == pytest.approx(
        local_error(y[0], y[1:], [0.1, 0.1], order=1))


def test_newton_gets_a_budget_while_the_step_can_still_be_halved():
    """A step that can be halved gets StepControl.newton_budget iterations (a Newton that needs more
    is cut short and the step halved); at dt_min, where no smaller step exists, it gets no budget."""
    from femion.transport.newton import TransportSolveError
    from femion.transport.stepping import StepControl, Stepper

    class Problem:  # converges only for steps of at most 0.3 s, or without a budget
        def __init__(self):
            self.t, self.fields, self.calls = 0.0, None, []

        def step(self, dt, order=1, dt_prev=None, budget=None):
            self.calls.append((dt, budget))
            if dt > 0.3 and budget is not None:
                raise TransportSolveError("over budget")
            self.t += dt
            return 3

    p = Problem()
    Stepper(p, StepControl(dt_initial=1.0, dt_min=0.5, dt_max=1.0)).advance_to(2.0)
    assert p.calls[0] == (1.0, 10)  # halved to 0.5 = dt_min: no budget, converges
    assert p.calls[1] == (0.5, None)
    assert p.t == pytest.approx(2.0)
    p2 = Problem()
    Stepper(p2, StepControl(dt_initial=1.0, dt_min=0.01, dt_max=1.0)).advance_to(1.0)
    assert p2.calls[:3] == [(1.0, 10), (0.5, 10), (0.25, 10)]


def test_a_rejected_last_step_is_retried_smaller_not_stretched_back_to_the_end():
    """A step to the end of an interval rejected for its local error is taken again smaller: the
    rule that stretches a step over a sliver before t_end made the retry the same step, forever
    (a shell run stuck at t = 33.6 s for 18 minutes). And any step gets at most max_retries."""
    from femion.transport.stepping import StepControl, Stepper

    class Fields:
        def __init__(self):
            self.past_dt = []

        def levels(self):
            return []

    class Problem:
        def __init__(self):
            self.t, self.fields, self.calls = 0.0, Fields(), []

        def snapshot(self):
            return self.t

        def restore(self, t):
            self.t = t

        def step(self, dt, order=1, dt_prev=None, budget=None):
            self.calls.append(dt)
            self.t += dt
            return 3

    p = Problem()
    s = Stepper(p, StepControl(dt_initial=1.0, dt_min=1e-3, dt_max=1.0, tolerance=1e-3))
    s._error = lambda past, dts: ((1.2 if dts[0] > 0.5 else 0.5), 2)  # steps over 0.5 s are rejected
    s.advance_to(1.0)
    assert p.t == pytest.approx(1.0)
    assert len(p.calls) <= 4 and all(dt <= 0.5 for dt in p.calls[1:]), p.calls
    p2 = Problem()
    s2 = Stepper(p2, StepControl(dt_initial=1.0, dt_min=1e-12, dt_max=1.0, tolerance=1e-3, max_retries=5))
    s2._error = lambda past, dts: (1.2, 2)  # never accepted
    from femion.transport.stepping import StepFailure
    with pytest.raises(StepFailure, match="no step was accepted in 6 attempts"):
        s2.advance_to(1.0)
    assert p2.t == 0.0  # the last good state
