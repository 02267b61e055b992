"""`pulsewire schema`: the JSON Schema editors use for sequence and segment files."""

import json

from server.cli import main
from server.sequences.durations import DURATION_PATTERN, MAX_DURATION_CHARS


def _schema(capsys) -> dict:
    assert main(["schema"]) == 0
    return json.loads(capsys.readouterr().out)


def _refs(node: object) -> list[str]:
    if isinstance(node, dict):
        return [v for k, v in node.items() if k == "$ref"] + [
            r for v in node.values() for r in _refs(v)]
    if isinstance(node, list):
        return [r for v in node for r in _refs(v)]
    return []


def test_schema_is_json_naming_sequence_and_segment(capsys):
    schema = _schema(capsys)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert {"Sequence", "Segment"} <= set(schema["$defs"])
    assert {"$ref": "#/$defs/Sequence"} in schema["anyOf"]
    assert {"$ref": "#/$defs/Segment"} in schema["anyOf"]
    for ref in _refs(schema):
        assert ref.removeprefix("#/$defs/") in schema["$defs"], ref


def test_schema_durations_are_strings_with_the_duration_pattern(capsys):
    defs = _schema(capsys)["$defs"]
    for duration in (defs["Sequence"]["properties"]["cooldown"],
                     defs["WaitFor"]["properties"]["timeout"],
                     defs["Cap"]["properties"]["per"]):
        assert (duration["type"], duration["pattern"]) == ("string", DURATION_PATTERN)
        assert duration["maxLength"] == MAX_DURATION_CHARS
        assert "at most 3650d (10 years)" in duration["description"]
    assert defs["Trigger"]["properties"]["time_in_minutes"]["maximum"] == 3650 * 24 * 60


def test_schema_time_zones_are_bounded(capsys):
    zone = _schema(capsys)["$defs"]["QuietHours"]["properties"]["timezone"]
    assert (zone["type"], zone["maxLength"]) == ("string", 64)


def test_schema_uses_file_spellings(capsys):
    defs = _schema(capsys)["$defs"]
    assert set(defs["Sequence"]["required"]) == {"id", "entry", "steps"}
    assert "if" in defs["EventEntry"]["properties"]
    assert "for" in defs["Inactivity"]["properties"]
    assert defs["Sequence"]["additionalProperties"] is False
