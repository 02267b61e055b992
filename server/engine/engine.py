"""The sequence engine: events in, actions out, for one user's state at a time. No I/O.

The caller owns the clock and the storage. It feeds each event with `receive(state, event)`,
which first fires every timer due strictly before the event (so events at an instant come before
timers due at that instant), then applies the event. It calls `advance(state, now_ms)` to fire
timers due up to and including `now_ms`, and asks `next_deadline(state)` when to call again.
Both mutate `state` in place and return the actions decided, in order.

Applying an event, in this order: the user's time zone and mailability; segment membership
before the event; signal trackers; inactivity timers; clicks and goals (goals.py); exit_on
(ends instances at once); wait_for listeners; then entries (an event entry, or a segment the
user just joined). Events the
engine emits itself (email_sent after a send, cart_abandonment when a cart wait_for times out)
are applied right after what caused them, at the same instant, up to a chain depth of
MAX_CHAIN, so a set of sequences that trigger each other cannot loop.

The instance life cycle is the table in instance_states.py: what a timer, an awaited event and
an exit_on do to an instance waiting at a step is looked up there (`_follow` does it).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping
from typing import Any

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
from server.engine.assignment import cohort_of, pick_arm
from server.engine.conditions import all_hold, segment_vars, track
from server.engine.events import Event
from server.engine.goals import note_click, note_sent, open_goal, reached_goals, watch_of
from server.engine.housekeeping import compact, instance_order, merge_states
from server.engine.instance_states import Happening, Outcome, outcome_of
from server.engine.mailing import note_mailability, note_send, suppression
from server.engine.matching import key_text
from server.engine.quiet_hours import quiet_until_ms
from server.engine.rules import (
    EXIT,
    NEXT,
    USER_KEY,
    BranchRule,
    EventPlan,
    JumpRule,
    Rules,
    SendRule,
    SequenceRules,
    SplitRule,
    StepRule,
    WaitForRule,
    WaitRule,
)
from server.engine.scoring import score_decayed, score_event
from server.engine.state import Instance, UserState
from server.engine.timers import earliest, next_deadline

__all__ = ["MAX_CHAIN", "Engine"]

MAX_CHAIN = 4


class _Pass:
    """One call's working set: the state, the actions so far, engine events still to apply."""

    __slots__ = ("depth", "emitted", "out", "state")

    def __init__(self, state: UserState) -> None:
        self.state = state
        self.out: list[Action] = []
        self.emitted: deque[tuple[Event, int]] | None = None  # made by the first emit
        self.depth = 0


class Engine:
    __slots__ = ("global_holdout", "rules", "unknown_users_mailable")

    def __init__(self, rules: Rules, *, unknown_users_mailable: bool = False,
                 global_holdout: float = 0.0) -> None:
        """`unknown_users_mailable`: mail users who never identified with a verified email
        (backtests assume so; a live server must not). `global_holdout`: the share of users the
        site keeps out of every sequence's email (assignment.py)."""
        self.rules = rules
        self.unknown_users_mailable = unknown_users_mailable
        self.global_holdout = global_holdout

    # ---- the API ------------------------------------------------------------------------------

    def reads(self, event_name: str) -> bool:
        """Whether an event of this name can change anything but the time zone and timers.
        A caller may skip building the others (a backtest skips most of a history)."""
        return event_name in self.rules.plans

    def receive(self, state: UserState, event: Event) -> list[Action]:
        plan = self.rules.plans.get(event.name)
        due = self.next_deadline(state) if (state.instances or state.inactive_due_ms
                                            or state.score_due_ms is not None) else None
        if (plan is None or plan.signals_only) and (due is None or due >= event.at_ms):
            if event.tz:  # with the signals, the only thing such an event can change
                state.tz = event.tz
            if plan is not None and plan.trackers:
                track(state, plan, event.props, event.at_ms)
            return []
        p = _Pass(state)
        if due is not None and due < event.at_ms:
            self._fire_due(p, event.at_ms, inclusive=False)
        self._apply(p, event, plan)
        if p.emitted:
            self._drain(p)
        return p.out

    def advance(self, state: UserState, now_ms: int) -> list[Action]:
        p = _Pass(state)
        self._fire_due(p, now_ms, inclusive=True)
        compact(self.rules, state, now_ms)
        return p.out

    def merge(self, into: UserState, other: UserState) -> None:
        """Fold an anonymous device's state into the user it turned out to be (idempotent:
        housekeeping.py)."""
        merge_states(self.rules, into, other)

    def next_deadline(self, state: UserState) -> int | None:
        return next_deadline(state)

    # ---- timers -------------------------------------------------------------------------------

    def _fire_due(self, p: _Pass, limit_ms: int, *, inclusive: bool) -> None:
        while True:
            nxt = earliest(p.state)
            if nxt is None:
                return
            due, seq_id, kind, inst = nxt
            if due > limit_ms or (due == limit_ms and not inclusive):
                return
            if inst is not None:
                self._fire_instance(p, inst, due)
            elif kind == 2:
                assert self.rules.scoring is not None
                self._band_moved(p, score_decayed(p.state, self.rules.scoring, due), due)
            else:
                del p.state.inactive_due_ms[seq_id]
                seq = self.rules.sequences.get(seq_id)
                if seq is not None:
                    self._try_enter(p, seq, "", {}, due)
            self._drain(p)

    def _fire_instance(self, p: _Pass, inst: Instance, now: int) -> None:
        inst.due_ms = None
        seq = self.rules.sequences.get(inst.sequence)
        if seq is None or inst.step >= len(seq.steps):
            self._end(p, inst, now, "removed")
            return
        self._follow(p, seq, inst, outcome_of(seq.steps[inst.step], Happening.TIMER), now, "")

    def _follow(self, p: _Pass, seq: SequenceRules, inst: Instance, outcome: Outcome, t: int,
                reason: str) -> None:
        """Do what the table (instance_states.py) says a happening does to `inst`."""
        if outcome is Outcome.IGNORE:
            return
        if outcome is Outcome.END:
            self._end(p, inst, t, reason)
            return
        inst.due_ms = None
        step = seq.steps[inst.step]
        if outcome is Outcome.ON_TIMEOUT:
            assert isinstance(step, WaitForRule)
            if step.emit:
                self._emit(p, Event(step.emit, t, {**inst.entry, "sequence": seq.id}))
            self._goto(p, seq, inst, step.on_timeout, t)
        elif outcome is Outcome.ON_EVENT:
            assert isinstance(step, WaitForRule)
            self._goto(p, seq, inst, step.on_event, t)
        elif outcome is Outcome.NEXT:
            self._goto(p, seq, inst, NEXT, t)
        else:
            self._run(p, seq, inst, t)

    # ---- events -------------------------------------------------------------------------------

    def _drain(self, p: _Pass) -> None:
        emitted = p.emitted
        while emitted:
            event, depth = emitted.popleft()
            p.depth = depth
            self._apply(p, event, self.rules.plans.get(event.name))
        p.depth = 0

    def _emit(self, p: _Pass, event: Event) -> None:
        if p.depth < MAX_CHAIN:
            if p.emitted is None:
                p.emitted = deque()
            p.emitted.append((event, p.depth + 1))

    def _apply(self, p: _Pass, ev: Event, plan: EventPlan | None) -> None:
        """Apply one event whose plan (`rules.plans.get(ev.name)`) the caller looked up."""
        state, t = p.state, ev.at_ms
        if ev.tz:
            state.tz = ev.tz
        if plan is None:
            return
        props = ev.props
        if plan.mailability:
            note_mailability(state, ev)
        joined = track(state, plan, props, t) if plan.trackers else ()
        if plan.scores and self.rules.scoring is not None:
            left = score_event(state, self.rules.scoring, plan.scores, props, t)
            self._band_moved(p, left, t)
        for seq in plan.arms:
            assert seq.inactivity is not None
            state.inactive_due_ms[seq.id] = t + seq.inactivity[1]
        for seq in plan.cancels:
            state.inactive_due_ms.pop(seq.id, None)
        if state.goals:
            if plan.clicks:
                note_click(state, self.rules, ev)
            if plan.goals:
                self._goals(p, ev, plan.goals)
        if state.instances:
            if plan.exits:
                self._exit_on(p, ev, plan.exits)
            if plan.awaited and state.instances:
                self._awaited(p, ev)
        for seq in plan.entries:
            if seq.entry_match(props) and (
                    not seq.entry_conditions
                    or all_hold(self.rules, state, seq.entry_conditions, props, t)):
                key = "" if seq.key == USER_KEY else key_text(props.get(seq.key))
                if key is not None:
                    self._try_enter(p, seq, key, props, t)
        for seg in joined:
            for seq in self.rules.entries_by_segment[seg.name]:
                self._try_enter(p, seq, "", seg.vars, t)

    def _band_moved(self, p: _Pass, left: str | None, t: int) -> None:
        if left is not None:
            state = p.state
            p.out.append(ScoreChanged(t, left, state.band, state.score))
            self._emit(p, Event("score_changed", t, {"band": state.band, "previous": left,
                                                     "score": round(state.score, 3)}))

    def _goals(self, p: _Pass, ev: Event, sequence_ids: frozenset[str]) -> None:
        for watch in reached_goals(p.state, self.rules, ev, sequence_ids):
            p.out.append(Converted(watch.sequence, watch.key, ev.at_ms, watch.entered_ms,
                                   watch.cohort, watch.arm, watch.sent, watch.clicked,
                                   watch.first_sent_ms))
            ended = [i for i in p.state.instances if (i.sequence, i.key, i.started_ms) == (
                watch.sequence, watch.key, watch.entered_ms)]
            if ended and self.rules.sequences[watch.sequence].exit_on_goal:
                self._end(p, ended[0], ev.at_ms, "goal")

    def _matches_key(self, seq: SequenceRules, match_key: bool, inst: Instance,
                     props: Mapping[str, Any]) -> bool:
        return not match_key or key_text(props.get(seq.key)) == inst.key

    def _exit_on(self, p: _Pass, ev: Event, sequence_ids: frozenset[str]) -> None:
        for inst in list(p.state.instances):
            seq = self.rules.sequences.get(inst.sequence)
            if inst.sequence not in sequence_ids or seq is None:
                continue
            if any(x.event == ev.name and x.match(ev.props)
                   and self._matches_key(seq, x.match_key, inst, ev.props) for x in seq.exits):
                self._follow(p, seq, inst, outcome_of(_step_at(seq, inst), Happening.EXIT_ON),
                             ev.at_ms, "exit_on")

    def _awaited(self, p: _Pass, ev: Event) -> None:
        for inst in list(p.state.instances):
            seq = self.rules.sequences.get(inst.sequence)
            if seq is None or inst.step >= len(seq.steps) or inst not in p.state.instances:
                continue
            step = seq.steps[inst.step]
            outcome = outcome_of(step, Happening.AWAITED_EVENT)
            if (outcome is not Outcome.IGNORE and inst.due_ms is not None
                    and isinstance(step, WaitForRule) and step.event == ev.name
                    and step.match(ev.props)
                    and self._matches_key(seq, step.match_key, inst, ev.props)):
                self._follow(p, seq, inst, outcome, ev.at_ms, "")

    # ---- instances ----------------------------------------------------------------------------

    def _try_enter(self, p: _Pass, seq: SequenceRules, key: str,
                   props: Mapping[str, Any], t: int) -> None:
        state = p.state
        for other in state.instances:
            if other.key == key and other.sequence == seq.id:
                return
        ended_key = f"{seq.id}/{key}"
        ended = state.ended_ms.get(ended_key)
        if ended is not None:
            if t < ended + seq.cooldown_ms:
                return
            del state.ended_ms[ended_key]
        cohort = cohort_of(seq, state.user, self.global_holdout)
        inst = Instance(seq.id, key, 0, t, None, dict(props), cohort)
        state.instances.append(inst)
        if len(state.instances) > 1:
            state.instances.sort(key=instance_order)
        open_goal(state, seq, inst)
        p.out.append(Entered(seq.id, key, t, cohort))
        self._run(p, seq, inst, t)

    def _end(self, p: _Pass, inst: Instance, t: int, reason: str) -> None:
        p.state.instances.remove(inst)
        p.state.ended_ms[f"{inst.sequence}/{inst.key}"] = t
        p.out.append(Exited(inst.sequence, inst.key, t, reason))

    def _goto(self, p: _Pass, seq: SequenceRules, inst: Instance, target: int, t: int) -> None:
        if target == EXIT:
            self._end(p, inst, t, "exit")
            return
        inst.step = inst.step + 1 if target == NEXT else target
        self._run(p, seq, inst, t)

    def _run(self, p: _Pass, seq: SequenceRules, inst: Instance, t: int) -> None:
        """Run steps from the one the instance is at until it waits or ends."""
        while True:
            if inst.step >= len(seq.steps):
                self._end(p, inst, t, "completed")
                return
            step: StepRule = seq.steps[inst.step]
            if isinstance(step, SendRule):
                if not self._send(p, seq, inst, step, t):
                    return
                inst.step += 1
            elif isinstance(step, WaitRule):
                inst.due_ms = t + step.duration_ms
                return
            elif isinstance(step, WaitForRule):
                inst.due_ms = t + step.timeout_ms
                return
            elif isinstance(step, BranchRule):
                taken = all_hold(self.rules, p.state, step.conditions, inst.entry, t)
                target = step.then if taken else step.else_
                if target == EXIT:
                    self._end(p, inst, t, "exit")
                    return
                inst.step = inst.step + 1 if target == NEXT else target
            elif isinstance(step, SplitRule):
                self._split(p, seq, inst, step, t)
            elif isinstance(step, JumpRule):
                inst.step = step.target
            else:
                self._end(p, inst, t, "exit")
                return

    def _split(self, p: _Pass, seq: SequenceRules, inst: Instance, step: SplitRule,
               t: int) -> None:
        arm = pick_arm(step, p.state.user, seq.id, inst.step)
        inst.arm, inst.step = arm.name, arm.start
        if (watch := watch_of(p.state, inst)) is not None:
            watch.arm = arm.name
        p.out.append(Assigned(seq.id, inst.key, t, arm.name, inst.cohort))

    # ---- sending ------------------------------------------------------------------------------

    def _send(self, p: _Pass, seq: SequenceRules, inst: Instance, step: SendRule,
              t: int) -> bool:
        """Decide a send; False when quiet hours hold it (the instance then waits at it)."""
        state = p.state
        if seq.quiet_hours is not None:
            until = quiet_until_ms(seq.quiet_hours, state.tz, t)
            if until is not None:
                inst.due_ms = until
                return False
        if not inst.cohort:  # an instance from before cohorts were drawn at entry
            inst.cohort = cohort_of(seq, state.user, self.global_holdout)
        reason = suppression(state, seq, inst.cohort, t, self.unknown_users_mailable)
        if reason is not None:
            p.out.append(Suppressed(seq.id, inst.key, inst.step, step.template, t, reason))
            return True
        variables = {**inst.entry, **segment_vars(self.rules, state, t), **step.vars}
        p.out.append(Send(seq.id, inst.key, inst.step, step.template, variables, t,
                          f"{state.user}/{inst.id}/{inst.step}"))
        note_send(state, t, seq.group, self.rules.longest_cap_ms)
        note_sent(state, inst, inst.step, step.template, t)
        self._emit(p, Event("email_sent", t, {"sequence": seq.id, "template": step.template}))
        return True

def _step_at(seq: SequenceRules, inst: Instance) -> StepRule | None:
    return seq.steps[inst.step] if inst.step < len(seq.steps) else None
