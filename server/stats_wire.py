"""The stats report (server/measure/report.py) on the wire and back: the Admin service sends
`to_message(report)`, and `pulsewire admin stats` turns the answer back into the same plain
data with `from_message`, so its JSON has numbers as numbers and null where a value is absent
(protobuf's own JSON mapping prints 64-bit counters as strings)."""

from __future__ import annotations

from typing import Any

from collector.gen.pulsewire.v1 import admin_pb2

__all__ = ["from_message", "to_message"]

_STEP_COUNTS = ("sent", "opened", "clicked", "converted", "converted_clicked")
_ARM_COUNTS = ("entered", "sent", "opened", "clicked", "converted")


def to_message(report: dict[str, Any]) -> admin_pb2.StatsResponse:
    message = admin_pb2.StatsResponse(min_count=report["min_count"])
    for seq in report["sequences"]:
        out = message.sequences.add(sequence=seq["sequence"], entered=seq["entered"],
                                    exited=seq["exited"], converted=seq["converted"],
                                    uplift_note=seq["uplift_note"])
        _cohort(out.treated, seq["treated"])
        _cohort(out.holdout, seq["holdout"])
        _uplift(out, seq["uplift"])
        for arm in seq["arms"]:
            row = out.arms.add(name=arm["name"], weight=arm["weight"],
                               **{k: arm[k] for k in _ARM_COUNTS})
            _optional(row, "rate", arm["rate"])
            _optional(row, "p_value_vs_first", arm["p_value_vs_first"])
            _interval(row.ci95, arm["ci95"])
        for step in seq["steps"]:
            out.steps.add(step=step["step"], kind=step["kind"], template=step["template"],
                          arm=step["arm"], suppressed=step["suppressed"],
                          **{k: step[k] for k in _STEP_COUNTS})
    programme = report["programme"]
    _cohort(message.programme.treated, programme["treated"])
    _cohort(message.programme.holdout, programme["holdout"])
    _uplift(message.programme, programme["uplift"])
    message.programme.uplift_note = programme["uplift_note"]
    return message


def from_message(message: admin_pb2.StatsResponse) -> dict[str, Any]:
    return {
        "sequences": [{
            "sequence": seq.sequence, "entered": seq.entered, "exited": seq.exited,
            "converted": seq.converted,
            "treated": _cohort_of(seq.treated), "holdout": _cohort_of(seq.holdout),
            "uplift": _uplift_of(seq), "uplift_note": seq.uplift_note,
            "arms": [{"name": arm.name, "weight": arm.weight,
                      **{k: getattr(arm, k) for k in _ARM_COUNTS},
                      "rate": _read(arm, "rate"), "ci95": _interval_of(arm, "ci95"),
                      "p_value_vs_first": _read(arm, "p_value_vs_first")} for arm in seq.arms],
            "steps": [{"step": step.step, "kind": step.kind, "template": step.template,
                       "arm": step.arm, "sent": step.sent, "suppressed": dict(step.suppressed),
                       **{k: getattr(step, k) for k in _STEP_COUNTS[1:]}}
                      for step in seq.steps],
        } for seq in message.sequences],
        "programme": {"treated": _cohort_of(message.programme.treated),
                      "holdout": _cohort_of(message.programme.holdout),
                      "uplift": _uplift_of(message.programme),
                      "uplift_note": message.programme.uplift_note},
        "min_count": message.min_count,
    }


def _cohort(out: Any, cohort: dict[str, Any]) -> None:
    out.entered, out.converted = cohort["entered"], cohort["converted"]
    _optional(out, "rate", cohort["rate"])
    _interval(out.ci95, cohort["ci95"])


def _uplift(out: Any, uplift: dict[str, Any] | None) -> None:
    if uplift is None:
        return
    out.uplift.absolute, out.uplift.p_value = uplift["absolute"], uplift["p_value"]
    _optional(out.uplift, "relative", uplift["relative"])
    _interval(out.uplift.ci95, uplift["ci95"])
    _interval(out.uplift.relative_ci95, uplift["relative_ci95"])


def _optional(out: Any, name: str, value: float | None) -> None:
    if value is not None:
        setattr(out, name, value)


def _interval(out: Any, pair: list[float] | None) -> None:
    if pair is not None:
        out.low, out.high = pair


def _read(message: Any, name: str) -> Any:
    return getattr(message, name) if message.HasField(name) else None


def _interval_of(message: Any, name: str) -> list[float] | None:
    if not message.HasField(name):
        return None
    interval = getattr(message, name)
    return [interval.low, interval.high]


def _cohort_of(cohort: Any) -> dict[str, Any]:
    return {"entered": cohort.entered, "converted": cohort.converted,
            "rate": _read(cohort, "rate"), "ci95": _interval_of(cohort, "ci95")}


def _uplift_of(holder: Any) -> dict[str, Any] | None:
    if not holder.HasField("uplift"):
        return None
    uplift = holder.uplift
    return {"absolute": uplift.absolute, "relative": _read(uplift, "relative"),
            "ci95": _interval_of(uplift, "ci95"),
            "relative_ci95": _interval_of(uplift, "relative_ci95"), "p_value": uplift.p_value}
