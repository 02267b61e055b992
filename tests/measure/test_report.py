"""The stats report from counters: cohorts, uplift or why not, the split's arms summed over their
steps and compared with the first, steps laid out by the running set, the programme; the same
data after a trip over the wire; and the table people read."""

import pytest

from server.engine import compile_rules
from server.measure.proportions import compare, two_proportion_p_value, wilson
from server.measure.report import report
from server.measure.table import stats_table
from server.sequences import Sequence, SequenceSet
from server.stats_wire import from_message, to_message

AB = Sequence.model_validate({"id": "ab", "entry": {"event": "go"}, "holdout": 0.5, "steps": [
    {"split": {"arms": [
        {"name": "a", "weight": 2, "steps": [{"send": {"template": "ta"}}]},
        {"name": "b", "weight": 1, "steps": [{"wait": "1h"}, {"send": {"template": "tb"}}]},
    ]}},
    {"send": {"template": "after"}},
]})
RULES = compile_rules(SequenceSet(sequences=(AB,)))
# The flat order: 0 split, 1 ta [a], 2 jump [a], 3 wait [b], 4 tb [b], 5 after.
COUNTERS = {
    ("ab", -1, "entered"): 400, ("ab", -1, "exited"): 380, ("ab", -1, "converted"): 90,
    ("ab", -1, "entered:treated"): 200, ("ab", -1, "converted:treated"): 60,
    ("ab", -1, "entered:holdout"): 150, ("ab", -1, "converted:holdout"): 20,
    ("ab", -1, "entered:global_holdout"): 50, ("ab", -1, "converted:global_holdout"): 10,
    ("ab", -1, "arm:a:entered"): 130, ("ab", -1, "arm:a:converted"): 45,
    ("ab", -1, "arm:b:entered"): 70, ("ab", -1, "arm:b:converted"): 15,
    ("ab", 1, "sent"): 130, ("ab", 1, "opened"): 60, ("ab", 1, "clicked"): 20,
    ("ab", 1, "converted"): 40, ("ab", 1, "converted:clicked"): 12,
    ("ab", 1, "suppressed:holdout"): 100,
    ("ab", 4, "sent"): 70, ("ab", 4, "opened"): 30, ("ab", 4, "clicked"): 5,
    ("ab", 5, "sent"): 200, ("ab", 5, "converted"): 20,
    ("gone", -1, "entered"): 3, ("gone", 7, "sent"): 3,
}


def test_cohorts_and_uplift_of_a_sequence():
    (ab, gone) = report(COUNTERS, RULES)["sequences"]
    assert ab["treated"] == {"entered": 200, "converted": 60, "rate": 0.3,
                             "ci95": pytest.approx(list(wilson(60, 200)))}
    # the sequence's holdout and the site's are both unmailed: together they are the control
    assert ab["holdout"]["entered"] == 200 and ab["holdout"]["converted"] == 30
    expected = compare(60, 200, 30, 200)
    assert ab["uplift"] == {"absolute": pytest.approx(0.15), "relative": pytest.approx(1.0),
                            "ci95": pytest.approx(list(expected.ci95)),
                            "relative_ci95": pytest.approx(list(expected.relative_ci95)),
                            "p_value": pytest.approx(expected.p_value)}
    assert ab["uplift_note"] == ""
    assert gone["uplift"] is None and gone["uplift_note"] == "no holdout: every user is mailed"


def test_arms_sum_their_steps_and_compare_with_the_first():
    ab = report(COUNTERS, RULES)["sequences"][0]
    a, b = ab["arms"]
    assert (a["name"], a["weight"], a["entered"], a["sent"], a["opened"], a["clicked"],
            a["converted"]) == ("a", 2, 130, 130, 60, 20, 45)
    assert (b["name"], b["entered"], b["sent"], b["opened"], b["clicked"], b["converted"]) == (
        "b", 70, 70, 30, 5, 15)
    assert a["p_value_vs_first"] is None
    assert b["p_value_vs_first"] == pytest.approx(two_proportion_p_value(15, 70, 45, 130))
    assert b["rate"] == 15 / 70 and b["ci95"] == pytest.approx(list(wilson(15, 70)))


def test_steps_are_laid_out_by_the_running_set_and_kept_when_gone():
    ab, gone = report(COUNTERS, RULES)["sequences"]
    assert [(s["step"], s["kind"], s["template"], s["arm"]) for s in ab["steps"]] == [
        (1, "send", "ta", "a"), (4, "send", "tb", "b"), (5, "send", "after", "")]
    first = ab["steps"][0]
    assert (first["suppressed"], first["converted"], first["converted_clicked"]) == (
        {"holdout": 100}, 40, 12)
    assert [(s["step"], s["kind"], s["sent"]) for s in gone["steps"]] == [(7, "", 3)]


def test_not_enough_data_says_so_instead_of_a_number():
    few = {("s", -1, "entered:treated"): 29, ("s", -1, "converted:treated"): 9,
           ("s", -1, "entered:holdout"): 40, ("s", -1, "converted:holdout"): 4}
    (seq,) = report(few, None)["sequences"]
    assert seq["uplift"] is None
    assert seq["uplift_note"] == "not enough data: 29 treated and 40 held out; each needs 30"
    assert seq["treated"]["rate"] == 9 / 29  # the rates are still shown


def test_the_programme_is_the_site_holdout_against_everyone_else():
    programme = report(COUNTERS, RULES)["programme"]
    assert programme["treated"]["entered"] == 350 and programme["treated"]["converted"] == 80
    assert programme["holdout"]["entered"] == 50 and programme["holdout"]["converted"] == 10
    assert programme["uplift"]["absolute"] == pytest.approx(80 / 350 - 10 / 50)


def test_the_wire_carries_the_report_unchanged():
    original = report(COUNTERS, RULES)
    assert _plain(from_message(to_message(original))) == _plain(original)


def _plain(value):
    """Floats rounded (the wire has doubles), so structures compare exactly."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return round(value, 12) if isinstance(value, float) else value


def test_the_table_reads_for_people():
    text = stats_table(report(COUNTERS, RULES))
    assert "ab: entered 400, exited 380, converted 90" in text
    assert "treated   60 of 200 converted = 30.0% (95% CI" in text
    assert "uplift    +15.0 points (95% CI +6.8 points to +22.9 points), relative +100.0%" in text
    assert "p < 0.001" in text and "p = 0.052 vs a" in text
    assert "    b (weight 1): sent 70, opened 30, clicked 5; 15 of 70 converted" in text
    assert "#1 send ta [arm a]: sent 130, suppressed holdout 100, opened 60" in text
    assert "no holdout: every user is mailed" in text
    assert text.endswith("\n")
