"""The stats report (report.py) as text for people: per sequence its cohorts, uplift, arms and
steps, then the programme. Rates are percentages, uplift in percentage points; what cannot be
said yet says why ("not enough data: ...")."""

from __future__ import annotations

from typing import Any

__all__ = ["stats_table"]


def stats_table(report: dict[str, Any]) -> str:
    lines: list[str] = []
    for seq in report["sequences"]:
        lines.append(f"{seq['sequence']}: entered {seq['entered']}, exited {seq['exited']}, "
                     f"converted {seq['converted']}")
        lines.append(f"  treated   {_cohort(seq['treated'])}")
        lines.append(f"  held out  {_cohort(seq['holdout'])}")
        lines.append(f"  uplift    {_uplift(seq['uplift'], seq['uplift_note'])}")
        if seq["arms"]:
            lines.append("  arms")
            first = seq["arms"][0]["name"]
            for arm in seq["arms"]:
                versus = ("" if arm["p_value_vs_first"] is None
                          else f", {_p(arm['p_value_vs_first'])} vs {first}")
                lines.append(
                    f"    {arm['name']} (weight {arm['weight']:g}): sent {arm['sent']}, opened "
                    f"{arm['opened']}, clicked {arm['clicked']}; "
                    f"{_cohort(arm)}{versus}")
        if seq["steps"]:
            lines.append("  steps")
            lines.extend(f"    {_step(step)}" for step in seq["steps"])
        lines.append("")
    programme = report["programme"]
    lines.append("programme (the site's holdout against everyone else)")
    lines.append(f"  treated   {_cohort(programme['treated'])}")
    lines.append(f"  held out  {_cohort(programme['holdout'])}")
    lines.append(f"  uplift    {_uplift(programme['uplift'], programme['uplift_note'])}")
    return "\n".join(lines) + "\n"


def _cohort(cohort: dict[str, Any]) -> str:
    text = f"{cohort['converted']} of {cohort['entered']} converted"
    if cohort["rate"] is not None:
        text += f" = {_pct(cohort['rate'])}"
        if cohort["ci95"] is not None:
            low, high = cohort["ci95"]
            text += f" (95% CI {_pct(low)} to {_pct(high)})"
    return text


def _uplift(uplift: dict[str, Any] | None, note: str) -> str:
    if uplift is None:
        return note
    low, high = uplift["ci95"]
    text = (f"{_points(uplift['absolute'])} (95% CI {_points(low)} to {_points(high)})")
    if uplift["relative"] is not None:
        text += f", relative {uplift['relative']:+.1%}"
        if uplift["relative_ci95"] is not None:
            rlow, rhigh = uplift["relative_ci95"]
            text += f" ({rlow:+.1%} to {rhigh:+.1%})"
    return f"{text}, {_p(uplift['p_value'])}"


def _step(step: dict[str, Any]) -> str:
    what = " ".join(x for x in (step["kind"] or "(not in the running set)", step["template"])
                    if x)
    where = f" [arm {step['arm']}]" if step["arm"] else ""
    counts = [f"sent {step['sent']}"]
    counts += [f"suppressed {reason} {n}" for reason, n in sorted(step["suppressed"].items())]
    counts += [f"{k} {step[k]}" for k in ("opened", "clicked", "converted") if step[k]]
    if step["converted_clicked"]:
        counts.append(f"converted after a click {step['converted_clicked']}")
    return f"#{step['step']} {what}{where}: {', '.join(counts)}"


def _pct(value: float) -> str:
    return f"{value:.1%}"


def _points(value: float) -> str:
    return f"{value * 100:+.1f} points"


def _p(value: float) -> str:
    return "p < 0.001" if value < 0.001 else f"p = {value:.3f}"
