"""Reading case files: YAML with its safety checks, ``--set`` overrides, ``quick`` and ``variants``.

:func:`load_case` and :func:`load_runs` return validated cases (:class:`~femion.config.schema.Case`) or
raise :class:`CaseError`, whose message is one line naming the offending key path and what is
allowed. A case file must be UTF-8, give each key once, and neither expand (every use of a YAML
alias counted in full) past :data:`YAML_MAX_VALUES` values nor nest deeper than
:data:`YAML_MAX_DEPTH` levels. :func:`dump_case` writes the resolved case back (SI with units).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from femion.config.schema import Case

__all__ = [
    "YAML_MAX_DEPTH",
    "YAML_MAX_VALUES",
    "CaseError",
    "apply_overrides",
    "dump_case",
    "format_validation_error",
    "load_case",
    "load_runs",
    "load_yaml",
    "read_case_mapping",
    "validate_case",
]


class CaseError(ValueError):
    """A case file that cannot be run; ``str()`` is one line naming the key."""


def _loc(loc: tuple) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif str(part).startswith("function-") or part in ("tagged-union",):
            continue
        else:
            out += ("." if out else "") + str(part)
    return out


def _clean(msg: str) -> str:
    msg = re.sub(r"^(Value error|Assertion failed), ", "", msg)
    return " ".join(msg.split())


def format_validation_error(exc: ValidationError) -> str:
    """The first error of ``exc`` as ``key.path: what is wrong / allowed``."""
    err = exc.errors()[0]
    path = _loc(err["loc"]).replace("from_", "from")
    msg = _clean(err["msg"])
    if err["type"] == "extra_forbidden":
        msg = "unknown key"
        parent_model = _allowed_keys(err["loc"][:-1])
        if parent_model:
            msg += f" (allowed: {', '.join(parent_model)})"
    elif err["type"] == "missing":
        msg = "required key is missing"
    elif err["type"] == "finite_number":
        msg = f"must be a finite number (got {err['input']!r})"
    elif err["type"] == "literal_error":
        msg = msg.replace("Input should be", "must be")
    if msg.startswith(tuple(p + c for p in ("geometry", "drives", "mesh", "magnetic", "protocol") for c in ":[")) \
            or not path:
        return msg
    return f"{path}: {msg}"


def _allowed_keys(loc: tuple) -> list[str]:
    """Keys allowed at ``loc`` in the schema, for the 'unknown key' message."""
    model: Any = Case
    for part in loc:
        if isinstance(part, int) or model is None:
            continue
        field = getattr(model, "model_fields", {}).get(part)
        if field is None:
            field = next((f for f in getattr(model, "model_fields", {}).values() if f.alias == part), None)
        if field is None:
            return []
        model = _inner_model(field.annotation)
    if model is None or not hasattr(model, "model_fields"):
        return []
    return [f.alias or k for k, f in model.model_fields.items()]


def _inner_model(annotation) -> Any:
    import typing

    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in typing.get_args(annotation):
        m = _inner_model(arg)
        if m is not None:
            return m
    return None


#: a case file may not expand (each use of an alias counted in full) to more values than this,
#: nor nest deeper: YAML aliases can make a small file stand for huge data
YAML_MAX_VALUES = 200_000
YAML_MAX_DEPTH = 40
_MERGE_TAG = "tag:yaml.org,2002:merge"
_KEY_PATH = re.compile(r"[A-Za-z_]\w*(?:\.\w+|\[\d+\])*")


def _check_tree(root, where: str, name: str) -> None:
    """CaseError for a duplicate mapping key, or for aliases that expand past YAML_MAX_VALUES or
    YAML_MAX_DEPTH; ``where`` is the key path of ``root``, ``name`` what to call it without one."""
    seen: dict[int, tuple[int, int]] = {}  # id(node) -> (values it expands to, depth below it)

    def walk(node, path: str, depth: int, open_: set) -> tuple[int, int]:
        if id(node) in seen:
            size, below = seen[id(node)]
        elif id(node) in open_:
            raise CaseError(f"{path or name}: a YAML alias used inside its own anchor (recursive data)")
        else:
            open_.add(id(node))
            size, below = 1, 0
            if isinstance(node, yaml.MappingNode):
                keys: dict[tuple, int] = {}
                for k, v in node.value:
                    if k.tag == _MERGE_TAG:
                        child = f"{path}.<<" if path else "<<"
                    elif isinstance(k, yaml.ScalarNode):
                        child = f"{path}.{k.value}" if path else str(k.value)
                        if (k.tag, k.value) in keys:
                            raise CaseError(f"{child}: duplicate key (lines {keys[k.tag, k.value]} and "
                                            f"{k.start_mark.line + 1}); give each key once")
                        keys[k.tag, k.value] = k.start_mark.line + 1
                    else:
                        child = path
                    for n in (k, v):
                        a, b = walk(n, child, depth + 1, open_)
                        size, below = size + a, max(below, b + 1)
            elif isinstance(node, yaml.SequenceNode):
                for i, v in enumerate(node.value):
                    a, b = walk(v, f"{path}[{i}]", depth + 1, open_)
                    size, below = size + a, max(below, b + 1)
            open_.discard(id(node))
            seen[id(node)] = size, below
        if size > YAML_MAX_VALUES:
            raise CaseError(f"{path or name}: expands to {size} values, each use of a YAML alias counted in full "
                            f"(allowed: {YAML_MAX_VALUES})")
        if depth + below > YAML_MAX_DEPTH:
            raise CaseError(f"{path or name}: nests deeper than {YAML_MAX_DEPTH} levels")
        return size, below

    walk(root, where, 0, set())


def load_yaml(text: str, name: str, where: str = "") -> Any:
    """``yaml.safe_load`` that refuses duplicate keys and alias bombs (CaseError naming the key);
    yaml.YAMLError for text that is not YAML."""
    loader = yaml.SafeLoader(text)
    try:
        try:
            node = loader.get_single_node()
        except RecursionError:
            raise CaseError(f"{where or name}: nests deeper than {YAML_MAX_DEPTH} levels") from None
        if node is None:
            return None
        _check_tree(node, where, name)
        return loader.construct_document(node)
    finally:
        loader.dispose()


def _set_path(raw: dict, dotted: str, value: Any) -> None:
    if not _KEY_PATH.fullmatch(dotted):
        raise CaseError(f"--set {dotted}: not a key path (form: key.path[0].name, e.g. drives[0].current)")
    parts = [p for p in re.split(r"\.|\[(\d+)\]", dotted) if p]
    node: Any = raw
    for i, part in enumerate(parts):
        last = i == len(parts) - 1
        key: Any = int(part) if part.isdigit() else part
        if isinstance(node, list):
            if not isinstance(key, int) or not 0 <= key < len(node):
                raise CaseError(f"--set {dotted}: {part!r} is not an index of that list (0..{len(node) - 1})")
        elif isinstance(node, dict):
            if isinstance(key, int):
                key = part
            if not last and key not in node:
                node[key] = {}
        else:
            raise CaseError(f"--set {dotted}: cannot set inside a {type(node).__name__}")
        if last:
            node[key] = value
        else:
            node = node[key]


def parse_overrides(overrides: list[str]) -> dict[str, Any]:
    """``key.path=value`` strings → {key path: value read as YAML}, in order."""
    out: dict[str, Any] = {}
    for item in overrides:
        if "=" not in item:
            raise CaseError(f"--set {item}: expected key.path=value")
        key, text = item.split("=", 1)
        key = key.strip()
        if not _KEY_PATH.fullmatch(key):
            raise CaseError(f"--set {item}: {key!r} is not a key path (form: key.path=value, e.g. "
                            "drives[0].current='0.1 A')")
        try:
            out[key] = load_yaml(text, f"--set {key}", key)
        except yaml.YAMLError:
            out[key] = text
    return out


def apply_overrides(raw: dict, overrides: list[str] | Mapping[str, Any]) -> dict:
    """Apply ``key.path=value`` strings (value read as YAML), or a {key path: value} mapping, to
    the raw case mapping."""
    sets = overrides if isinstance(overrides, Mapping) else parse_overrides(overrides)
    for key, value in sets.items():
        _set_path(raw, key, value)
    return raw


def read_case_mapping(path: str | Path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise CaseError(f"case file {str(path)!r} not found")
    try:
        data = path.read_bytes()
        text = data.decode("utf-8")
    except OSError as exc:
        raise CaseError(f"{path.name}: cannot read the case file ({exc.strerror})") from None
    except UnicodeDecodeError as exc:
        line = data[:exc.start].count(b"\n") + 1
        raise CaseError(f"{path.name}: not UTF-8 text (byte 0x{data[exc.start]:02x} at line {line}); "
                        "save the case file as UTF-8") from None
    try:
        raw = load_yaml(text, path.name)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark else ""
        what = getattr(exc, "problem", None) or str(exc)
        raise CaseError(f"{path.name}: not valid YAML{where}: {' '.join(what.split())}") from None
    if not isinstance(raw, dict):
        raise CaseError(f"{path.name}: a case file is a mapping of keys (name, geometry, drives, ...)")
    return raw


def validate_case(raw: dict) -> Case:
    try:
        return Case.model_validate(raw)
    except ValidationError as exc:
        raise CaseError(format_validation_error(exc)) from None


def load_case(path: str | Path, overrides: list[str] | None = None) -> Case:
    """Read, override and validate a case file; CaseError (one line) on any problem."""
    raw = read_case_mapping(path)
    apply_overrides(raw, overrides or [])
    return validate_case(raw)


def _apply_mapping(raw: dict, overrides: dict, where: str) -> dict:
    for key, value in overrides.items():
        try:
            _set_path(raw, str(key), value)
        except CaseError as exc:
            raise CaseError(f"{where}.{key}: {str(exc).split(': ', 1)[-1]}" if key else
                            f"{where}: {key!r} is not a key path (form: key.path[0].name)") from None
    return raw


def _key(dotted: str) -> str:
    """``drives.0.current`` → ``drives[0].current``: the spelling of error messages."""
    return re.sub(r"\.(\d+)(?=\.|\[|$)", r"[\1]", str(dotted))


def _blame(msg: str, sources: list[tuple[str, list[str]]]) -> str | None:
    """``msg`` (``key.path: ...``) under the first override source that set that key, e.g.
    ``quick.mesh.cell_size: ...``; None if no override set it."""
    key = msg.split(": ", 1)[0]
    for where, keys in sources:
        for k in map(_key, keys):
            if key == k or key.startswith((k + ".", k + "[")):
                return f"{where}.{msg}"
    return None


def _check_drive_overrides(case: Case, sources: list[tuple[str, list[str]]]) -> None:
    """CaseError when an override sets a drive's current or voltage that a protocol stage replaces
    with a different value of its own (the run would report the override, the stage ran at its own)."""
    if case.protocol is None:
        return
    for where, keys in sources:
        for k in keys:
            m = re.fullmatch(r"drives\[(\d+)\](?:\.(current|voltage))?", _key(k))
            if not m or int(m[1]) >= len(case.drives):
                continue
            d = case.drives[int(m[1])]
            for j, s in enumerate(case.protocol):
                own = "current" if s.current is not None else "voltage" if s.voltage is not None else None
                if s.action != "drive" or own is None or (s.conductor or case.drives[0].conductor) != d.conductor:
                    continue
                if getattr(d, own) is not None and math.isclose(getattr(d, own), getattr(s, own), rel_tol=1e-12):
                    continue  # the stage runs at the value the override gives the drive
                name, by = (_key(k), "--set") if where == "--set" else (f"{where}.{_key(k)}", where)
                raise CaseError(f"{name}: set by {by}, but protocol[{j}].{own} sets the {own} of that stage; "
                                f"set protocol[{j}].{own} instead")


def load_runs(path: str | Path | Mapping, overrides: list[str] | Mapping[str, Any] | None = None, quick: bool = False,
              variant: str | None = None) -> tuple[Case, list[tuple[str | None, Case]]]:
    """The case (a file, or its mapping) and the runs it asks for: itself, or one per entry of
    ``variants``.

    Each run's mapping is the case's with, in order: its ``quick`` overrides (``quick=True``),
    the variant's overrides, then the command line's ``--set`` overrides. An error a quick or
    variant override causes names it: ``quick.<key>`` or ``variants.<name>.<key>``.
    ``femion validate`` and ``femion run`` both load a case through here.
    """
    import copy

    raw = copy.deepcopy(dict(path)) if isinstance(path, Mapping) else read_case_mapping(path)
    sets_given = overrides if isinstance(overrides, Mapping) else parse_overrides(overrides or [])
    base_raw = apply_overrides(copy.deepcopy(raw), sets_given)
    base = validate_case(base_raw)
    if quick and not base.quick:
        raise CaseError("--quick: the case has no 'quick' block (add quick: {key.path: value, ...} to the case)")
    names: list[str | None] = [*base.variants] if variant is None else [variant]
    if variant is not None and variant not in base.variants:
        raise CaseError(f"--variant {variant}: no such variant (allowed: {', '.join(base.variants) or 'none'})")
    sets = list(sets_given)
    runs = []
    for name in names or [None]:
        r = copy.deepcopy(raw)
        r.pop("variants", None)
        sources = [("--set", sets)]
        if quick:
            _apply_mapping(r, base.quick, "quick")
            sources.insert(0, ("quick", list(base.quick)))
        if name is not None:
            _apply_mapping(r, base.variants[name], f"variants.{name}")
            r["name"] = f"{base.name}_{name}"
            sources.insert(0, (f"variants.{name}", list(base.variants[name])))
        apply_overrides(r, sets_given)
        try:
            case = validate_case(r)
        except CaseError as exc:
            msg = _blame(str(exc), sources[:-1])
            if msg is None:
                msg = f"{sources[0][0]}: {exc}" if len(sources) > 1 else str(exc)
            raise CaseError(msg) from None
        _check_drive_overrides(case, sources)
        runs.append((name, case))
    return base, runs


def dump_case(case: Case) -> str:
    """The resolved case as YAML, every quantity in SI with its unit."""
    data = case.model_dump(mode="json", by_alias=True, exclude_none=True)
    return yaml.safe_dump(data, sort_keys=False)
