"""The life of a sequence instance, as a table.

An instance is always *at* one step. Arriving at a step runs it at once:
  send      -> decided (sent or suppressed) and the instance moves on, unless quiet hours hold it:
               then it waits at the send with a timer at the window's end and runs it again then;
  wait      -> arms a timer at now + duration;
  wait_for  -> arms a timer at now + timeout and listens for the awaited event;
  branch    -> evaluates its conditions and jumps (`then` or `else`);
  split     -> draws the instance's arm (assignment.py) and goes to the arm's first step;
  jump      -> (closing an arm of a split) goes to the step after the split;
  exit      -> the instance ends.
Running past the last step ends the instance ("completed"). Jumps only go forward, so running
an instance always stops: at a timer, or at its end.

While an instance waits, three things can happen to it; the table below says what each does
at each kind of step. An `exit_on` event ends it wherever it is, before anything else looks at
the event but the goals (goals.py): with `exit_on_goal`, the goal event ends it first. Timers
due at the same instant fire in sequence-id order, and every event at an instant is applied
before any timer due at that instant, so an awaited event at exactly start + timeout still
counts as within.
"""

from __future__ import annotations

from enum import Enum

from server.engine.rules import (
    BranchRule,
    ExitStepRule,
    JumpRule,
    SendRule,
    SplitRule,
    StepRule,
    WaitForRule,
    WaitRule,
)

__all__ = ["TRANSITIONS", "Happening", "Outcome", "outcome_of"]


class Happening(Enum):
    TIMER = "timer"            # the instance's own timer fired
    AWAITED_EVENT = "event"    # the event a wait_for listens for (same key, where matched)
    EXIT_ON = "exit_on"        # an event listed in exit_on


class Outcome(Enum):
    NEXT = "next"              # go to the next step and run it
    ON_EVENT = "on_event"      # go to the wait_for's on_event target
    ON_TIMEOUT = "on_timeout"  # emit the abandonment event if any, go to the on_timeout target
    RUN_AGAIN = "run_again"    # run the same step again (a send that quiet hours held back)
    END = "end"                # the instance ends
    IGNORE = "ignore"          # nothing happens


TRANSITIONS: dict[tuple[str, Happening], Outcome] = {
    ("wait", Happening.TIMER): Outcome.NEXT,
    ("wait", Happening.AWAITED_EVENT): Outcome.IGNORE,
    ("wait", Happening.EXIT_ON): Outcome.END,
    ("wait_for", Happening.TIMER): Outcome.ON_TIMEOUT,
    ("wait_for", Happening.AWAITED_EVENT): Outcome.ON_EVENT,
    ("wait_for", Happening.EXIT_ON): Outcome.END,
    ("send", Happening.TIMER): Outcome.RUN_AGAIN,
    ("send", Happening.AWAITED_EVENT): Outcome.IGNORE,
    ("send", Happening.EXIT_ON): Outcome.END,
}
_KIND = {SendRule: "send", WaitRule: "wait", WaitForRule: "wait_for", BranchRule: "branch",
         ExitStepRule: "exit", SplitRule: "split", JumpRule: "jump"}
# An instance at a step it cannot wait at (or past its last): a timer runs it again, an exit_on
# ends it, nothing else touches it.
_DEFAULT = {Happening.TIMER: Outcome.RUN_AGAIN, Happening.EXIT_ON: Outcome.END,
            Happening.AWAITED_EVENT: Outcome.IGNORE}


def outcome_of(step: StepRule | None, happening: Happening) -> Outcome:
    """What `happening` does to an instance waiting at `step`: the table's row."""
    kind = _KIND[type(step)] if step is not None else ""
    return TRANSITIONS.get((kind, happening), _DEFAULT[happening])
