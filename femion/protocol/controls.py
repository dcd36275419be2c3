"""What the source does during a stage (:class:`Controls`), and how to move it in small steps (:func:`ramp`).

Controls are what a protocol hands the device: :meth:`femion.transport.device.Device.apply` sets
the transport problem's contacts, top electrode, exchange and field from them.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np


@dataclass(frozen=True)
class Controls:
    """What the source does during a stage.

    drive: the conductor driven (a drive of the case), None when every drive is off (open
    circuit); scale: multiple of the conductor stage's solution for that drive (its sign is the
    direction); inject_voltage: φ_top − φ_film (V) while injecting, else None; exchange: False
    once the electrolyte is removed.
    """

    drive: str | None = None
    scale: float = 0.0
    inject_voltage: float | None = None
    exchange: bool = True

    @property
    def closed(self) -> bool:
        """No external source feeds the exchanged ion (film + electrolyte keep their total)."""
        return self.inject_voltage is None

    @property
    def at_rest(self) -> Controls:
        """The same drive and exchange with the source at zero (where a run starts from)."""
        return Controls(drive=self.drive, exchange=self.exchange)


def ramp(previous: Controls, new: Controls, voltages: dict[str, float], max_jump: float) -> list[Controls]:
    """Intermediate controls from ``previous`` to ``new`` changing no source by more than
    ``max_jump`` volts per increment: a drive's scale (or the injection voltage) moves linearly;
    between different sources the old one is first brought to zero (contacts still connected),
    then the new one raised from zero."""

    def volts(c: Controls) -> float:
        if c.inject_voltage is not None:
            return abs(c.inject_voltage)
        return abs(c.scale) * abs(voltages.get(c.drive, 0.0)) if c.drive is not None else 0.0

    def scaled(c: Controls, s: float) -> Controls:
        if c.inject_voltage is not None:
            return replace(c, inject_voltage=s * c.inject_voltage)
        return replace(c, scale=s * c.scale)

    if previous.drive == new.drive and previous.drive is not None and previous.inject_voltage is None \
            and new.inject_voltage is None:
        n = max(int(np.ceil(abs(new.scale - previous.scale) * abs(voltages.get(new.drive, 0.0)) / max_jump)), 1)
        return [replace(new, scale=previous.scale + (new.scale - previous.scale) * k / n) for k in range(1, n + 1)]
    down = max(int(np.ceil(volts(previous) / max_jump)), 1) if previous.drive or previous.inject_voltage else 0
    up = max(int(np.ceil(volts(new) / max_jump)), 1)
    path = [scaled(previous, 1 - k / down) for k in range(1, down + 1)]
    return path + [scaled(new, k / up) for k in range(up + 1)]
