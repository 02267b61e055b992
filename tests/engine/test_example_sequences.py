"""The two example sequences do what their files say: cart-recovery (cart_add, no purchase within
60m -> cart-reminder with its vars; purchase ends it) and browse-abandonment (product_view, no
cart_add within 30m -> browse-reminder; cart_add ends it; 3d cooldown), sharing the recovery
cap of at most 2 emails per 7 days across both. Also checkout-abandonment (keyed by cart,
branch on the entry's cart value) and re-engagement (no open for 7d after the last email)."""

import pytest
from engine_tables import DAY, HOUR, MIN, T0, example_rules, run, run_brief

from server.engine import Engine, Event, Send, UserState

RECOVERY = example_rules("sequences/cart-recovery.yaml", "sequences/browse-abandonment.yaml")
CART, BROWSE = "cart-recovery", "browse-abandonment"


def _story(actions):
    """(sequence, what, at) per send, suppression, or end that is not a plain completion; `what`
    is the template sent, the suppression reason, or the exit reason."""
    story = []
    for a in actions:
        if a[0] == "send":
            story.append((a[1], a[3], a[4]))
        elif a[0] == "suppress":
            story.append((a[1], a[5], a[4]))
        elif a[0] == "exit" and a[4] != "completed":
            story.append((a[1], a[4], a[3]))
    return story


@pytest.mark.parametrize(
    ("steps", "story"),
    [
        pytest.param([Event("cart_add", T0), T0 + HOUR], [(CART, "cart-reminder", T0 + HOUR)],
                     id="cart-abandoned-60m"),
        pytest.param([Event("cart_add", T0), T0 + HOUR - 1], [], id="cart-1ms-before-60m"),
        pytest.param([Event("cart_add", T0), Event("purchase", T0 + 30 * MIN), T0 + DAY],
                     [(CART, "exit_on", T0 + 30 * MIN)], id="purchase-ends-cart-recovery"),
        pytest.param([Event("cart_add", T0), Event("purchase", T0 + HOUR), T0 + DAY],
                     [(CART, "exit_on", T0 + HOUR)], id="purchase-at-60m-still-counts"),
        pytest.param([Event("cart_add", T0), Event("cart_add", T0 + 20 * MIN), T0 + 2 * HOUR],
                     [(CART, "cart-reminder", T0 + HOUR)], id="one-cart-instance-per-user"),
        pytest.param([Event("product_view", T0), T0 + 30 * MIN],
                     [(BROWSE, "browse-reminder", T0 + 30 * MIN)], id="browse-abandoned-30m"),
        pytest.param([Event("product_view", T0), Event("cart_add", T0 + 10 * MIN),
                      T0 + 10 * MIN + HOUR],
                     [(BROWSE, "exit_on", T0 + 10 * MIN),
                      (CART, "cart-reminder", T0 + 10 * MIN + HOUR)],
                     id="cart-add-ends-browse-and-starts-cart"),
        pytest.param([Event("product_view", T0), T0 + 30 * MIN,
                      Event("product_view", T0 + 30 * MIN + 3 * DAY - 1), T0 + 5 * DAY],
                     [(BROWSE, "browse-reminder", T0 + 30 * MIN)], id="browse-cooldown-3d"),
        pytest.param([Event("product_view", T0), T0 + 30 * MIN,
                      Event("product_view", T0 + 30 * MIN + 3 * DAY), T0 + 5 * DAY],
                     [(BROWSE, "browse-reminder", T0 + 30 * MIN),
                      (BROWSE, "browse-reminder", T0 + HOUR + 3 * DAY)],
                     id="browse-again-after-3d"),
        pytest.param([Event("product_view", T0), Event("product_view", T0 + 10 * MIN),
                      T0 + HOUR], [(BROWSE, "browse-reminder", T0 + 30 * MIN)],
                     id="one-browse-instance-per-user"),
    ],
)
def test_recovery_examples(steps, story):
    assert _story(run_brief(RECOVERY, steps)) == story


def test_shared_recovery_cap_two_per_seven_days_across_both():
    steps = [
        Event("product_view", T0),                   # browse-reminder at +30m: 1st
        Event("cart_add", T0 + HOUR),                # cart-reminder at +2h: 2nd
        Event("cart_add", T0 + 4 * HOUR),            # at +5h: two in 7d, capped
        Event("product_view", T0 + 4 * DAY),         # cooldown over, but capped at +4d30m
        Event("cart_add", T0 + 7 * DAY),             # at +7d1h the +30m send has left the window
        Event("product_view", T0 + 7 * DAY + 61 * MIN),  # at +7d1h31m: +2h and +7d1h, capped
        T0 + 9 * DAY,
    ]
    assert _story(run_brief(RECOVERY, steps)) == [
        (BROWSE, "browse-reminder", T0 + 30 * MIN),
        (CART, "cart-reminder", T0 + 2 * HOUR),
        (CART, "cap", T0 + 5 * HOUR),
        (BROWSE, "cap", T0 + 4 * DAY + 30 * MIN),
        (CART, "cart-reminder", T0 + 7 * DAY + HOUR),
        (BROWSE, "cap", T0 + 7 * DAY + 91 * MIN),
    ]


def test_cart_reminder_carries_its_vars():
    engine = Engine(RECOVERY, unknown_users_mailable=True)
    actions = run(engine, [Event("cart_add", T0, {"sku": "lamp", "cart_id": "c1"}), T0 + HOUR],
                  UserState("u1"))
    (send,) = [a for a in actions if isinstance(a, Send)]
    assert dict(send.vars) == {"sku": "lamp", "cart_id": "c1", "discount_code": "SAVE15",
                               "offer_type": "free_warranty"}
    assert (send.sequence, send.key, send.step) == (CART, "", 1)


CHECKOUT = example_rules("sequences/checkout-abandonment.yaml")


def _checkout(cart: str, value_minor: int, at: int = T0) -> Event:
    return Event("checkout_start", at, {"cart_id": cart, "value_minor": value_minor})


@pytest.mark.parametrize(
    ("steps", "sent"),
    [
        pytest.param([_checkout("c1", 5_000), T0 + HOUR], [("c1", "checkout-reminder")],
                     id="small-cart"),
        pytest.param([_checkout("c1", 20_000), T0 + HOUR], [("c1", "checkout-reminder-vip")],
                     id="big-cart-jumps-to-named-step"),
        pytest.param([_checkout("c1", 5_000), _checkout("c2", 25_000),
                      Event("purchase", T0 + 45 * MIN, {"cart_id": "c1"}), T0 + HOUR],
                     [("c2", "checkout-reminder-vip")], id="purchase-of-one-cart-at-45m"),
    ],
)
def test_checkout_abandonment_example(steps, sent):
    actions = run_brief(CHECKOUT, steps)
    assert [(a[2], a[3]) for a in actions if a[0] == "send"] == sent
    assert all(a[4] == T0 + 45 * MIN for a in actions if a[0] == "send")


REENGAGEMENT = example_rules("sequences/cart-recovery.yaml", "sequences/re-engagement.yaml")


def _not_held_out() -> str:
    """A user outside re-engagement's 10% holdout, so its sends show as sends."""
    for user in (f"user-{i}" for i in range(50)):
        actions = run_brief(REENGAGEMENT, [Event("cart_add", T0), T0 + 9 * DAY], user=user)
        if not any(a[0] == "suppress" for a in actions):
            return user
    raise AssertionError("50 users all held out of a 10% holdout")


def test_re_engagement_example_enters_7d_after_the_last_email_sent():
    user = _not_held_out()
    sent = T0 + HOUR  # the cart reminder
    steps = [Event("cart_add", T0), sent + 7 * DAY - 1]
    assert [a for a in run_brief(REENGAGEMENT, steps, user=user) if a[1] == "re-engagement"] == []
    actions = run_brief(REENGAGEMENT, [Event("cart_add", T0), sent + 10 * DAY], user=user)
    assert [a for a in actions if a[1] == "re-engagement"] == [
        ("enter", "re-engagement", "", sent + 7 * DAY),
        ("send", "re-engagement", "", "we-miss-you", sent + 7 * DAY),
        ("send", "re-engagement", "", "last-call", sent + 10 * DAY),
        ("exit", "re-engagement", "", sent + 10 * DAY, "completed"),
    ]
    opened = run_brief(REENGAGEMENT, [Event("cart_add", T0), Event("email_open", sent + DAY),
                                      sent + 10 * DAY], user=user)
    assert [a for a in opened if a[1] == "re-engagement"] == []
