"""Variants side by side: each variant's summary (report.py's figures, per sequence) as one JSON
document, or one table for people with a row per variant and sequence."""

from __future__ import annotations

import json

from server.backtest.replay import Replay
from server.backtest.report import goal_cells, tally_json

__all__ = ["variants_json", "variants_table"]

_HEADINGS = ("variant", "sequence", "entered", "sent", "suppressed", "emails/user", "converted",
             "after an email (median lead)", "mailed, never converted",
             "goal events after an email")


def variants_json(results: list[tuple[str, Replay]]) -> str:
    return json.dumps({"variants": [
        {"variant": name, "events": result.events, "users": result.users,
         "sequences": {seq_id: tally_json(t) for seq_id, t in sorted(result.tallies.items())}}
        for name, result in results]})


def variants_table(results: list[tuple[str, Replay]]) -> str:
    rows: list[tuple[str, ...]] = [_HEADINGS]
    for name, result in results:
        for seq_id, tally in sorted(result.tallies.items()):
            reasons = ", ".join(f"{r} {n}" for r, n in sorted(tally.suppressed.items()))
            suppressed = sum(tally.suppressed.values())
            per_user = f"{tally.sent / len(tally.mailed):.2f}" if tally.mailed else "-"
            goal = goal_cells(seq_id, tally)
            rows.append((name, seq_id, str(tally.entered), str(tally.sent),
                         f"{suppressed} ({reasons})" if reasons else str(suppressed),
                         per_user, *goal[1:]))
    widths = [max(len(row[i]) for row in rows) for i in range(len(_HEADINGS))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
             for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)
