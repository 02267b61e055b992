"""Building blocks for the engine's table tests: sequences from plain dicts, a run over a list of
events under an injected clock (plain integer milliseconds), and actions in a short form.

A run is a list of steps: an `Event` is fed with `receive`, a bare integer advances the clock to
that instant with `advance`. Actions come back as tuples so a table reads at a glance:
    ("enter", sequence, key, at)        ("exit", sequence, key, at, reason)
    ("send", sequence, key, template, at)    ("suppress", sequence, key, template, at, reason)
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from server.engine import (
    Action,
    Engine,
    Entered,
    Event,
    Exited,
    Rules,
    Send,
    Suppressed,
    UserState,
    compile_rules,
)
from server.sequences import Segment, Sequence, SequenceSet, load_file

__all__ = [
    "DAY",
    "EXAMPLES",
    "HOUR",
    "MIN",
    "SEC",
    "T0",
    "brief",
    "example_rules",
    "ms_at",
    "rules_of",
    "run",
    "run_brief",
]

SEC = 1_000
MIN = 60 * SEC
HOUR = 60 * MIN
DAY = 24 * HOUR
# Monday 2024-06-03 12:00 UTC: midday, far from quiet hours and DST changes.
T0 = int(datetime(2024, 6, 3, 12, 0, tzinfo=UTC).timestamp() * 1000)
EXAMPLES = Path(__file__).resolve().parents[2] / "examples"

Step = Event | int
Brief = tuple[Any, ...]


def ms_at(year: int, month: int, day: int, hour: int, minute: int = 0) -> int:
    """Milliseconds since the epoch of a UTC wall time."""
    return int(datetime(year, month, day, hour, minute, tzinfo=UTC).timestamp() * 1000)


def rules_of(*docs: Mapping[str, Any]) -> Rules:
    """Compile sequences and segments given as the dicts a file would hold."""
    sequences = tuple(Sequence.model_validate(d) for d in docs if "id" in d)
    segments = tuple(Segment.model_validate(d) for d in docs if "id" not in d)
    return compile_rules(SequenceSet(sequences=sequences, segments=segments))


def example_rules(*names: str) -> Rules:
    """Compile example files, e.g. example_rules("sequences/cart-recovery.yaml")."""
    docs = [load_file(EXAMPLES / name) for name in names]
    return compile_rules(SequenceSet(
        sequences=tuple(d for d in docs if isinstance(d, Sequence)),
        segments=tuple(d for d in docs if isinstance(d, Segment)),
    ))


def run(engine: Engine, steps: Iterable[Step], state: UserState | None = None) -> list[Action]:
    """Feed events and clock advances to one user's state; every action decided, in order."""
    state = state if state is not None else UserState("u1")
    out: list[Action] = []
    for step in steps:
        if isinstance(step, Event):
            out.extend(engine.receive(state, step))
        else:
            out.extend(engine.advance(state, step))
    return out


def brief(actions: Iterable[Action]) -> list[Brief]:
    out: list[Brief] = []
    for a in actions:
        if isinstance(a, Entered):
            out.append(("enter", a.sequence, a.key, a.at_ms))
        elif isinstance(a, Exited):
            out.append(("exit", a.sequence, a.key, a.at_ms, a.reason))
        elif isinstance(a, Send):
            out.append(("send", a.sequence, a.key, a.template, a.at_ms))
        elif isinstance(a, Suppressed):
            out.append(("suppress", a.sequence, a.key, a.template, a.at_ms, a.reason))
    return out


def run_brief(rules: Rules, steps: Iterable[Step], *, mailable: bool = True,
              user: str = "u1") -> list[Brief]:
    """Run `steps` on a fresh state (users mailable unless told) and return the brief actions."""
    engine = Engine(rules, unknown_users_mailable=mailable)
    return brief(run(engine, steps, UserState(user)))
