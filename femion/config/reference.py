"""The case-file reference, generated from the pydantic models' JSON Schema (``femion schema``).

:func:`case_schema` is the JSON Schema of a case file (:class:`femion.config.schema.Case`);
:func:`case_reference` renders it as Markdown, one section per model, one table row per key
(``docs/case-reference.md`` is this text, and a test keeps it so).
"""

from __future__ import annotations

import json
from typing import Any

from femion.config.schema import Case

__all__ = ["case_reference", "case_schema"]


def case_schema() -> dict:
    """The JSON Schema (draft 2020-12) of a case file, as pydantic gives it for validation."""
    return Case.model_json_schema(mode="validation")


def _type(node: dict, defs: dict) -> str:
    """A short, readable name of the JSON Schema type ``node``."""
    if "$ref" in node:
        name = node["$ref"].rsplit("/", 1)[-1]
        return f"[{defs[name].get('title', name)}](#{_anchor(defs[name].get('title', name))})"
    if "const" in node:
        return f"`{json.dumps(node['const'])}`"
    if "enum" in node:
        return "one of " + ", ".join(f"`{v}`" for v in node["enum"])
    for key in ("anyOf", "oneOf"):
        if key in node:
            parts = [_type(n, defs) for n in node[key] if n.get("type") != "null"]
            optional = any(n.get("type") == "null" for n in node[key])
            return " or ".join(dict.fromkeys(parts)) + (" (optional)" if optional else "")
    if node.get("format") == "quantity":
        return f"quantity ({node['x-si-unit']})"
    kind = node.get("type")
    if kind == "array":
        if "prefixItems" in node:
            return "[" + ", ".join(_type(n, defs) for n in node["prefixItems"]) + "]"
        return f"list of {_type(node.get('items', {}), defs)}"
    if kind == "object":
        extra = node.get("additionalProperties")
        return f"mapping of name → {_type(extra, defs)}" if isinstance(extra, dict) else "mapping"
    if isinstance(kind, list):
        return " or ".join(kind)
    return kind or "any"


def _limits(node: dict) -> str:
    out = []
    for key, sign in (("minimum", "≥"), ("exclusiveMinimum", ">"), ("maximum", "≤"), ("exclusiveMaximum", "<")):
        if key in node:
            out.append(f"{sign} {node[key]}")
    for n in node.get("anyOf", []):
        lim = _limits(n)
        if lim:
            out.append(lim)
    return ", ".join(out)


def _anchor(title: str) -> str:
    return title.lower().replace(" ", "-")


def _default(node: dict) -> str:
    if "default" not in node:  # a default_factory: an empty list or mapping
        return "empty"
    value = node["default"]
    return "–" if value is None else f"`{json.dumps(value, ensure_ascii=False)}`"


def _one_line(text: Any) -> str:
    return " ".join(str(text).split()).replace("|", "\\|")


def case_reference() -> str:
    """The case-file reference as Markdown: every model reached from the case, in the order first
    met, with its docstring and a row per key (type, default, limits, description)."""
    schema = case_schema()
    defs = schema.get("$defs", {})
    order, queue = [], [("Case", schema)]
    seen = {"Case"}
    while queue:
        name, node = queue.pop(0)
        order.append((name, node))
        for ref in _refs(node):
            if ref not in seen:
                seen.add(ref)
                queue.append((ref, defs[ref]))
    lines = ["# Case-file reference", "",
             "Generated from the case schema (`femion schema --markdown`; `femion schema` prints the JSON Schema).",
             "A quantity is a string with its unit (`200 nm`, `0.2 A`, `8 ohm/sq`; pint's spelling), or a bare",
             "number taken in the SI unit shown. A key not listed here is an error (exit 2, one line naming it).", ""]
    for name, node in order:
        title = node.get("title", name)
        lines += [f"## {title}", ""]
        if node.get("description"):
            lines += [_one_line(node["description"]), ""]
        props = node.get("properties")
        if props:
            required = set(node.get("required", []))
            lines += ["| key | type | default | limits | description |", "|---|---|---|---|---|"]
            for key, p in props.items():
                default = "**required**" if key in required else _default(p)
                desc = _one_line(p.get("description", "")) if p.get("format") != "quantity" else ""
                lines.append(f"| `{key}` | {_type(p, defs)} | {default} | {_limits(p)} | {desc} |")
            lines.append("")
        elif "enum" in node:
            lines += ["One of " + ", ".join(f"`{v}`" for v in node["enum"]) + ".", ""]
    return "\n".join(lines).rstrip("\n") + "\n"


def _refs(node: Any) -> list[str]:
    """The names of the models ``node`` refers to, in order."""
    out: list[str] = []
    if isinstance(node, dict):
        if "$ref" in node:
            out.append(node["$ref"].rsplit("/", 1)[-1])
        for key, value in node.items():
            if key != "$defs":
                out += _refs(value)
    elif isinstance(node, list):
        for value in node:
            out += _refs(value)
    return out
