"""Properties over random event streams: a few users with different time zones send events from
a small vocabulary (product and home page views, cart adds and purchases for two carts, signups,
opens, identifies, unsubscribes, clock ticks) against a set of sequences that has every feature
at once: caps over a group and a "*" cap, quiet hours in three zones (one wrapping midnight
across the US DST weekends), keyed and per-user sequences, waits, wait_for with abandonment,
a segment entry, an inactivity entry, a holdout and cooldowns.

Every run ends with a clock advance far past every timer, so every instance has ended.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, time
from zoneinfo import ZoneInfo

from engine_tables import DAY, HOUR, MIN, SEC, ms_at
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from server.engine import (
    Action,
    Converted,
    Engine,
    Entered,
    Event,
    Exited,
    Send,
    UserState,
    compile_rules,
    decode_state,
    encode_state,
)
from server.sequences import Segment, Sequence, SequenceSet

SEQUENCE_SET = SequenceSet(
    sequences=tuple(Sequence.model_validate(d) for d in (
        {"id": "cart", "group": "recovery", "key": "cart_id", "entry": {"event": "cart_add"},
         "exit_on": [{"event": "purchase"}],
         "steps": [{"wait_for": {"event": "purchase", "timeout": "1h"}, "on_event": "exit"},
                   {"send": {"template": "cart-reminder"}}],
         "caps": [{"group": "recovery", "max": 2, "per": "1d"}],
         "quiet_hours": {"start": "21:00", "end": "08:00", "timezone": "Europe/Berlin"}},
        {"id": "browse", "group": "recovery", "entry": {"event": "page_view",
                                                         "where": {"path": "/product/*"}},
         "exit_on": [{"event": "cart_add"}],
         "steps": [{"wait_for": {"event": "cart_add", "timeout": "30m"}, "on_event": "exit"},
                   {"send": {"template": "browse"}}],
         "cooldown": "2h", "quiet_hours": {"start": "22:00", "end": "07:00"}},
        {"id": "drip", "group": "nurture", "entry": {"event": "signup"},
         "steps": [{"send": {"template": "a"}}, {"wait": "6h"}, {"send": {"template": "b"}},
                   {"wait": "1d"},
                   {"branch": {"if": [{"event": "page_view", "within": "1d"}], "then": "exit"}},
                   {"send": {"template": "c"}}],
         "caps": [{"group": "*", "max": 3, "per": "1d"}]},
        {"id": "offer", "group": "offers", "entry": {"segment": "hot"},
         "exit_on": [{"event": "purchase", "match_key": False}],
         "steps": [{"send": {"template": "offer"}}, {"wait": "2h"},
                   {"send": {"template": "offer-2"}}],
         "caps": [{"group": "offers", "max": 1, "per": "2d"}],
         "quiet_hours": {"start": "20:00", "end": "09:00", "timezone": "America/New_York"},
         "holdout": 0.3, "cooldown": "1d"},
        {"id": "reengage", "group": "lifecycle",
         "entry": {"inactive": {"event": "email_open", "for": "2d", "since": "email_sent"}},
         "exit_on": [{"event": "email_open"}],
         "steps": [{"send": {"template": "miss-you"}}, {"wait": "12h"},
                   {"send": {"template": "last-call"}}],
         "cooldown": "3d", "quiet_hours": {"start": "23:00", "end": "06:30"}},
    )),
    segments=(Segment.model_validate({
        "segment": "hot",
        "triggers": [{"event": "cart_abandonment", "time_in_minutes": 60},
                     {"event": "page_view", "page": "/product/*", "time_in_minutes": 120}],
    }),),
)
RULES = compile_rules(SEQUENCE_SET)
SEQUENCES = {s.id: s for s in SEQUENCE_SET.sequences}
CAPS = {(c.group, c.max, c.per) for s in SEQUENCE_SET.sequences for c in s.caps}
USERS = {"ann": "America/New_York", "bob": None, "cy": "Asia/Kolkata"}

EVENTS: list[tuple[str, Mapping[str, object]]] = [
    ("page_view", {"path": "/product/lamp"}),
    ("page_view", {"path": "/product/desk"}),
    ("page_view", {"path": "/"}),
    ("cart_add", {"cart_id": "c1"}),
    ("cart_add", {"cart_id": "c2"}),
    ("purchase", {"cart_id": "c1"}),
    ("purchase", {"cart_id": "c2"}),
    ("signup", {}),
    ("email_open", {}),
    ("identify", {"verified": True}),
    ("identify", {"verified": False}),
    ("unsubscribe", {}),
    ("tick", {}),  # the caller wakes the user's state at this instant (advance)
]
# Weights: the unsubscribe and unverified identify are rare, so most runs mail freely.
KINDS = st.sampled_from([0, 0, 1, 2, 3, 3, 4, 5, 6, 7, 8, 8, 9, 10, 11, 12, 12])
GAPS = st.one_of(
    st.sampled_from([0, 1, SEC, MIN, 30 * MIN, HOUR, 2 * HOUR, 6 * HOUR, DAY, 2 * DAY]),
    st.integers(0, 8 * HOUR),
)
STARTS = st.sampled_from([
    ms_at(2024, 3, 9, 18),   # US spring forward the next night
    ms_at(2024, 11, 2, 18),  # US fall back the next night
    ms_at(2024, 6, 3, 12),
])


@dataclass(frozen=True)
class Step:
    user: str
    event: Event | None  # None: a clock tick at `at_ms`
    at_ms: int


@st.composite
def streams(draw: st.DrawFn) -> list[Step]:
    at = draw(STARTS)
    steps = []
    for gap, user, kind in draw(st.lists(st.tuples(GAPS, st.sampled_from(sorted(USERS)), KINDS),
                                         max_size=40)):
        at += gap
        name, props = EVENTS[kind]
        event = None if name == "tick" else Event(name, at, props, USERS[user])
        steps.append(Step(user, event, at))
    return steps


def drive(steps: list[Step], *, reencode: bool = False,
          states: dict[str, UserState] | None = None) -> dict[str, list[Action]]:
    """Apply the stream user by user in time order, then advance every user far past the end.
    With `reencode`, each user's state goes through encode_state/decode_state before every
    call, as it does when it lives in a database row."""
    engine = Engine(RULES, unknown_users_mailable=True)
    states = states if states is not None else {}
    for user in USERS:
        states.setdefault(user, UserState(user))
    out: dict[str, list[Action]] = {u: [] for u in USERS}
    end = max((s.at_ms for s in steps), default=0) + 60 * DAY
    calls = [(s.user, s.event, s.at_ms) for s in steps] + [(u, None, end) for u in USERS]
    for user, event, at in calls:
        if reencode:
            states[user] = decode_state(user, encode_state(states[user]))
        state = states[user]
        out[user].extend(engine.receive(state, event) if event else engine.advance(state, at))
    return out


RUN = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@RUN
@given(streams())
def test_no_user_ever_exceeds_any_cap_in_any_window(steps):
    """For every Send, every cap that covers the send's group (its own group or "*") counts at
    most `max` sends to that user, of the groups it covers, within (at - per, at]."""
    for sends in ([a for a in acts if isinstance(a, Send)] for acts in drive(steps).values()):
        for send in sends:
            group = SEQUENCES[send.sequence].group
            for cap_group, most, per in CAPS:
                if cap_group not in ("*", group):
                    continue
                counted = [s for s in sends if send.at_ms - per < s.at_ms <= send.at_ms
                           and cap_group in ("*", SEQUENCES[s.sequence].group)]
                assert len(counted) <= most, (send, cap_group, counted)


def _inside(local: time, start: time, end: time) -> bool:
    return start <= local < end if start < end else (local >= start or local < end)


@RUN
@given(streams())
def test_no_send_falls_inside_quiet_hours_in_the_users_zone(steps):
    """Every Send of a sequence with quiet hours is outside [start, end) on the wall clock of
    the user's zone (the zone their events carry, else the rule's timezone)."""
    for user, actions in drive(steps).items():
        for send in (a for a in actions if isinstance(a, Send)):
            quiet = SEQUENCES[send.sequence].quiet_hours
            if quiet is None:
                continue
            zone = ZoneInfo(USERS[user] or quiet.timezone)
            local = datetime.fromtimestamp(send.at_ms / 1000, zone).time()
            start, end = time.fromisoformat(quiet.start), time.fromisoformat(quiet.end)
            assert not _inside(local, start, end), (user, send, local)


@RUN
@given(streams())
def test_an_instance_never_runs_twice_at_once(steps):
    """Entered and Exited pair up per (sequence, key): no second Entered before the Exited, no
    Exited without an Entered, every other action but a conversion comes while its instance
    runs, and after the final advance nothing is left running."""
    states: dict[str, UserState] = {}
    for user, actions in drive(steps, states=states).items():
        running: set[tuple[str, str]] = set()
        for a in actions:
            if isinstance(a, Entered):
                assert (a.sequence, a.key) not in running, (user, a)
                running.add((a.sequence, a.key))
            elif isinstance(a, Exited):
                assert (a.sequence, a.key) in running, (user, a)
                running.discard((a.sequence, a.key))
            elif isinstance(a, Converted):
                pass  # a goal's window outlives its instance
            else:
                assert (a.sequence, a.key) in running, (user, a)
        assert running == set()
        assert states[user].instances == []


@RUN
@given(streams())
def test_state_bytes_round_trip_and_change_nothing(steps):
    """decode_state(encode_state(s)) == s after every call, and a run whose states go through
    bytes before every call decides exactly what a run in memory decides."""
    engine = Engine(RULES, unknown_users_mailable=True)
    states = {u: UserState(u) for u in USERS}
    for step in steps:
        state = states[step.user]
        if step.event:
            engine.receive(state, step.event)
        else:
            engine.advance(state, step.at_ms)
        assert decode_state(step.user, encode_state(state)) == state
    assert drive(steps, reencode=True) == drive(steps)


@RUN
@given(streams())
def test_replaying_the_same_stream_gives_the_same_actions(steps):
    """Two runs of one stream on fresh states decide the same actions, in the same order."""
    assert drive(steps) == drive(steps)
