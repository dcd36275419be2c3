"""The transport stage: the case's device runs its protocol, stage by stage, recorded as it goes.

Between stages the controls jump; :func:`settle` finds the potentials of the new controls before
the clock moves on, and the time stepping restarts at first order from the initial step.
"""

from __future__ import annotations

from femion.config import dump_case
from femion.geometry import mesh as geometry
from femion.protocol import plan_protocol, ramp
from femion.runner import interrupts
from femion.runner.checkpoints import Checkpointer
from femion.runner.heating import Heating
from femion.runner.recorder import Recorder
from femion.runner.stops import Stop
from femion.runner.summary import transport_summary
from femion.transport import device
from femion.transport.case_models import is_shell
from femion.transport.problem import TransportSolveError
from femion.transport.stepping import StepControl, StepFailure, Stepper


def run_transport(case, writer, spec, sheets, solutions, comm, resume=None, plan_mesh=None, progress=None):
    """Run the protocol (or the drives for ``duration``), writing fields at the output times, a
    CSV row for every step and a checkpoint at every output time (and where it stops). With
    ``resume`` (:class:`~femion.runner.checkpoints.Resume`) it continues an earlier run of the same
    case from its latest checkpoint. Returns (summary entries, None) or, if the time step collapsed
    or a stop was requested, the entries of the last good state and a :class:`~femion.runner.stops.Stop`.
    The shell model (``transport.model: shell``) runs on ``plan_mesh`` (built here if not given);
    ``progress`` (:class:`femion.runner.progress.Stages`) shows it in simulated time."""
    if is_shell(case):
        stack = plan_mesh if plan_mesh is not None else geometry.build_plan_mesh(spec, comm)
    elif case.mesh.dimension == 3:
        stack = geometry.build_stack_mesh(spec, comm)
    else:
        stack = geometry.build_section_mesh(spec, comm)
    dev = device.build_device(case, stack, {s.name: p for s, p in zip(solutions, sheets, strict=True)},
                              {s.name: s for s in solutions})
    voltages = {s.name: s.voltage for s in solutions}
    planned = plan_protocol(case, {s.name: (s.current, s.voltage) for s in solutions})
    if case.transport.mechanism.thermal:
        dev.heating = Heating(case, stack, {s.name: s for s in solutions}, dev.problem.temperature, comm)
        dev.problem.before_step = dev.heating.at
    section = not is_shell(case) and case.mesh.dimension == 2  # the fields' plane; totals per metre of width
    recorder = Recorder(dev.problem, writer, tuple(case.output.fields), comm,
                        section_y=device.section_y(case) if section else None)
    if dev.heating is not None:
        recorder.add_series("stack", [dev.problem.temperature], tuple(case.output.fields), writer)
    if progress is not None:
        recorder.progress = progress.transport(planned[-1].t_end, len(planned))
    st = case.transport.steps
    stepper = Stepper(dev.problem, StepControl(dt_initial=st.initial, dt_min=st.min, dt_max=st.max, order=st.order,
                                                  tolerance=st.tolerance),
                      on_step=recorder.record)
    case_text = dump_case(case)  # checkpoints belong to this resolved case
    checkpoints = Checkpointer(writer, dev.problem, stepper, recorder, case_text, comm, heating=dev.heating)
    try:
        stop = run_protocol(dev, planned, voltages, stepper, recorder, checkpoints, resume, case_text)
        entries = transport_summary(case, stack, dev.problem, planned, recorder, stepper.history, stop)
        if dev.heating is not None:
            entries["thermal"] = dev.heating.summary()
        return entries, stop
    finally:
        if recorder.progress is not None:
            recorder.progress.close()
        recorder.close()
        dev.problem.close()
        if dev.heating is not None:
            dev.heating.heat.close()


def run_protocol(dev, planned, voltages, stepper, recorder, checkpoints, resume=None, case_text="") -> Stop | None:
    """Settle the first stage's controls, then run every stage to its output times (from a resumed
    state: the rest of the stage it stopped in, then the others). A collapsed step or a stop
    request ends it early: the last good state is written, checkpointed and the Stop returned."""
    stage = planned[0]
    try:
        first, within = 0, False  # the first stage to run; True: carry on inside it
        if resume is None:
            dev.apply(stage.controls, voltages)
            settle(dev, stage.controls.at_rest, stage.controls, voltages, 0.0)
            recorder.start()
            checkpoints.save("output", 0, False)
        else:
            meta = resume.restore(dev.problem, stepper, recorder, case_text, checkpoints.comm, checkpoints.folder,
                                  heating=dev.heating)
            stage = planned[meta["stage"]]
            dev.apply(stage.controls, voltages)  # the state is settled under them already
            if meta["stage_done"]:
                first = stage.index + 1
            else:  # inside the stage, unless it is the first one and has not begun (t = 0)
                first, within = stage.index, stage.index > 0 or dev.problem.t > 0
        for stage in planned[first:]:
            if within:  # carry on inside the stage the checkpoint was taken in
                within = False
                run_outputs(stage, dev.problem, stepper, recorder, checkpoints, written=recorder.times[-1])
                continue
            recorder.enter(stage)
            if stage.index > 0 and stage.controls != planned[stage.index - 1].controls:
                dev.apply(stage.controls, voltages)
                settle(dev, planned[stage.index - 1].controls, stage.controls, voltages, dev.problem.t)
            run_stage(stage, dev.problem, stepper, recorder, checkpoints)
    except (StepFailure, interrupts.Interrupted) as exc:
        checkpoints.save("stop", stage.index, False)  # before the last state becomes an output of its own
        recorder.output_last_state()
        return Stop.of(exc)
    return None


def run_stage(stage, problem, stepper, recorder, checkpoints) -> None:
    """Step through one stage to each of its output times: the controls jumped at its start, so
    BDF restarts at first order from the initial step."""
    stepper.restart()
    run_outputs(stage, problem, stepper, recorder, checkpoints)


def run_outputs(stage, problem, stepper, recorder, checkpoints, written: float = -float("inf")) -> None:
    """The stage's output times after ``written`` (the last output a resumed run has): step to
    each (no step if the state is there already: stopped just before its output), write the
    fields, checkpoint."""
    eps = 1e-12 * max(abs(stage.t_end), 1.0)
    for t_out in stage.output_times:
        if t_out <= written + eps:
            continue
        stepper.advance_to(float(t_out))
        recorder.output(problem.t)
        checkpoints.save("output", stage.index, bool(t_out >= stage.t_end - eps))


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

