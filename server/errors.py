"""One error tree for pulsewire: catch `PulsewireError`, or the subclass you can act on."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "InvalidBatch",
    "InvalidSequence",
    "Problem",
    "PulsewireError",
    "ShardClosed",
    "Unavailable",
    "UnverifiedIdentity",
]


class PulsewireError(Exception):
    """Base of every error pulsewire raises on purpose."""


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong in a sequence file, located for a person to fix."""

    file: str
    line: int  # 1-based; 0 when the problem is about the file as a whole
    field: str  # dotted path, e.g. "steps[0].wait_for.timeout"; "" for the whole file
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        if self.field:
            return f"{where}: {self.field}: {self.message}"
        return f"{where}: {self.message}"


class InvalidSequence(PulsewireError):
    """A sequence set failed validation; `problems` lists every fault found, not just the first."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


class InvalidBatch(PulsewireError):
    """A batch from a collector is malformed; the message says what and where."""


class UnverifiedIdentity(PulsewireError):
    """An identity's signature does not match the site secret."""


class ShardClosed(PulsewireError):
    """A shard was used after it was closed."""


class Unavailable(PulsewireError):
    """A part the request needs is out of reach for now (the log in distributed mode); retry."""
