"""Which layers a protocol acts through: the film's electron conductor and the top conductor.

Read from a validated case (``case.geometry.layers``, ``case.geometry.contacts``, ``case.drives``)
without importing the case schema.
"""

from __future__ import annotations


def electron_conductor(case) -> str | None:
    """The layer that gives the film its electrons: the conductor beneath the oxide, or the
    oxide itself when contacts sit on it (seed 000 Model I); None if neither."""
    layers = case.geometry.layers
    i = next(k for k, layer in enumerate(layers) if layer.kind == "oxide")
    if any(c.conductor == layers[i].name for c in case.geometry.contacts):
        return layers[i].name
    return next((layers[k].name for k in range(i - 1, -1, -1) if layers[k].kind == "conductor"), None)


def top_conductor(case) -> str | None:
    """The conductor directly above the electrolyte (the top ITO), if any."""
    layers = case.geometry.layers
    i = next(k for k, layer in enumerate(layers) if layer.kind == "oxide")
    if i + 2 < len(layers) and layers[i + 2].kind == "conductor":
        return layers[i + 2].name
    return None


def drivable_conductors(case) -> list[str]:
    """The driven conductors a drive stage may use: the film's conductor, or the conductor above
    the electrolyte when the case has a top electrode."""
    film, top = electron_conductor(case), top_conductor(case)
    return [d.conductor for d in case.drives
            if d.conductor == film or (d.conductor == top and case.transport.top_electrode is not None)]
