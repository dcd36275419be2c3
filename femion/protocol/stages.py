"""Names other packages import from here (femion.config: ``check_protocol``, ``output_count``;
femion.transport.device: ``Controls``, ``electron_conductor``, ``top_conductor``). The stage actions
are in :mod:`femion.protocol.actions`, the plan in :mod:`femion.protocol.plan`; new code imports
from :mod:`femion.protocol`."""

from femion.protocol.controls import Controls
from femion.protocol.layers import electron_conductor, top_conductor
from femion.protocol.plan import check_protocol, output_count

__all__ = ["Controls", "check_protocol", "electron_conductor", "output_count", "top_conductor"]
