"""Whether a user may be mailed, and why not: the mailability an identify, an unsubscribe, a
bounce or an operator leaves on the user's state, the instance's cohort (a holdout keeps it
from mail: assignment.py) and the sequence's caps. Pure functions over one user's state."""

from __future__ import annotations

from server.engine.events import Event
from server.engine.matching import read_flag
from server.engine.rules import SequenceRules
from server.engine.state import TREATED, UserState

__all__ = ["note_mailability", "note_send", "suppression"]


def note_mailability(state: UserState, ev: Event) -> None:
    """What a mailability event (identify, unsubscribe, email_bounce, resubscribe) says."""
    if ev.name == "identify" and state.block not in ("unsubscribed", "bounced"):
        state.block = "" if read_flag(ev.props.get("verified")) else "unverified"
    elif ev.name == "unsubscribe":
        state.block = "unsubscribed"
    elif ev.name == "email_bounce":
        state.block = "bounced"
    elif ev.name == "resubscribe" and state.block in ("unsubscribed", "bounced"):
        state.block = None  # an operator lifted it; the next identify says if verified


def suppression(state: UserState, seq: SequenceRules, cohort: str, t: int,
                unknown_users_mailable: bool) -> str | None:
    """Why a send of `seq` to an instance of `cohort` at `t` is suppressed, or None when it
    goes. A held-out instance's reason is its cohort (holdout or global_holdout)."""
    if state.block:
        return state.block
    if state.block is None and not unknown_users_mailable:
        return "unverified"
    if cohort != TREATED:
        return cohort
    for cap in seq.caps:
        cutoff = t - cap.per_ms
        sent = sum(1 for at, group in state.sends
                   if at > cutoff and (cap.group == "*" or group == cap.group))
        if sent >= cap.max:
            return "cap"
    return None


def note_send(state: UserState, t: int, group: str, longest_cap_ms: int) -> None:
    """Remember a send for the caps, forgetting what no cap looks back to."""
    state.sends.append((t, group))
    cutoff = t - longest_cap_ms
    while state.sends and state.sends[0][0] <= cutoff:
        state.sends.pop(0)
