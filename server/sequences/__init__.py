"""The sequence language: models, file loading with located errors, and the JSON Schema."""

from server.sequences.loading import load_file, load_paths
from server.sequences.model import Segment, Sequence, SequenceSet
from server.sequences.schema import document_schema

__all__ = ["Segment", "Sequence", "SequenceSet", "document_schema", "load_file", "load_paths"]
