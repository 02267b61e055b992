"""The JSON Schema published for editors (examples/sequence.schema.json) is what `pulsewire
schema` prints; regenerate it with `pulsewire schema > examples/sequence.schema.json`."""

import json
from pathlib import Path

from server.sequences import document_schema

PUBLISHED = Path(__file__).resolve().parents[2] / "examples" / "sequence.schema.json"


def test_the_published_schema_is_current() -> None:
    assert json.loads(PUBLISHED.read_text()) == document_schema(), (
        "run: pulsewire schema > examples/sequence.schema.json")
