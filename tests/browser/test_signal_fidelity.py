"""How faithfully the collector in the page measures, in scripted Chromium sessions where the
truth is known: scroll depth within 2 percentage points, engaged time within 5% with nothing
counted while hidden, hover intent with precision and recall of at least 0.95."""

import asyncio
from collections import defaultdict
from pathlib import Path

from shop import Shop, drive, shop

from collector import decode_batch
from collector.events import Dwell, Event, Hover, PageView, Scroll

HOVER_MIN_MS = 500  # the site setting in shop.py
IDLE_AFTER_MS = 3_000


def page_loads(running: Shop) -> list[list[Event]]:
    """The events the server received, one list per page load (its stream), in page order."""
    loads: dict[int, list[Event]] = defaultdict(list)
    for batch in running.batches():
        loads[batch.stream].extend(decode_batch(batch))
    return sorted(loads.values(), key=lambda events: events[0].at_ms)


def test_reported_scroll_depth_is_within_two_points(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with shop(tmp_path) as running:
            facts = await drive(running, "scroll_fidelity", fractions=[0.2, 0.55, 0.35, 0.8])
            loads = page_loads(running)
            assert len(loads) == len(facts["cases"])
            for case, events in zip(facts["cases"], loads, strict=True):
                view = next(e for e in events if isinstance(e, PageView))
                assert view.path == case["path"]
                reported = max(e.depth_pct for e in events if isinstance(e, Scroll))
                assert abs(reported - case["truth"]) <= 2, (case, reported)
    asyncio.run(scenario())


def engaged_truth(view_at: int, inputs: list[int], shown: list[tuple[int, int]],
                  idle_after_ms: int) -> int:
    """Engaged time by its definition, from the page's full input log: the moments within
    `idle_after_ms` after an input (or after the page view, or after being shown again) that
    fall in a shown period, counted once."""
    starts = sorted([view_at, *inputs, *(begin for begin, _ in shown)])
    active: list[tuple[int, int]] = []
    for start in starts:
        end = start + idle_after_ms
        if active and start <= active[-1][1]:
            active[-1] = (active[-1][0], max(active[-1][1], end))
        else:
            active.append((start, end))
    return sum(max(0, min(a_end, s_end) - max(a_start, s_start))
               for a_start, a_end in active for s_start, s_end in shown)


def test_engaged_time_is_within_five_percent_and_nothing_counts_while_hidden(
        tmp_path: Path) -> None:
    async def scenario() -> None:
        async with shop(tmp_path) as running:
            facts = await drive(running, "dwell_fidelity", active_ms=4000, hidden_ms=4000,
                                idle_ms=5000)
            [events] = page_loads(running)
            view = next(e for e in events if isinstance(e, PageView))
            shown = [(view.at_ms, facts["hidden_at"]), (facts["shown_at"], facts["ended_at"])]
            truth = engaged_truth(view.at_ms, facts["inputs"], shown, IDLE_AFTER_MS)
            reported = max(e.engaged_ms for e in events if isinstance(e, Dwell))
            print(f"\nengaged time: reported {reported} ms, truth {truth} ms")
            assert abs(reported - truth) <= 0.05 * truth, (reported, truth)
            hidden_inputs = [t for t in facts["inputs"]
                             if facts["hidden_at"] < t < facts["shown_at"]]
            assert len(hidden_inputs) >= 5  # the visitor kept moving while the tab was hidden
            with_hidden = engaged_truth(view.at_ms, facts["inputs"],
                                        [(view.at_ms, facts["ended_at"])], IDLE_AFTER_MS)
            assert reported < with_hidden - 3000  # ... and none of it counted
    asyncio.run(scenario())


ROUNDS = [
    [900, "sweep", 850, 250, "sweep", 1000, 150, 800, "sweep", 300],
    ["sweep", 800, 200, 950, "sweep", 100, 850, "sweep", 1100, 250],
]


def test_hover_intent_has_precision_and_recall_of_at_least_095(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with shop(tmp_path) as running:
            facts = await drive(running, "hover_fidelity", rounds=ROUNDS)
            loads = page_loads(running)
            assert len(loads) == len(ROUNDS) == len(facts["rests"])
            true_pos = false_pos = false_neg = 0
            for rests, events in zip(facts["rests"], loads, strict=True):
                # the truth: rests the page itself saw last at least the site's minimum
                truth = {target for target, entered, left in rests
                         if left is not None and left - entered >= HOVER_MIN_MS}
                reported = {e.target for e in events if isinstance(e, Hover)}
                true_pos += len(reported & truth)
                false_pos += len(reported - truth)
                false_neg += len(truth - reported)
            scripted = sum(1 for round_ in ROUNDS for ms in round_
                           if ms != "sweep" and ms >= HOVER_MIN_MS)
            assert true_pos + false_neg >= scripted - 1  # the script's rests were rests
            precision = true_pos / (true_pos + false_pos)
            recall = true_pos / (true_pos + false_neg)
            print(f"\nhover intent: precision {precision:.2f}, recall {recall:.2f} over "
                  f"{sum(map(len, ROUNDS))} cases")
            assert precision >= 0.95 and recall >= 0.95
    asyncio.run(scenario())
