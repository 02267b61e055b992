"""A user's timers: every running instance's, each inactivity entry's, and the score's; which
fires next and when the engine must next be called."""

from __future__ import annotations

from server.engine.state import Instance, UserState

__all__ = ["earliest", "next_deadline"]


def next_deadline(state: UserState) -> int | None:
    """When the engine must next be called for this user (None: nothing is due)."""
    best = min(state.inactive_due_ms.values()) if state.inactive_due_ms else None
    if state.score_due_ms is not None and (best is None or state.score_due_ms < best):
        best = state.score_due_ms
    for inst in state.instances:
        if inst.due_ms is not None and (best is None or inst.due_ms < best):
            best = inst.due_ms
    return best


def earliest(state: UserState) -> tuple[int, str, int, Instance | None] | None:
    """The next timer: (due, sequence id, 0 for an instance / 1 for inactivity / 2 for the
    score, instance). Instances are kept sorted by (sequence, key), so the first at a due
    time wins ties; the score's timer goes first."""
    best: tuple[int, str, int, Instance | None] | None = None
    if state.score_due_ms is not None:
        best = (state.score_due_ms, "", 2, None)
    for inst in state.instances:
        due = inst.due_ms
        if due is not None and (best is None or (due, inst.sequence) < best[:2]):
            best = (due, inst.sequence, 0, inst)
    for seq_id, due in state.inactive_due_ms.items():
        if best is None or (due, seq_id, 1) < best[:3]:
            best = (due, seq_id, 1, None)
    return best
