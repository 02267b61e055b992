"""The numbers the console shows, gathered from the running server: the stats report (over all
time, or summed from the counters by day over a period), totals for the overview, a sequence's
emails per day, and the problems that need a person. Counters only: nothing scans users.

In the distributed mode the all-time figures cover every shard (the shared counters); the
figures over a period and the problems cover the shards this node holds.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from server.config import Settings
from server.engine import Rules
from server.errors import InvalidSequence
from server.mail.render import Templates
from server.measure.report import report
from server.metrics import Metrics
from server.operator_actions import Counters, OperatorActions
from server.sequences.loading import load_paths
from server.storage.shard import Shards
from server.web.console.live import LiveFeed

__all__ = ["PERIODS", "ConsoleSources", "day_label", "overview", "sequence_figures"]

DAY_MS = 86_400_000
PERIODS = {"today": 1, "7d": 7, "30d": 30, "all": None}  # name -> days (None: all time)
QUEUE_BEHIND = 1_000  # a shard with more work waiting than this is behind


@dataclass
class ConsoleSources:
    """The running server's parts the console reads and acts through."""

    settings: Settings
    actions: OperatorActions
    rules: Callable[[], Rules]
    shards: Shards
    live: LiveFeed
    metrics: Metrics
    templates: Callable[[], Templates]
    reload: Callable[[], list[str]]
    now_ms: Callable[[], int]
    secret: bytes


async def counters_for(sources: ConsoleSources, period: str) -> Counters:
    days = PERIODS.get(period)
    if days is None:
        return await sources.actions.reach.counters()
    since = sources.now_ms() // DAY_MS - days + 1
    totals: Counters = {}
    for shard in sources.shards:
        for _day, sequence, step, counter, n in await shard.daily_stats(since):
            key = (sequence, step, counter)
            totals[key] = totals.get(key, 0) + n
    return totals


async def overview(sources: ConsoleSources, period: str) -> dict[str, Any]:
    stats = report(await counters_for(sources, period), sources.rules())
    totals = {what: sum(step[what] for seq in stats["sequences"] for step in seq["steps"])
              for what in ("sent", "opened", "clicked")}
    totals["converted"] = sum(seq["converted"] for seq in stats["sequences"])
    totals["entered"] = sum(seq["entered"] for seq in stats["sequences"])
    return {"report": stats, "totals": totals, "per_minute": sources.live.per_minute(),
            "problems": await problems(sources)}


async def problems(sources: ConsoleSources) -> dict[str, Any]:
    dead = sum([await shard.dead_letters() for shard in sources.shards])
    return {
        "dead_letters": dead,
        "smtp_failures": _by_label(sources.metrics, "pulsewire_emails_failed", "kind"),
        "rejected_batches": _by_label(sources.metrics, "pulsewire_batches_rejected", "reason"),
        "shards_behind": {str(s.index): s.queue_depth for s in sources.shards
                          if s.queue_depth > QUEUE_BEHIND},
    }


async def sequence_figures(sources: ConsoleSources, sequence: str,
                           period: str) -> dict[str, Any] | None:
    stats = report(await counters_for(sources, period), sources.rules())
    found = next((s for s in stats["sequences"] if s["sequence"] == sequence), None)
    if found is None:
        return None
    days = PERIODS.get(period) or 30
    since = sources.now_ms() // DAY_MS - days + 1
    per_day: dict[int, int] = dict.fromkeys(range(since, since + days), 0)
    for shard in sources.shards:
        for day, seq, step, counter, n in await shard.daily_stats(since):
            if seq == sequence and counter == "sent" and step >= 0 and day in per_day:
                per_day[day] += n
    return {"sequence": found, "sent_per_day": [(day_label(d), n) for d, n in per_day.items()],
            "definition": _definition(sources.settings, sequence)}


def day_label(day: int) -> str:
    return datetime.fromtimestamp(day * 86_400, UTC).strftime("%b %d")


def _by_label(metrics: Metrics, name: str, label: str) -> dict[str, int]:
    found: dict[str, int] = {}
    for family in metrics.registry.collect():
        for sample in family.samples:
            if sample.name == f"{name}_total" and sample.value:
                found[sample.labels.get(label, "")] = int(sample.value)
    return found


def _definition(settings: Settings, sequence: str) -> tuple[str, str]:
    """(file, text) of the sequence's file as written; ("", "") when it cannot be found."""
    origin: Mapping[str, Path]
    try:
        _, origin = load_paths([Path(settings.sequences.dir)])
    except InvalidSequence:  # a file broken since the last reload: show what can be found
        origin = _by_name(Path(settings.sequences.dir), sequence)
    path = origin.get(sequence)
    if path is None:
        return "", ""
    try:
        return str(path), path.read_text(encoding="utf-8")
    except OSError:
        return str(path), ""


def _by_name(folder: Path, sequence: str) -> Mapping[str, Path]:
    for suffix in (".yaml", ".yml", ".json"):
        for path in folder.rglob(f"{sequence}{suffix}"):
            return {sequence: path}
    return {}
