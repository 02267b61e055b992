"""Scroll, dwell and hover trackers: tables of (signals, expected events)."""

from __future__ import annotations

import pytest

from collector.dwell import EngagedTime
from collector.events import Dwell, Hover, Scroll
from collector.hover import HoverIntent
from collector.scroll import ScrollDepth

P = "/p"

# (depth_pct, now_ms) signals -> events, then the checkpoint at 9_000.
SCROLL_CASES = [
    ("nothing", [], [], []),
    ("below 25", [(24, 100)], [], [Scroll(9_000, P, 24)]),
    ("exactly 25", [(25, 100)], [Scroll(100, P, 25)], []),
    ("step by step", [(30, 1), (55, 2), (71, 3), (95, 4)],
     [Scroll(1, P, 25), Scroll(2, P, 50), Scroll(3, P, 70), Scroll(4, P, 90)],
     [Scroll(9_000, P, 95)]),
    ("jump crosses all", [(100, 7)],
     [Scroll(7, P, 25), Scroll(7, P, 50), Scroll(7, P, 70), Scroll(7, P, 90)],
     [Scroll(9_000, P, 100)]),
    ("up and down again", [(60, 1), (10, 2), (60, 3), (52, 4)],
     [Scroll(1, P, 25), Scroll(1, P, 50)], [Scroll(9_000, P, 60)]),
    ("clamped", [(-5, 1), (250, 2)],
     [Scroll(2, P, 25), Scroll(2, P, 50), Scroll(2, P, 70), Scroll(2, P, 90)],
     [Scroll(9_000, P, 100)]),
    ("ends on a threshold", [(90, 1)],
     [Scroll(1, P, 25), Scroll(1, P, 50), Scroll(1, P, 70), Scroll(1, P, 90)], []),
]


@pytest.mark.parametrize(("signals", "crossings", "at_end"),
                         [c[1:] for c in SCROLL_CASES], ids=[c[0] for c in SCROLL_CASES])
def test_scroll(
    signals: list[tuple[int, int]], crossings: list[Scroll], at_end: list[Scroll]
) -> None:
    depth = ScrollDepth(P)
    got = [e for pct, now in signals for e in depth.scroll_to(pct, now)]
    assert got == crossings
    assert depth.checkpoint(9_000) == at_end
    assert depth.checkpoint(9_500) == []


# Dwell signals: ("act"|"vis"|"foc"|"tick"|"end", value, now_ms); page view at 0 counts as
# activity; idle_after 15 s.
DWELL_CASES = [
    ("idle after 15 s of no activity", [("tick", None, 60_000)],
     [Dwell(10_000, P, 10_000)], 15_000),
    ("heartbeat keeps it going", [("act", None, 14_000), ("act", None, 28_000),
                                  ("tick", None, 31_000)],
     [Dwell(10_000, P, 10_000), Dwell(30_000, P, 30_000)], 31_000),
    ("hidden time never counts", [("vis", False, 5_000), ("act", None, 6_000),
                                  ("vis", True, 20_000), ("tick", None, 40_000)],
     [Dwell(25_000, P, 10_000)], 5_000 + 15_000),  # visible again counts as activity
    ("blurred time never counts", [("foc", False, 2_000), ("foc", True, 50_000),
                                   ("act", None, 50_000), ("tick", None, 90_000)],
     [Dwell(58_000, P, 10_000)], 2_000 + 15_000),
    ("tick late: crossings at their instants", [("act", None, 14_000), ("act", None, 29_000),
                                                ("act", None, 44_000), ("act", None, 59_000),
                                                ("tick", None, 200_000)],
     [Dwell(10_000, P, 10_000), Dwell(30_000, P, 30_000), Dwell(60_000, P, 60_000)], 74_000),
    ("no time, no event", [("end", None, 0)], [], 0),
    ("end emits the total", [("act", None, 3_000), ("end", None, 4_000)],
     [Dwell(4_000, P, 4_000)], 4_000),
    ("end on a threshold adds nothing", [("end", None, 10_000)],
     [Dwell(10_000, P, 10_000)], 10_000),
    ("clock going back counts nothing", [("tick", None, 5_000), ("act", None, 3_000),
                                         ("end", None, 6_000)],
     [Dwell(6_000, P, 6_000)], 6_000),
]


@pytest.mark.parametrize(("signals", "expected", "engaged_ms"),
                         [c[1:] for c in DWELL_CASES], ids=[c[0] for c in DWELL_CASES])
def test_dwell(
    signals: list[tuple[str, bool | None, int]], expected: list[Dwell], engaged_ms: int
) -> None:
    dwell = EngagedTime(P, 0)
    got: list[Dwell] = []
    for kind, value, now in signals:
        if kind == "act":
            got += dwell.activity(now)
        elif kind == "vis":
            got += dwell.visibility(bool(value), now)
        elif kind == "foc":
            got += dwell.focus(bool(value), now)
        elif kind == "tick":
            got += dwell.tick(now)
        else:
            got += dwell.checkpoint(now)
    assert got == expected
    assert dwell.engaged_ms == engaged_ms


def test_dwell_reaches_every_threshold() -> None:
    dwell = EngagedTime(P, 0)
    got = [e for t in range(1_000, 400_001, 1_000) for e in dwell.activity(t)]
    assert [e.engaged_ms for e in got] == [10_000, 30_000, 60_000, 120_000, 300_000]
    assert [e.at_ms for e in got] == [10_000, 30_000, 60_000, 120_000, 300_000]


# Hover signals: ("in"|"out"|"close", target, now_ms); min 800 ms.
HOVER_CASES = [
    ("short rest", [("in", "a", 0), ("out", "a", 799)], []),
    ("long rest", [("in", "a", 0), ("out", "a", 800)], [Hover(800, P, "a", 800)]),
    ("once per element", [("in", "a", 0), ("out", "a", 900), ("in", "a", 1_000),
                          ("out", "a", 5_000)], [Hover(900, P, "a", 900)]),
    ("two elements", [("in", "a", 0), ("out", "a", 900), ("in", "b", 1_000),
                      ("out", "b", 3_000)], [Hover(900, P, "a", 900), Hover(3_000, P, "b", 2_000)]),
    ("entering another closes the first", [("in", "a", 0), ("in", "b", 1_000),
                                           ("out", "b", 1_500)], [Hover(1_000, P, "a", 1_000)]),
    ("leave of another element is ignored", [("in", "a", 0), ("out", "b", 900),
                                             ("out", "a", 1_200)], [Hover(1_200, P, "a", 1_200)]),
    ("re-enter same keeps the start", [("in", "a", 0), ("in", "a", 500), ("out", "a", 850)],
     [Hover(850, P, "a", 850)]),
    ("page end closes", [("in", "a", 0), ("close", "", 2_000)], [Hover(2_000, P, "a", 2_000)]),
    ("leave without enter", [("out", "a", 900)], []),
]


@pytest.mark.parametrize(("signals", "expected"),
                         [c[1:] for c in HOVER_CASES], ids=[c[0] for c in HOVER_CASES])
def test_hover(signals: list[tuple[str, str, int]], expected: list[Hover]) -> None:
    hover = HoverIntent(P)
    got: list[Hover] = []
    for kind, target, now in signals:
        if kind == "in":
            got += hover.pointer_enter(target, now)
        elif kind == "out":
            got += hover.pointer_leave(target, now)
        else:
            got += hover.close(now)
    assert got == expected
