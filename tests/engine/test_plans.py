"""The event plans' shortcuts change no decision.

An event's plan lists only what that event can touch. Segments are the subtle part: a plan lists
only the segments that some sequence enters on and that have a trigger on the event, and their
membership is read (before and after) only when a tracker feeding them matched; an event that
only feeds signals skips the rest of the engine. The definition is simpler: on an event, read
every enterable segment's membership before and after, and keep each tracker's stamps with the
plain loop. `DefinitionEngine` does exactly that, on plans that list every enterable segment (so
none is signals-only); Hypothesis feeds the same streams to both and compares every action and
state.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from engine_tables import DAY, HOUR, MIN, SEC, T0, example_rules, rules_of
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from server.engine import Engine, Event, Rules, UserState, encode_state
from server.engine.rules import EventPlan, SegmentRules

EXAMPLES = example_rules(
    "sequences/browse-abandonment.yaml", "sequences/cart-recovery.yaml",
    "sequences/checkout-abandonment.yaml", "sequences/engaged-cart.yaml",
    "sequences/high-intent-offer.yaml", "sequences/product-interest.yaml",
    "sequences/re-engagement.yaml", "segments/high-intent.json",
)
# Segments fed by an engine event and a page view, by a page view alone (one page view can make
# a user join two segments at once) and by scrolls alone; one no sequence enters on, read only as
# a branch condition.
SEGMENTS = rules_of(
    {"id": "cart", "key": "cart_id", "entry": {"event": "cart_add"},
     "exit_on": [{"event": "purchase"}],
     "steps": [{"wait_for": {"event": "purchase", "timeout": "1h"}, "on_event": "exit"},
               {"send": {"template": "cart"}}]},
    {"id": "offer", "entry": {"segment": "hot"}, "cooldown": "2h",
     "steps": [{"send": {"template": "offer"}}, {"wait": "30m"},
               {"branch": {"if": [{"segment": "browsing"}], "then": "exit"}},
               {"send": {"template": "offer-2"}}]},
    {"id": "read", "entry": {"segment": "reader"}, "cooldown": "1h",
     "steps": [{"branch": {"if": [{"segment": "hot"}], "then": "exit"}},
               {"send": {"template": "read"}}]},
    {"id": "browse", "entry": {"event": "page_view", "where": {"path": "/product/*"},
                               "if": [{"segment": "reader"}]},
     "steps": [{"wait": "10m"}, {"send": {"template": "browse"}}], "cooldown": "1h"},
    {"segment": "hot", "triggers": [{"event": "cart_abandonment", "time_in_minutes": 60},
                                    {"event": "page_view", "page": "/product/*",
                                     "time_in_minutes": 120}],
     "content_rules": [{"field": "code", "value": "HOT"}]},
    {"segment": "reader", "triggers": [{"event": "scroll", "where": {"depth_pct": {"gte": 70}},
                                        "time_in_minutes": 30, "at_least": 2}]},
    {"segment": "browsing", "triggers": [{"event": "page_view", "page": "/sale",
                                          "time_in_minutes": 30}]},
    {"id": "look", "entry": {"segment": "looker"}, "cooldown": "30m",
     "steps": [{"send": {"template": "look"}}]},
    {"segment": "looker", "triggers": [{"event": "page_view", "page": "/product/l*",
                                        "time_in_minutes": 60}]},
)
EVENTS = [
    ("page_view", {"path": "/product/premium-laptop"}),
    ("page_view", {"path": "/product/lamp"}),  # PRODUCT_VIEW
    ("page_view", {"path": "/sale"}),
    ("page_view", {"path": "/"}),
    ("scroll", {"path": "/product/lamp", "depth_pct": "80"}),
    ("scroll", {"path": "/demo/product/lamp", "depth_pct": 75}),
    ("scroll", {"path": "/product/lamp", "depth_pct": "40"}),
    ("dwell", {"path": "/product/lamp", "engaged_ms": "130000"}),
    ("hover", {"target": "product:lamp", "ms": "900"}),
    ("hover", {"target": "card:lamp"}),
    ("product_view", {"product_id": "lamp"}),
    ("cart_add", {"cart_id": "c1"}),
    ("cart_add", {"cart_id": "c2"}),
    ("checkout_start", {"cart_id": "c1", "value_minor": "25000"}),
    ("purchase", {"cart_id": "c1"}),
    ("email_open", {}),
    ("identify", {"verified": True}),
    ("tick", {}),  # the caller wakes the user's state at this instant (advance)
]
GAPS = st.one_of(st.sampled_from([0, 1, SEC, MIN, 20 * MIN, HOUR, 2 * HOUR, DAY, 8 * DAY]),
                 st.integers(0, 3 * HOUR))
STREAMS = st.lists(st.tuples(GAPS, st.sampled_from(["ann", "bob"]),
                             st.integers(0, len(EVENTS) - 1)), max_size=60)


def by_definition(rules: Rules) -> Rules:
    """The same rules, with plans that list every enterable segment on every event."""
    enterable = tuple(seg for name, seg in rules.segments.items()
                      if name in rules.entries_by_segment)
    return replace(rules, plans={
        name: replace(plan, segments=enterable, watched=frozenset(rules.horizons_ms))
        for name, plan in rules.plans.items()
    })


def _member(segment: SegmentRules, signals: Mapping[str, list[int]], t: int) -> bool:
    return all(trigger.holds(signals.get(trigger.tracker, []), t) for trigger in segment.triggers)


class DefinitionEngine(Engine):
    """Reads every segment of the plan before and after the event, whatever matched."""

    def _track(self, state: UserState, plan: EventPlan, props: Mapping[str, Any],
               t: int) -> list[SegmentRules]:
        before = [_member(seg, state.signals, t) for seg in plan.segments]
        for tracker in plan.trackers:
            if tracker.match(props):
                stamps = state.signals.setdefault(tracker.id, [])
                stamps.append(t)
                while stamps and (len(stamps) > tracker.keep
                                  or stamps[0] <= t - tracker.horizon_ms):
                    stamps.pop(0)
        return [seg for seg, was in zip(plan.segments, before, strict=True)
                if not was and _member(seg, state.signals, t)]


def _decisions(engine: Engine, stream: list[tuple[int, str, int]]) -> list[object]:
    states = {"ann": UserState("ann"), "bob": UserState("bob")}
    out: list[object] = []
    at = T0
    for gap, user, kind in stream:
        at += gap
        name, props = EVENTS[kind]
        state = states[user]
        if name == "tick":
            out.append(engine.advance(state, at))
        else:
            tz = "Europe/Berlin" if user == "ann" else None
            out.append(engine.receive(state, Event(name, at, props, tz)))
        out.append(encode_state(state))
    out += [engine.advance(state, at + 40 * DAY) for state in states.values()]
    return out


RUN = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def test_the_definition_plans_differ_from_the_indexed_ones():
    """So the comparisons below compare something."""
    assert any(plan.signals_only for plan in EXAMPLES.plans.values())  # scroll, hover, dwell
    for rules in (EXAMPLES, SEGMENTS):
        defined = by_definition(rules)
        assert not any(plan.signals_only for plan in defined.plans.values())
        assert any(len(plan.segments) < len(defined.plans[name].segments)
                   for name, plan in rules.plans.items())


@RUN
@given(STREAMS)
def test_example_sequences_decide_as_the_definition_does(stream):
    indexed = Engine(EXAMPLES, unknown_users_mailable=True)
    defined = DefinitionEngine(by_definition(EXAMPLES), unknown_users_mailable=True)
    assert _decisions(indexed, stream) == _decisions(defined, stream)


CART_ADD, PRODUCT_VIEW = EVENTS.index(("cart_add", {"cart_id": "c1"})), 1


@RUN
@given(STREAMS)
@example([(0, "ann", CART_ADD), (HOUR + MIN, "ann", PRODUCT_VIEW)])
def test_segment_entries_decide_as_the_definition_does(stream):
    """The example joins "hot" and "looker" with one page view (after the cart's abandonment)."""
    indexed = Engine(SEGMENTS, unknown_users_mailable=True)
    defined = DefinitionEngine(by_definition(SEGMENTS), unknown_users_mailable=True)
    assert _decisions(indexed, stream) == _decisions(defined, stream)
