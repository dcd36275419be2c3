"""The case-file reference: `femion schema` prints the JSON Schema, docs/case-reference.md is its
Markdown rendering and stays so, and every key the shipped cases use is in it."""

from __future__ import annotations

import json

import yaml

from femion import cli
from femion.config.reference import case_reference, case_schema

from ..conftest import CASES, ROOT


def test_schema_command_prints_the_json_schema(capsys):
    assert cli.main(["schema"]) == 0
    schema = json.loads(capsys.readouterr().out)
    assert schema == case_schema() and schema["title"] == "Case"
    thickness = schema["$defs"]["Layer"]["properties"]["thickness"]
    assert thickness["format"] == "quantity" and thickness["x-si-unit"] == "m"  # a quantity says its unit
    assert "additionalProperties" in schema and schema["additionalProperties"] is False  # unknown keys refused


def test_docs_case_reference_is_the_generated_one(capsys):
    """Regenerate with: femion schema --markdown > docs/case-reference.md"""
    assert cli.main(["schema", "--markdown"]) == 0
    text = capsys.readouterr().out
    assert text == case_reference()
    assert (ROOT / "docs" / "case-reference.md").read_text() == text


def test_every_key_the_shipped_cases_use_is_documented():
    schema = case_schema()
    text = case_reference()
    for path in sorted(CASES.glob("*.yaml")):
        raw = yaml.safe_load(path.read_text())
        assert set(raw) <= set(schema["properties"]), path.name
        for section, value in raw.items():
            if isinstance(value, dict) and section not in ("quick", "variants"):
                for key in value:
                    assert f"| `{key}` |" in text, (path.name, section, key)
