"""The JSON Schema of sequence and segment files, for editors and `pulsewire schema`."""

from __future__ import annotations

from typing import Any

from pydantic import TypeAdapter

from server.sequences.model import Segment, Sequence

__all__ = ["document_schema"]


def document_schema() -> dict[str, Any]:
    """One schema that accepts a sequence file or a segment file."""
    schema = TypeAdapter(Sequence | Segment).json_schema(by_alias=True)
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "pulsewire sequence or segment file"
    return schema
