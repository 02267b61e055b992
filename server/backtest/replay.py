"""Replaying a history through the engine under a simulated clock.

Users are independent, so what a replay must get right is each user's own order: their events
stable-sorted by time (file order breaks ties), fed to their own UserState of one Engine. Most
histories already come in that order per user (exports are sorted by time, or by user and
time), so the replay first streams the rows as they come, a block at a time, holding only the
users' states in memory. If some user's event goes back in time, that pass is dropped and the
history is read again, grouped by user and sorted, and replayed from that; the result is the
same either way.

After the last event the clock runs on: `advance` fires every timer up to the end of the
replay, which is `until` when given (events after it are left out), else the last event of the
whole history plus MAX_RUN_ON_MS. That bound stops sets whose timers re-arm forever; users whose
state still holds a timer at the end are counted in `pending_users`.

Only events the engine reads (Engine.reads) are built and fed; the rest of a history (most of
it, usually: scrolls and page views no rule names) is counted and clocked but cannot change
any decision, because timers fire at their due times whenever the engine is next called.

Every action is tallied per sequence (outcomes.py: with conversions and what history says of
the goal), and every decided send (sent or suppressed) is kept as a DecidedSend, in the order
of (at, user, sequence, step).
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from itertools import islice
from operator import attrgetter, itemgetter

from server.backtest.history import HistoryFile, HistoryRow
from server.backtest.outcomes import GoalIndex, SequenceTally, goal_index, note_goal_event
from server.engine import (
    Action,
    Converted,
    Engine,
    Entered,
    Event,
    Exited,
    ScoreChanged,
    Send,
    Suppressed,
    UserState,
)
from server.engine.scoring import score_at

__all__ = ["MAX_RUN_ON_MS", "DecidedSend", "Replay", "SequenceTally", "new_replay",
           "replay_history"]

MAX_RUN_ON_MS = 366 * 86_400_000
BLOCK_ROWS = 16384  # rows read, then fed: the engine phase is timed per block, not per event


@dataclass(frozen=True, slots=True)
class DecidedSend:
    at_ms: int
    user: str
    sequence: str
    step: int
    template: str
    reason: str | None  # why it was suppressed; None when it was sent


@dataclass(slots=True)
class Replay:
    """What a replay found: counts, per-sequence tallies, decided sends, and its own cost."""

    tallies: dict[str, SequenceTally]  # every loaded sequence, even if nothing happened
    events: int = 0  # events fed
    users: int = 0
    sends: list[DecidedSend] = field(default_factory=list)
    clock_end_ms: int | None = None  # where the simulated clock stopped; None: no events
    pending_users: int = 0  # users with a timer still pending at clock_end_ms
    events_after_until: int = 0  # events left out because they come after `until`
    engine_s: float = 0.0  # seconds spent feeding the engine and running its clock on
    sorted_by_user: bool = False  # the history was out of order and had to be sorted first
    band_changes: Counter[str] = field(default_factory=Counter)  # band entered -> how often
    scores: list[float] = field(default_factory=list)  # each user's score at the clock's end
    goals: GoalIndex = field(default_factory=dict)  # goal event name -> (sequence, goal)
    last_sent: dict[tuple[str, str], int] = field(default_factory=dict)  # (user, seq) -> at


    def done_feeding(self) -> None:
        """Drop what only feeding needs (a worker's result crosses a process boundary)."""
        self.goals, self.last_sent = {}, {}
        for tally in self.tallies.values():
            tally.lead_ms.sort()
        self.scores.sort()


def new_replay(engine: Engine) -> Replay:
    """An empty result for a replay by `engine`: every loaded sequence has a tally."""
    return Replay({seq_id: SequenceTally() for seq_id in sorted(engine.rules.sequences)},
                  goals=goal_index(engine.rules))


class _OutOfOrder(Exception):
    """A user's event is earlier than one already fed for them."""


@dataclass(slots=True)
class _Follower:
    """One user being replayed: their engine state and the time of their last event fed."""

    state: UserState
    last_at_ms: int


@dataclass(slots=True)
class _Clock:
    latest_ms: int | None = None  # the latest event time seen in the whole history


def replay_history(engine: Engine, history: Iterable[HistoryRow],
                   until_ms: int | None = None) -> Replay:
    """Replay `history`, which must be iterable twice (a HistoryFile or a list): it is read
    again when it turns out not to be in time order per user."""
    if isinstance(history, Iterator):
        raise TypeError("replay_history needs a history it can read twice, not an iterator")
    try:
        return _replay_in_order(engine, history, until_ms)
    except _OutOfOrder:
        result = _replay_in_order(engine, _sorted_per_user(history), until_ms)
        result.sorted_by_user = True
        return result


def _replay_in_order(engine: Engine, rows: Iterable[HistoryRow], until_ms: int | None) -> Replay:
    result = new_replay(engine)
    followers: dict[str, _Follower] = {}
    clock = _Clock()
    for block in _blocks(rows):
        started = time.perf_counter()
        _feed(engine, block, followers, until_ms, result, clock)
        result.engine_s += time.perf_counter() - started
    if clock.latest_ms is not None:
        result.clock_end_ms = until_ms if until_ms is not None else clock.latest_ms + MAX_RUN_ON_MS
        started = time.perf_counter()
        _run_clocks_on(engine, followers, result.clock_end_ms, result,
                       until_ms if until_ms is not None else clock.latest_ms)
        result.engine_s += time.perf_counter() - started
    result.users = len(followers)
    result.sends.sort(key=attrgetter("at_ms", "user", "sequence", "step"))
    result.done_feeding()
    return result


def _blocks(rows: Iterable[HistoryRow]) -> Iterator[list[HistoryRow]]:
    if isinstance(rows, HistoryFile):
        yield from rows.blocks(BLOCK_ROWS)  # read in blocks: no per-row generator hops
        return
    pending = iter(rows)
    while block := list(islice(pending, BLOCK_ROWS)):
        yield block


def _feed(engine: Engine, block: list[HistoryRow], followers: dict[str, _Follower],
          until_ms: int | None, result: Replay, clock: _Clock) -> None:
    receive, fed, goals = engine.receive, 0, result.goals
    latest = clock.latest_ms if clock.latest_ms is not None else block[0][2]
    for user, name, at_ms, props, tz in block:
        if until_ms is not None and at_ms > until_ms:
            result.events_after_until += 1
            continue
        fed += 1
        if at_ms > latest:
            latest = at_ms
        follower = followers.get(user)
        if follower is None:
            follower = followers[user] = _Follower(UserState(user), at_ms)
        if props is None and (tz is None or tz == follower.state.tz):
            continue  # an event the engine does not read, and no news of the time zone
        if at_ms < follower.last_at_ms:
            raise _OutOfOrder
        follower.last_at_ms = at_ms
        actions = receive(follower.state, Event(name, at_ms, props or {}, tz))
        if name in goals and props is not None:
            note_goal_event(goals[name], result.tallies, result.last_sent, user, at_ms, props,
                            actions)
        if actions:
            _record(actions, user, result)
    result.events += fed
    clock.latest_ms = latest


def _run_clocks_on(engine: Engine, followers: dict[str, _Follower], end_ms: int,
                   result: Replay, scored_at: int) -> None:
    """Run every user's clock on to `end_ms`; keep each scored user's score at `scored_at`
    (the history's end, not the clock's: by then every score has decayed)."""
    scoring = engine.rules.scoring
    for user, follower in followers.items():
        actions = engine.advance(follower.state, end_ms)
        if actions:
            _record(actions, user, result)
        if engine.next_deadline(follower.state) is not None:
            result.pending_users += 1
        if scoring is not None and follower.state.score:
            result.scores.append(score_at(follower.state, scoring, scored_at))


def _sorted_per_user(rows: Iterable[HistoryRow]) -> Iterator[HistoryRow]:
    """Every user's events in time order (events at the same instant keep their file order),
    one user after another, in the order users first appear."""
    by_user: dict[str, list[HistoryRow]] = {}
    for row in rows:
        events = by_user.get(row[0])
        if events is None:
            by_user[row[0]] = [row]
        else:
            events.append(row)
    by_time = itemgetter(2)
    for user in list(by_user):
        events = by_user.pop(user)  # let each user's events go once they are fed
        events.sort(key=by_time)  # stable
        yield from events


def _record(actions: list[Action], user: str, result: Replay) -> None:
    for action in actions:
        if isinstance(action, ScoreChanged):
            result.band_changes[action.band] += 1
            continue
        tally = result.tallies[action.sequence]
        if isinstance(action, Send):
            tally.sent += 1
            tally.mailed.add(user)
            result.last_sent[(user, action.sequence)] = action.at_ms
            result.sends.append(DecidedSend(action.at_ms, user, action.sequence, action.step,
                                            action.template, None))
        elif isinstance(action, Suppressed):
            tally.suppressed[action.reason] += 1
            result.sends.append(DecidedSend(action.at_ms, user, action.sequence, action.step,
                                            action.template, action.reason))
        elif isinstance(action, Entered):
            tally.entered += 1
        elif isinstance(action, Exited):
            tally.exited += 1
        elif isinstance(action, Converted):
            tally.converted += 1
            if action.first_sent_ms is not None:
                tally.converted_after_email += 1
                tally.lead_ms.append(action.at_ms - action.first_sent_ms)
