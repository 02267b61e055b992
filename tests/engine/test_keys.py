"""Keyed instances: `key: cart_id` runs one instance per cart, and a wait_for or exit_on with
match_key (the default) only hears events of the same cart."""

import pytest
from engine_tables import HOUR, MIN, T0, rules_of, run, run_brief

from server.engine import Engine, Event, Send, UserState


def _cart_sequence(exit_match_key: bool = True, wait_match_key: bool = True) -> object:
    return rules_of({
        "id": "cart",
        "entry": {"event": "cart_add"},
        "key": "cart_id",
        "exit_on": [{"event": "purchase", "match_key": exit_match_key}],
        "steps": [
            {"wait_for": {"event": "checkout_start", "timeout": "60m", "match_key": wait_match_key},
             "on_event": "exit"},
            {"send": {"template": "cart-reminder"}},
        ],
    })


CART = _cart_sequence()


def _add(cart: object, at: int) -> Event:
    return Event("cart_add", at, {"cart_id": cart})


def _sent(actions):
    return [(a[2], a[4]) for a in actions if a[0] == "send"]


def _exits(actions):
    return [(a[2], a[3], a[4]) for a in actions if a[0] == "exit"]


@pytest.mark.parametrize(
    ("steps", "sent", "exits"),
    [
        pytest.param([_add("c1", T0), _add("c2", T0 + 10 * MIN), T0 + 2 * HOUR],
                     [("c1", T0 + HOUR), ("c2", T0 + 70 * MIN)],
                     [("c1", T0 + HOUR, "completed"), ("c2", T0 + 70 * MIN, "completed")],
                     id="two-carts-run-concurrently"),
        pytest.param([_add("c1", T0), _add("c1", T0 + 10 * MIN), T0 + 2 * HOUR],
                     [("c1", T0 + HOUR)], [("c1", T0 + HOUR, "completed")],
                     id="same-cart-twice-one-instance"),
        pytest.param([_add("c1", T0), _add("c2", T0),
                      Event("purchase", T0 + 30 * MIN, {"cart_id": "c1"}), T0 + 2 * HOUR],
                     [("c2", T0 + HOUR)],
                     [("c1", T0 + 30 * MIN, "exit_on"), ("c2", T0 + HOUR, "completed")],
                     id="exit-on-only-same-cart"),
        pytest.param([_add("c1", T0), _add("c2", T0),
                      Event("checkout_start", T0 + 30 * MIN, {"cart_id": "c2"}), T0 + 2 * HOUR],
                     [("c1", T0 + HOUR)],
                     [("c2", T0 + 30 * MIN, "exit"), ("c1", T0 + HOUR, "completed")],
                     id="wait-for-only-same-cart"),
        pytest.param([_add("c1", T0), Event("checkout_start", T0 + MIN, {}), T0 + 2 * HOUR],
                     [("c1", T0 + HOUR)], [("c1", T0 + HOUR, "completed")],
                     id="event-without-key-matches-no-cart"),
        pytest.param([Event("cart_add", T0, {"sku": "x"}), T0 + 2 * HOUR], [], [],
                     id="entry-without-key-enters-nothing"),
        pytest.param([_add("", T0), T0 + 2 * HOUR], [], [],
                     id="entry-with-empty-key-enters-nothing"),  # protobuf's absent string
        pytest.param([_add("c1", T0), Event("purchase", T0 + MIN, {"cart_id": ""}),
                      T0 + 2 * HOUR],
                     [("c1", T0 + HOUR)], [("c1", T0 + HOUR, "completed")],
                     id="event-with-empty-key-matches-no-cart"),
        pytest.param([_add(7, T0), Event("purchase", T0 + MIN, {"cart_id": "7"})], [],
                     [("7", T0 + MIN, "exit_on")], id="key-7-and-text-7-are-one-cart"),
        pytest.param([_add(7.0, T0), Event("purchase", T0 + MIN, {"cart_id": 7})], [],
                     [("7", T0 + MIN, "exit_on")], id="key-7.0-and-7-are-one-cart"),
    ],
)
def test_keyed_instances(steps, sent, exits):
    actions = run_brief(CART, steps)
    assert (_sent(actions), _exits(actions)) == (sent, exits)


def test_match_key_false_hears_every_cart():
    rules = _cart_sequence(exit_match_key=False, wait_match_key=False)
    purchase = run_brief(rules, [_add("c1", T0), _add("c2", T0),
                                 Event("purchase", T0 + MIN, {"cart_id": "c9"})])
    assert _exits(purchase) == [("c1", T0 + MIN, "exit_on"), ("c2", T0 + MIN, "exit_on")]
    checkout = run_brief(rules, [_add("c1", T0), _add("c2", T0),
                                 Event("checkout_start", T0 + MIN, {})])
    assert _exits(checkout) == [("c1", T0 + MIN, "exit"), ("c2", T0 + MIN, "exit")]


def test_each_cart_gets_its_own_entry_vars():
    engine = Engine(CART, unknown_users_mailable=True)
    actions = run(engine, [Event("cart_add", T0, {"cart_id": "c1", "sku": "lamp"}),
                           Event("cart_add", T0, {"cart_id": "c2", "sku": "desk"}),
                           T0 + HOUR], UserState("u1"))
    sends = [a for a in actions if isinstance(a, Send)]
    assert [(s.key, s.vars["sku"]) for s in sends] == [("c1", "lamp"), ("c2", "desk")]
    assert len({s.message_key for s in sends}) == 2


def test_cooldown_is_per_key():
    rules = rules_of({
        "id": "cart", "entry": {"event": "cart_add"}, "key": "cart_id", "cooldown": "1d",
        "steps": [{"send": {"template": "thanks"}}],
    })
    actions = run_brief(rules, [_add("c1", T0), _add("c1", T0 + HOUR), _add("c2", T0 + HOUR),
                                _add("c1", T0 + 24 * HOUR)])
    assert [(a[2], a[3]) for a in actions if a[0] == "enter"] == [
        ("c1", T0), ("c2", T0 + HOUR), ("c1", T0 + 24 * HOUR)]


def test_message_keys_differ_between_users_whose_instances_start_together():
    """The outbox deduplicates on message_key: two users must never share one."""
    from server.engine import Engine, Event, Send, UserState, compile_rules
    from server.sequences import SequenceSet
    from server.sequences.model import Sequence

    seq = Sequence.model_validate({"id": "hello", "entry": {"event": "go"},
                                   "steps": [{"send": {"template": "hi"}}]})
    engine = Engine(compile_rules(SequenceSet(sequences=(seq,))), unknown_users_mailable=True)
    keys = set()
    for user in ("u:1", "u:2"):
        actions = engine.receive(UserState(user), Event("go", 1_000))
        keys.update(a.message_key for a in actions if isinstance(a, Send))
    assert len(keys) == 2
