"""One error tree for pulsewire: catch `PulsewireError`, or the subclass you can act on."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "CatalogError",
    "ConfigError",
    "InvalidBatch",
    "InvalidEntry",
    "InvalidMessage",
    "InvalidSequence",
    "InvalidTemplates",
    "InvalidToken",
    "Problem",
    "PulsewireError",
    "RateLimited",
    "RenderError",
    "ResumeUnknown",
    "ShardClosed",
    "Unauthenticated",
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


class ConfigError(PulsewireError):
    """The configuration cannot be used; the message names the key."""


# ---- ingest -----------------------------------------------------------------------------------

class Unauthenticated(PulsewireError):
    """Wrong site key, or a missing or wrong operator token."""


class RateLimited(PulsewireError):
    """Over the site's event rate or a batch limit."""


class ResumeUnknown(PulsewireError):
    """A resumed batch whose token this server does not hold: send the batch in full."""


class InvalidEntry(PulsewireError):
    """A message on a shard subject (distributed mode) that is not a log entry of this
    version."""


# ---- mail -------------------------------------------------------------------------------------

class InvalidTemplates(PulsewireError):
    """A template directory failed to load; `problems` lists every fault, each located."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


class RenderError(PulsewireError):
    """A template could not be rendered; the message names the file and line when known.
    The Jinja2 error it came from (e.g. `SecurityError`) is its `__cause__`."""


class InvalidMessage(PulsewireError):
    """A message cannot be built: a bad address, or a header that would break the message."""


class InvalidToken(PulsewireError):
    """A link token was tampered with, made for another kind, or is not a token at all."""


class CatalogError(PulsewireError):
    """A catalog file cannot be read or imported; the message names the file and line."""
