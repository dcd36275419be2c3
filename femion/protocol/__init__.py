"""The experiment's protocol (seed 000, P0–P3): stages that set the device's controls in time.

A case's ``protocol`` is a list of stages (inject, drive, reverse, relax, remove electrolyte), each
the work of one action class in :mod:`femion.protocol.actions` (its one-line form, checks, plan,
label and report metrics; :data:`ACTIONS` is the registry the case schema reads its allowed
actions and one-line forms from). :func:`plan_protocol` (:mod:`femion.protocol.plan`) turns the
stages into :class:`PlannedStage` s with absolute times, output times and :class:`Controls`,
which :meth:`femion.transport.device.Device.apply` applies to the transport problem.

Neither this package nor its modules import the case schema or DOLFINx.
"""

from femion.protocol.actions import ACTION_NAMES, ACTIONS, StageAction, parse_stage, with_metrics
from femion.protocol.controls import Controls, ramp
from femion.protocol.layers import electron_conductor, top_conductor
from femion.protocol.plan import PlannedStage, check_protocol, output_count, output_times, plan_protocol, stages_of

__all__ = ["ACTIONS", "ACTION_NAMES", "Controls", "PlannedStage", "StageAction", "check_protocol",
           "electron_conductor", "output_count", "output_times", "parse_stage", "plan_protocol", "ramp",
           "stages_of", "top_conductor", "with_metrics"]
