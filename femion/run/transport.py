"""The transport stage: the case's device runs its protocol, stage by stage, recorded as it goes.

Between stages the controls jump; :func:`settle` finds the potentials of the new controls before
the clock moves on, and the time stepping restarts at first order from the initial step.
"""

from __future__ import annotations

from femion.geometry import mesh as geometry
from femion.protocol import plan_protocol, ramp
from femion.run import interrupts
from femion.run.recorder import Recorder
from femion.run.stops import Stop
from femion.run.summary import transport_summary
from femion.transport import device
from femion.transport.problem import TransportSolveError
from femion.transport.stepping import StepControl, StepFailure, Stepper


def run_transport(case, writer, spec, sheets, solutions, comm):
    """Run the protocol (or the drives for ``duration``), writing fields at the output times and
    a CSV row for every step. Returns (summary entries, None) or, if the time step collapsed or a
    stop was requested, the entries of the last good state and a :class:`~femion.run.stops.Stop`."""
    stack = (geometry.build_stack_mesh(spec, comm) if case.mesh.dimension == 3
             else geometry.build_section_mesh(spec, comm))
    dev = device.build_device(case, stack, {s.name: p for s, p in zip(solutions, sheets, strict=False)},
                              {s.name: s for s in solutions})
    voltages = {s.name: s.voltage for s in solutions}
    planned = plan_protocol(case, {s.name: (s.current, s.voltage) for s in solutions})
    recorder = Recorder(dev.problem, writer, tuple(case.output.fields), case.transport.temperature, comm)
    st = case.transport.steps
    stepper = Stepper(dev.problem, StepControl(dt_initial=st.initial, dt_min=st.min, dt_max=st.max, order=st.order),
                      on_step=recorder.record)
    try:
        stop = run_protocol(dev, planned, voltages, stepper, recorder)
        return transport_summary(case, stack, dev.problem, planned, recorder, stepper.history, stop), stop
    finally:
        recorder.close()
        dev.problem.close()


def run_protocol(dev, planned, voltages, stepper, recorder) -> Stop | None:
    """Settle the first stage's controls, then run every stage to its output times. A collapsed
    step or a stop request ends it early: the last good state is written and the Stop returned."""
    try:
        first = planned[0].controls
        dev.apply(first, voltages)
        settle(dev, first.at_rest, first, voltages, 0.0)
        recorder.start()
        for stage in planned:
            recorder.enter(stage)
            if stage.index > 0 and stage.controls != planned[stage.index - 1].controls:
                dev.apply(stage.controls, voltages)
                settle(dev, planned[stage.index - 1].controls, stage.controls, voltages, dev.problem.t)
            run_stage(stage, dev.problem, stepper, recorder)
    except (StepFailure, interrupts.Interrupted) as exc:
        recorder.output_last_state()
        return Stop.of(exc)
    return None


def run_stage(stage, problem, stepper, recorder) -> None:
    """Step through one stage to each of its output times: the controls jumped at its start, so
    BDF restarts at first order from the initial step."""
    problem.restart_at_first_order()
    stepper.dt, stepper.dt_prev = stepper.control.dt_initial, None
    for t_out in stage.output_times:
        stepper.advance_to(float(t_out))
        recorder.output(problem.t)


def settle(dev, previous, controls, voltages, t: float, max_jump: float = 0.25) -> None:
    """Consistent potentials for new ``controls``, the clock kept at ``t``.

    From a guess near the new level (Device.guess_potentials) a 1 ns step settles φ_e and φ_l
    (the concentrations change by O(1 ns) only). If Newton fails, the source is instead moved
    from ``previous`` to ``controls`` in increments of at most ``max_jump`` volts, settling
    after each: the exchange is exponential in the potentials, so big jumps are taken as many
    small ones. Raises TransportSolveError if even that fails.
    """
    p = dev.problem
    saved = p.snapshot()
    try:
        dev.guess_potentials(controls, voltages)
        p.step(1e-9, order=1)
        p.t = t
        return
    except TransportSolveError:
        p.restore(saved)
        p.t = t
    path = ramp(previous, controls, voltages, max_jump)
    for c in path:
        dev.apply(c, voltages)
        p.step(1e-9, order=1)
        p.t = t
    dev.apply(controls, voltages)

