"""Case files: the schema, units at the edges, loading and checks. No DOLFINx here.

* :mod:`femion.config.schema`: the pydantic models (:class:`Case` and its sections, protocol stages);
* :mod:`femion.config.checks`: cross-field checks and the ``limits`` on what a run may cost;
* :mod:`femion.config.loading`: YAML with its safety checks, ``--set``, ``quick``/``variants``,
  :func:`load_case`, :func:`load_runs`, :func:`dump_case`;
* :mod:`femion.config.units`: quantities with units (pint) to SI and back.
"""

from femion.config.loading import (
    CaseError,
    apply_overrides,
    dump_case,
    format_validation_error,
    load_case,
    load_runs,
    load_yaml,
    parse_overrides,
    read_case_mapping,
    validate_case,
)
from femion.config.schema import Case, Layer, Stage, TransportLayers, parse_stage
from femion.config.units import UnitError, format_si, to_si

__all__ = [
    "Case",
    "CaseError",
    "Layer",
    "Stage",
    "TransportLayers",
    "UnitError",
    "apply_overrides",
    "dump_case",
    "format_si",
    "format_validation_error",
    "load_case",
    "load_runs",
    "load_yaml",
    "parse_overrides",
    "parse_stage",
    "read_case_mapping",
    "to_si",
    "validate_case",
]
