"""Whether each sequence works, from its counters (server/storage/bookkeeping.py says which):
per sequence the treated and held-out cohorts with their conversion rates, the uplift between
them, the split's arms compared with the first, and each step; and the programme as a whole,
the site's holdout against everyone else. Plain data, numbers as numbers: the Admin service
sends it (server/stats_wire.py), `pulsewire admin stats` prints it as JSON or a table.

The steps are laid out by the running set (kind, template, arm); counters of a step the running
set no longer has are still shown, without a kind.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from server.engine.rules import (
    BranchRule,
    ExitStepRule,
    JumpRule,
    Rules,
    SendRule,
    SequenceRules,
    SplitRule,
    WaitForRule,
    WaitRule,
)
from server.measure.proportions import (
    MIN_TRIALS,
    compare,
    rate,
    two_proportion_p_value,
    wilson,
)

__all__ = ["Counters", "report"]

Counters = Mapping[tuple[str, int, str], int]  # (sequence, step, counter) -> n; step -1: whole
_KINDS = {SendRule: "send", WaitRule: "wait", WaitForRule: "wait_for", BranchRule: "branch",
          ExitStepRule: "exit", SplitRule: "split", JumpRule: "jump"}
_HELD = ("holdout", "global_holdout")


def report(counters: Counters, rules: Rules | None, minimum: int = MIN_TRIALS) -> dict[str, Any]:
    """Everything `pulsewire admin stats --format json` prints."""
    names = sorted({s for s, _, _ in counters} | set(rules.sequences if rules else ()))
    by_sequence: dict[str, dict[tuple[int, str], int]] = {name: {} for name in names}
    for (sequence, step, counter), n in counters.items():
        by_sequence[sequence][(step, counter)] = n
    sequences = [_sequence(name, by_sequence[name],
                           rules.sequences.get(name) if rules else None, minimum)
                 for name in names]
    return {"sequences": sequences, "programme": _programme(by_sequence, minimum),
            "min_count": minimum}


def _sequence(name: str, counts: dict[tuple[int, str], int], seq: SequenceRules | None,
              minimum: int) -> dict[str, Any]:
    def whole(counter: str) -> int:
        return counts.get((-1, counter), 0)

    treated = _cohort(whole("entered:treated"), whole("converted:treated"))
    holdout = _cohort(sum(whole(f"entered:{c}") for c in _HELD),
                      sum(whole(f"converted:{c}") for c in _HELD))
    uplift, note = _uplift(treated, holdout, minimum, "held out")
    steps = _steps(counts, seq)
    return {
        "sequence": name,
        "entered": whole("entered"),
        "exited": whole("exited"),
        "converted": whole("converted"),
        "treated": treated,
        "holdout": holdout,
        "uplift": uplift,
        "uplift_note": note,
        "arms": _arms(counts, seq, steps, minimum),
        "steps": steps,
    }


def _programme(by_sequence: Mapping[str, dict[tuple[int, str], int]],
               minimum: int) -> dict[str, Any]:
    def total(counter: str) -> int:
        return sum(counts.get((-1, counter), 0) for counts in by_sequence.values())

    treated = _cohort(total("entered:treated") + total("entered:holdout"),
                      total("converted:treated") + total("converted:holdout"))
    holdout = _cohort(total("entered:global_holdout"), total("converted:global_holdout"))
    uplift, note = _uplift(treated, holdout, minimum, "in the site's holdout")
    return {"treated": treated, "holdout": holdout, "uplift": uplift, "uplift_note": note}


def _cohort(entered: int, converted: int) -> dict[str, Any]:
    interval = wilson(converted, entered) if converted <= entered else None
    return {"entered": entered, "converted": converted,
            "rate": rate(converted, entered) if converted <= entered else None,
            "ci95": list(interval) if interval else None}


def _uplift(treated: dict[str, Any], held: dict[str, Any], minimum: int,
            held_name: str) -> tuple[dict[str, Any] | None, str]:
    if held["entered"] == 0:
        return None, "no holdout: every user is mailed"
    if treated["converted"] > treated["entered"] or held["converted"] > held["entered"]:
        return None, "counters disagree (more converted than entered)"
    found = compare(treated["converted"], treated["entered"], held["converted"],
                    held["entered"], minimum)
    if found is None:
        return None, (f"not enough data: {treated['entered']} treated and {held['entered']} "
                      f"{held_name}; each needs {minimum}")
    return {"absolute": found.absolute, "relative": found.relative, "ci95": list(found.ci95),
            "relative_ci95": list(found.relative_ci95) if found.relative_ci95 else None,
            "p_value": found.p_value}, ""


@dataclass(frozen=True, slots=True)
class _Place:
    kind: str = ""
    template: str = ""
    arm: str = ""
    weight: float = 0.0
    steps: tuple[int, ...] = field(default=())


def _layout(seq: SequenceRules | None) -> tuple[dict[int, _Place], list[_Place]]:
    """Each step's place (kind, template, arm) and the split's arms with their steps."""
    if seq is None:
        return {}, []
    arm_of: dict[int, str] = {}
    arms: list[_Place] = []
    for rule in seq.steps:
        if isinstance(rule, SplitRule):
            for arm in rule.arms:
                arms.append(_Place(arm=arm.name, weight=arm.weight,
                                   steps=tuple(range(arm.start, arm.end))))
                arm_of.update({i: arm.name for i in range(arm.start, arm.end)})
    places = {i: _Place(_KINDS[type(rule)],
                        rule.template if isinstance(rule, SendRule) else "", arm_of.get(i, ""))
              for i, rule in enumerate(seq.steps)}
    return places, arms


def _steps(counts: dict[tuple[int, str], int], seq: SequenceRules | None) -> list[dict[str, Any]]:
    places, _ = _layout(seq)
    shown = sorted({step for step, _ in counts if step >= 0}
                   | {i for i, p in places.items() if p.kind == "send"})
    out = []
    for step in shown:
        place = places.get(step, _Place())
        out.append({
            "step": step, "kind": place.kind, "template": place.template, "arm": place.arm,
            "sent": counts.get((step, "sent"), 0),
            "suppressed": {c.split(":", 1)[1]: n for (st, c), n in sorted(counts.items())
                           if st == step and c.startswith("suppressed:")},
            "opened": counts.get((step, "opened"), 0),
            "clicked": counts.get((step, "clicked"), 0),
            "converted": counts.get((step, "converted"), 0),
            "converted_clicked": counts.get((step, "converted:clicked"), 0),
        })
    return out


def _arms(counts: dict[tuple[int, str], int], seq: SequenceRules | None,
          steps: list[dict[str, Any]], minimum: int) -> list[dict[str, Any]]:
    _, arms = _layout(seq)
    by_step = {row["step"]: row for row in steps}
    out: list[dict[str, Any]] = []
    for arm in arms:
        entered = counts.get((-1, f"arm:{arm.arm}:entered"), 0)
        converted = counts.get((-1, f"arm:{arm.arm}:converted"), 0)
        cohort = _cohort(entered, converted)
        row = {"name": arm.arm, "weight": arm.weight, "entered": entered,
               **{what: sum(by_step[i][what] for i in arm.steps if i in by_step)
                  for what in ("sent", "opened", "clicked")},
               "converted": converted, "rate": cohort["rate"], "ci95": cohort["ci95"],
               "p_value_vs_first": None}
        if out and min(entered, out[0]["entered"]) >= max(minimum, 1):
            row["p_value_vs_first"] = two_proportion_p_value(
                converted, entered, out[0]["converted"], out[0]["entered"])
        out.append(row)
    return out
