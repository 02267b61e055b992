"""Engine.merge folds an anonymous device's state into its user, idempotently."""

from server.engine import Engine, Event, UserState, compile_rules, decode_state, encode_state
from server.sequences import SequenceSet
from server.sequences.model import Sequence

SEQ = Sequence.model_validate({
    "id": "interested", "entry": {"event": "cart_add", "if": [
        {"event": "product_view", "within": "1h", "at_least": 3}]},
    "steps": [{"wait": "1d"}, {"send": {"template": "t"}}]})
ENGINE = Engine(compile_rules(SequenceSet(sequences=(SEQ,))), unknown_users_mailable=True)


def _device_state() -> UserState:
    state = UserState("d:1")
    for at in (1_000, 1_000, 2_000):  # two events at one instant
        ENGINE.receive(state, Event("product_view", at))
    return state


def test_merged_signals_make_the_users_condition_hold():
    user = UserState("u:1")
    ENGINE.merge(user, _device_state())
    actions = ENGINE.receive(user, Event("cart_add", 3_000))
    assert [type(a).__name__ for a in actions] == ["Entered"]


def test_merging_twice_equals_merging_once():
    once, twice = UserState("u:1"), UserState("u:1")
    ENGINE.receive(once, Event("product_view", 500))
    ENGINE.receive(twice, Event("product_view", 500))
    ENGINE.merge(once, _device_state())
    ENGINE.merge(twice, _device_state())
    ENGINE.merge(twice, _device_state())
    assert encode_state(once) == encode_state(twice)
    assert decode_state("u:1", encode_state(once)).signals == once.signals


def test_a_running_instance_moves_over_unless_the_user_has_one():
    device = UserState("d:1")
    for at in (1_000, 1_100, 1_200, 1_300):
        ENGINE.receive(device, Event("product_view" if at < 1_300 else "cart_add", at))
    user = UserState("u:1")
    ENGINE.merge(user, device)
    assert [(i.sequence, i.due_ms) for i in user.instances] == [("interested", 1_300 + 86_400_000)]
