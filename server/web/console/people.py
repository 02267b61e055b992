"""A user as the console shows them: profile and identity, devices, the signals the running
conditions read, each active instance with where it waits (and until when), and every recent
send with its status, its first open and its first click. Looked up by key or index, never by
scanning."""

from __future__ import annotations

from typing import Any

from server.engine import decode_state
from server.operator_actions import find_users
from server.web.console.figures import ConsoleSources

__all__ = ["user_page"]

_KINDS = {"SendRule": "send (held by quiet hours)", "WaitRule": "wait",
          "WaitForRule": "wait_for", "BranchRule": "branch", "SplitRule": "split",
          "JumpRule": "the end of an arm", "ExitStepRule": "exit"}


async def user_page(sources: ConsoleSources, who: str) -> dict[str, Any] | None:
    found = await find_users(sources.shards, who)
    if not found:
        return None
    shard, row = found[0]
    state = decode_state(row.key, row.state)
    rules = sources.rules()
    user_id, traits = await shard.profile(row.key)
    instances = []
    for inst in state.instances:
        seq = rules.sequences.get(inst.sequence)
        step = seq.steps[inst.step] if seq is not None and inst.step < len(seq.steps) else None
        instances.append({"sequence": inst.sequence, "key": inst.key, "step": inst.step,
                          "at": _KINDS.get(type(step).__name__, "") if step else "",
                          "due_ms": inst.due_ms, "arm": inst.arm, "cohort": inst.cohort,
                          "started_ms": inst.started_ms})
    return {
        "key": row.key, "email": row.email or "", "verified": row.verified,
        "user_id": user_id, "traits": traits, "timezone": row.timezone or "",
        "blocked": state.block or "", "devices": await shard.devices_of(row.key),
        "signals": [(rules.descriptions.get(tracker, f"signal {tracker} (no longer loaded)"),
                     stamps) for tracker, stamps in sorted(state.signals.items())],
        "instances": instances,
        "goals": [{"sequence": g.sequence, "until_ms": g.until_ms, "cohort": g.cohort}
                  for g in state.goals],
        "sends": await shard.recent_sends(row.key),
        "others": [r.key for _, r in found[1:]],
    }
