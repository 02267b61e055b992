"""The lead score: points by event, halving every half-life, bands crossed either way (by
points at the event, by decay at the computed instant), readable in conditions and enterable on;
its state round-trips; and the engine's figure equals a plain sum of decayed points."""

from __future__ import annotations

import math

import msgpack
import pytest
from engine_tables import DAY, HOUR, T0, brief, run
from hypothesis import given, settings
from hypothesis import strategies as st

from server.engine import (
    Engine,
    Event,
    ScoreChanged,
    UserState,
    compile_rules,
    decode_state,
    encode_state,
)
from server.engine.scoring import score_at
from server.sequences import Sequence, SequenceSet
from server.sequences.scoring import Scoring

SCORING = Scoring.model_validate({
    "half_life": "1d", "bands": {"cold": 0, "warm": 20, "hot": 50},
    "rules": [{"event": "product_view", "points": 1},
              {"event": "scroll", "where": {"depth_pct": {"gte": 70}}, "points": 2},
              {"event": "email_click", "points": 5}, {"event": "purchase", "points": 20},
              {"event": "unsubscribe", "points": -30}]})
POINTS = {"product_view": 1, "email_click": 5, "purchase": 20, "unsubscribe": -30}


def _engine(*docs, scoring: Scoring = SCORING) -> Engine:
    sequences = tuple(Sequence.model_validate(d) for d in docs)
    return Engine(compile_rules(SequenceSet(sequences=sequences), scoring),
                  unknown_users_mailable=True)


def _score(engine: Engine, state: UserState, t: int) -> float:
    assert engine.rules.scoring is not None
    return score_at(state, engine.rules.scoring, t)


@pytest.mark.parametrize(("steps", "at", "expected"), [
    pytest.param([("purchase", 0)], 0, 20.0, id="points-at-once"),
    pytest.param([("purchase", 0)], DAY, 10.0, id="halved-after-a-half-life"),
    pytest.param([("purchase", 0)], 3 * DAY, 2.5, id="an-eighth-after-three"),
    pytest.param([("purchase", 0), ("purchase", DAY)], DAY, 30.0, id="old-decayed-plus-new"),
    pytest.param([("purchase", 0), ("unsubscribe", 0)], 0, -10.0, id="negative-points"),
    pytest.param([("unsubscribe", 0)], 2 * DAY, -7.5, id="negative-decays-towards-zero"),
    pytest.param([("scroll", 0)], 0, 0.0, id="a-rule-s-where-unmet"),
    pytest.param([("signup", 0)], 0, 0.0, id="an-event-no-rule-names"),
])
def test_the_formula_at_its_edges(steps, at, expected):
    engine = _engine()
    state = UserState("u1")
    run(engine, [Event(name, T0 + dt, {"depth_pct": 50}) for name, dt in steps], state)
    assert _score(engine, state, T0 + at) == pytest.approx(expected)


def test_bands_are_crossed_up_by_points_and_down_by_decay_at_the_instant():
    engine = _engine()
    state = UserState("u1")
    up = run(engine, [Event("purchase", T0), Event("purchase", T0 + 1), Event("purchase",
                                                                               T0 + 2)], state)
    assert [(a.previous, a.band) for a in up if isinstance(a, ScoreChanged)] == [
        ("", "warm"), ("warm", "hot")]  # 20, 40, 60: cold's floor is passed on the way
    # about 60 falls below 50 after log2(60/50) half-lives
    assert state.score == pytest.approx(60, abs=1e-5)
    below_hot = state.score_ms + math.log2(state.score / 50) * DAY
    assert engine.next_deadline(state) == math.floor(below_hot) + 1
    assert [a for a in engine.advance(state, math.floor(below_hot))
            if isinstance(a, ScoreChanged)] == []
    down = engine.advance(state, T0 + 5 * DAY)
    assert [(a.previous, a.band) for a in down if isinstance(a, ScoreChanged)] == [
        ("hot", "warm"), ("warm", "cold")]
    assert down[0].at_ms == math.floor(below_hot) + 1
    assert engine.next_deadline(state) is None  # cold's floor is 0: a positive score stays


def test_a_negative_score_rises_into_a_band_below_zero():
    scoring = Scoring.model_validate({"half_life": "1d", "bands": {"lost": -20, "cold": 0},
                                      "rules": [{"event": "unsubscribe", "points": -40}]})
    engine = _engine(scoring=scoring)
    state = UserState("u1")
    run(engine, [Event("unsubscribe", T0)], state)
    assert state.band == ""
    changes = [a for a in engine.advance(state, T0 + 2 * DAY) if isinstance(a, ScoreChanged)]
    assert [(a.previous, a.band, a.at_ms) for a in changes] == [("", "lost", T0 + DAY)]


ENTER_HOT = {"id": "hot-lead", "entry": {"event": "score_changed", "where": {"band": "hot"}},
             "steps": [{"send": {"template": "call-me"}}]}
GATED = {"id": "gated", "entry": {"event": "page_view", "if": [{"score": {"at_least": 25}}]},
         "steps": [{"send": {"template": "offer"}}]}


def test_sequences_enter_on_a_band_and_read_the_score_in_conditions():
    engine = _engine(ENTER_HOT, GATED)
    state = UserState("u1")
    actions = brief(run(engine, [Event("page_view", T0), Event("purchase", T0 + HOUR),
                                 Event("page_view", T0 + 2 * HOUR),
                                 Event("purchase", T0 + 3 * HOUR),
                                 Event("purchase", T0 + 3 * HOUR + 1)], state))
    sends = [(a[1], a[4]) for a in actions if a[0] == "send"]
    assert sends == [("hot-lead", T0 + 3 * HOUR + 1)]  # 20 is not 25: the gate stays shut
    later = brief(run(engine, [Event("page_view", T0 + 4 * HOUR)], state))
    assert [(a[1], a[0]) for a in later if a[0] == "send"] == [("gated", "send")]


def test_the_state_of_format_2_reads_with_no_score():
    old = msgpack.packb([2, [], {}, [], {}, {}, None, "", []])
    state = decode_state("u1", old)
    assert (state.score, state.band, state.score_due_ms) == (0.0, "", None)


EVENTS = st.sampled_from(["product_view", "email_click", "purchase", "unsubscribe", "signup"])


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(EVENTS, st.integers(0, 3 * DAY)), max_size=40),
       st.integers(0, 10 * DAY))
def test_the_engine_s_score_is_the_plain_sum_and_survives_its_bytes(stream, extra):
    engine = _engine()
    state = UserState("u1")
    t = T0
    events = []
    for name, gap in stream:
        t += gap
        events.append(Event(name, t))
    run(engine, events, state)
    end = t + extra
    plain = sum(POINTS.get(e.name, 0) * 2.0 ** (-(end - e.at_ms) / DAY) for e in events)
    assert _score(engine, state, end) == pytest.approx(plain, abs=1e-6)
    again = decode_state("u1", encode_state(state))
    assert _score(engine, again, end) == pytest.approx(plain, abs=1e-6)
    replayed = UserState("u1")
    run(engine, events, replayed)
    assert (replayed.score, replayed.score_ms, replayed.band) == (
        state.score, state.score_ms, state.band)
