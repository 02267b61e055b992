"""Abandonment events the engine emits, and segments built on them: the high-intent segment
(cart_abandonment within 60 min + a premium-laptop page view within 120 min) enters the
high-intent offer, whose send carries the segment's content_rules as template variables."""

import pytest
from engine_tables import HOUR, MIN, T0, example_rules, rules_of, run, run_brief

from server.engine import Engine, Event, Send, UserState

HIGH_INTENT = example_rules(
    "sequences/cart-recovery.yaml",
    "sequences/high-intent-offer.yaml",
    "segments/high-intent.json",
)
LAPTOP = {"path": "/product/premium-laptop"}
ABANDONED = T0 + HOUR  # cart_add at T0, cart-recovery's wait_for times out here


def _offer_entries(actions):
    return [a[3] for a in actions if a[:2] == ("enter", "high-intent-offer")]


@pytest.mark.parametrize(
    ("steps", "entered_at"),
    [
        pytest.param([Event("page_view", T0 - 10 * MIN, LAPTOP), Event("cart_add", T0),
                      ABANDONED], [ABANDONED], id="viewed-then-abandoned"),
        pytest.param([Event("page_view", ABANDONED - 120 * MIN + 1, LAPTOP),
                      Event("cart_add", T0), ABANDONED], [ABANDONED], id="view-1ms-inside-120m"),
        pytest.param([Event("page_view", ABANDONED - 120 * MIN, LAPTOP),
                      Event("cart_add", T0), ABANDONED], [], id="view-at-120m-window-start"),
        pytest.param([Event("cart_add", T0), ABANDONED,
                      Event("page_view", ABANDONED + 60 * MIN - 1, LAPTOP)],
                     [ABANDONED + 60 * MIN - 1], id="abandoned-then-viewed-within-60m"),
        pytest.param([Event("cart_add", T0), ABANDONED,
                      Event("page_view", ABANDONED + 60 * MIN, LAPTOP)],
                     [], id="view-when-abandonment-at-60m-window-start"),
        pytest.param([Event("page_view", T0, {"path": "/product/budget-phone"}),
                      Event("cart_add", T0), ABANDONED], [], id="other-product"),
        pytest.param([Event("page_view", T0, LAPTOP), Event("cart_add", T0),
                      Event("purchase", T0 + 30 * MIN), ABANDONED], [],
                     id="purchased-no-abandonment"),
        pytest.param([Event("page_view", T0, LAPTOP), Event("cart_add", T0), ABANDONED,
                      Event("page_view", ABANDONED + MIN, LAPTOP)], [ABANDONED],
                     id="staying-a-member-enters-once"),
    ],
)
def test_high_intent_segment_entry(steps, entered_at):
    assert _offer_entries(run_brief(HIGH_INTENT, steps)) == entered_at


def test_segment_send_carries_content_rules_as_vars():
    engine = Engine(HIGH_INTENT, unknown_users_mailable=True)
    actions = run(engine, [Event("page_view", T0, LAPTOP), Event("cart_add", T0, {"sku": "lp"}),
                           ABANDONED], UserState("u1"))
    sends = {a.template: a for a in actions if isinstance(a, Send)}
    assert set(sends) == {"cart-reminder", "premium-offer"}
    offer = sends["premium-offer"]
    assert (offer.sequence, offer.at_ms) == ("high-intent-offer", ABANDONED)
    assert offer.vars["discount_code"] == "SAVE15"
    assert offer.vars["offer_type"] == "free_warranty"


SEED = {"segment": "high-intent-cart-abandoners", "triggers": [
    {"event": "cart_abandonment", "time_in_minutes": 60},
    {"event": "page_view", "page": "/product/premium-laptop", "time_in_minutes": 120}],
    "content_rules": [{"field": "discount_code", "value": "SAVE15"}]}


def test_seed_segment_as_written_drives_a_segment_entry():
    rules = rules_of(
        {"id": "cart", "entry": {"event": "cart_add"},
         "steps": [{"wait_for": {"event": "purchase", "timeout": "60m"}, "on_event": "exit"}]},
        {"id": "offer", "entry": {"segment": "high-intent-cart-abandoners"},
         "steps": [{"send": {"template": "offer"}}]},
        SEED,
    )
    engine = Engine(rules, unknown_users_mailable=True)
    actions = run(engine, [Event("page_view", T0, LAPTOP), Event("cart_add", T0), ABANDONED],
                  UserState("u1"))
    (offer,) = [a for a in actions if isinstance(a, Send)]
    assert (offer.template, offer.at_ms, offer.vars["discount_code"]) == (
        "offer", ABANDONED, "SAVE15")


def _listener(entry_event: str) -> dict[str, object]:
    return {"id": f"on-{entry_event}", "entry": {"event": entry_event},
            "steps": [{"send": {"template": entry_event}}]}


def _waits(entry: str, emit: object = None) -> dict[str, object]:
    wait_for: dict[str, object] = {"event": "purchase", "timeout": "60m"}
    if emit is not None:
        wait_for["emit"] = emit
    return {"id": "waits", "entry": {"event": entry}, "steps": [{"wait_for": wait_for}]}


@pytest.mark.parametrize(
    ("entry", "emit", "emitted"),
    [
        pytest.param("cart_add", None, "cart_abandonment", id="cart_add"),
        pytest.param("checkout_start", None, "checkout_abandonment", id="checkout_start"),
        pytest.param("product_view", None, "browse_abandonment", id="product_view"),
        pytest.param("signup", None, None, id="other-entries-emit-nothing"),
        pytest.param("signup", "signup_abandonment", "signup_abandonment", id="emit-named"),
    ],
)
def test_wait_for_timeout_emits_abandonment(entry, emit, emitted):
    names = ["cart_abandonment", "checkout_abandonment", "browse_abandonment",
             "signup_abandonment"]
    rules = rules_of(_waits(entry, emit), *(_listener(n) for n in names))
    engine = Engine(rules, unknown_users_mailable=True)
    actions = run(engine, [Event(entry, T0, {"cart_id": "c1"}), ABANDONED], UserState("u1"))
    sends = [a for a in actions if isinstance(a, Send)]
    assert [s.template for s in sends] == ([emitted] if emitted else [])
    if emitted:
        assert sends[0].at_ms == ABANDONED
        assert sends[0].vars["cart_id"] == "c1"  # the abandonment carries the entry's props


def test_no_abandonment_when_the_awaited_event_comes():
    rules = rules_of(_waits("cart_add"), _listener("cart_abandonment"))
    actions = run_brief(rules, [Event("cart_add", T0), Event("purchase", ABANDONED), T0 + 5 * HOUR])
    assert [a for a in actions if a[0] == "send"] == []
