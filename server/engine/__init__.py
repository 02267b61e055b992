"""The sans-I/O sequence engine: (state, event, now) -> (state', actions), plus the next deadline.

    rules = compile_rules(sequence_set)
    engine = Engine(rules)
    actions = engine.receive(state, Event("cart_add", at_ms, {"cart_id": "c1"}))
    actions += engine.advance(state, now_ms)
    wake_at = engine.next_deadline(state)
"""

from server.engine.actions import (
    Action,
    Assigned,
    Converted,
    Entered,
    Exited,
    ScoreChanged,
    Send,
    Suppressed,
)
from server.engine.compiling import compile_rules
from server.engine.engine import MAX_CHAIN, Engine
from server.engine.events import ENGINE_EVENTS, Event, PropValue
from server.engine.matching import key_text
from server.engine.rules import Rules
from server.engine.state import TREATED, GoalWatch, Instance, UserState, decode_state, encode_state

__all__ = [
    "ENGINE_EVENTS",
    "MAX_CHAIN",
    "TREATED",
    "Action",
    "Assigned",
    "Converted",
    "Engine",
    "Entered",
    "Event",
    "Exited",
    "GoalWatch",
    "Instance",
    "PropValue",
    "Rules",
    "ScoreChanged",
    "Send",
    "Suppressed",
    "UserState",
    "compile_rules",
    "decode_state",
    "encode_state",
    "key_text",
]
