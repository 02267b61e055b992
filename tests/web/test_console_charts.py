"""The console's SVG charts: valid XML, safe under a strict CSP, accessible, and drawn to scale."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Callable
from typing import Literal

import pytest

from server.web.console.charts import Interval, funnel, intervals, sparkline, timeline

NS = "{http://www.w3.org/2000/svg}"
HOSTILE = "<img src=x onerror=alert(1)> & co"
FUNNEL = [("entered", 2252), ("sent", 2240), ("opened", 1117), ("clicked", 301), ("converted", 0)]
RATES = [Interval("A", 0.12, 0.10, 0.14), Interval("B", 0.15, 0.12, 0.18)]
DAYS = [(f"05-{d:02}", float(d)) for d in range(1, 15)]

Chart = Callable[[str], str]
Unit = Literal["%", "points"]
CASES: list[tuple[str, Chart]] = [
    ("funnel", lambda i: funnel(i, FUNNEL, "Welcome")),
    ("funnel empty", lambda i: funnel(i, [], "Welcome")),
    ("funnel zeros", lambda i: funnel(i, [("entered", 0), ("sent", 0)], "Welcome")),
    ("funnel first zero", lambda i: funnel(i, [("entered", 0), ("sent", 5)], "Welcome")),
    ("funnel huge", lambda i: funnel(i, [("entered", 10**15), ("sent", 3 * 10**14)], "Big")),
    ("funnel one", lambda i: funnel(i, [("entered", 7)], "Welcome")),
    ("intervals", lambda i: intervals(i, RATES, "Rates", reference=0.12)),
    ("intervals empty", lambda i: intervals(i, [], "Rates")),
    ("intervals none", lambda i: intervals(i, [Interval("A", None, None, None),
                                               Interval("B", 0.2, None, 0.3)], "Rates")),
    ("intervals negative", lambda i: intervals(i, [Interval("B-A", -0.4, -0.9, -0.1)], "Uplift",
                                               reference=0.0, unit="points")),
    ("intervals point", lambda i: intervals(i, [Interval("A", 0.5, 0.5, 0.5)], "Rates")),
    ("intervals nan", lambda i: intervals(i, [Interval("A", float("nan"), 0.1, 0.2)], "Rates",
                                          reference=float("inf"))),
    ("intervals huge", lambda i: intervals(i, [Interval("A", 1e9, -1e9, 3e9)], "Odd")),
    ("timeline", lambda i: timeline(i, DAYS, "Emails per day", "emails")),
    ("timeline empty", lambda i: timeline(i, [], "Emails per day")),
    ("timeline zeros", lambda i: timeline(i, [("a", 0.0), ("b", 0.0)], "Emails per day")),
    ("timeline one", lambda i: timeline(i, [("05-01", 4.0)], "Emails per day")),
    ("timeline 200", lambda i: timeline(i, [(str(d), d * 1.5) for d in range(200)], "Many")),
    ("timeline huge", lambda i: timeline(i, [("a", 1e12), ("b", -5.0)], "Huge")),
    ("sparkline", lambda i: sparkline(i, [1, 3, 2, 5, 0, 4], "Events per minute")),
    ("sparkline empty", lambda i: sparkline(i, [], "Events per minute")),
    ("sparkline zeros", lambda i: sparkline(i, [0.0] * 60, "Events per minute")),
    ("sparkline one", lambda i: sparkline(i, [3.0], "Events per minute")),
    ("sparkline 200", lambda i: sparkline(i, [float(v % 7) for v in range(200)], "Many")),
    ("sparkline huge", lambda i: sparkline(i, [1e15, -2e15, float("nan")], "Huge")),
]
IDS = [name for name, _ in CASES]
DRAWERS = [draw for _, draw in CASES]
HOSTILE_CASES: list[Chart] = [
    lambda i: funnel(i, [(HOSTILE, 3), ("sent", 1)], HOSTILE),
    lambda i: intervals(i, [Interval(HOSTILE, 0.1, 0.0, 0.2),
                            Interval(HOSTILE, None, None, None)], HOSTILE),
    lambda i: timeline(i, [(HOSTILE, 1.0)], HOSTILE, unit_label=HOSTILE),
    lambda i: sparkline(i, [1.0, 2.0], HOSTILE),
]


def _tree(svg: str) -> ET.Element:
    return ET.fromstring(svg)


def _all(root: ET.Element, tag: str, cls: str | None = None) -> list[ET.Element]:
    found = root.iter(NS + tag)
    return [e for e in found if cls is None or cls in (e.get("class") or "").split()]


def _f(element: ET.Element, name: str) -> float:
    return float(element.attrib[name])


@pytest.mark.parametrize("draw", DRAWERS, ids=IDS)
def test_parses_as_svg(draw: Chart) -> None:
    root = _tree(draw("c1"))
    assert root.tag == NS + "svg"
    assert re.fullmatch(r"0 0 [\d.]+ [\d.]+", root.attrib["viewBox"])
    assert root.attrib["width"] == "100%"


@pytest.mark.parametrize("draw", DRAWERS, ids=IDS)
def test_nothing_a_strict_csp_would_block(draw: Chart) -> None:
    svg = draw("c1")
    assert "<style" not in svg and "<script" not in svg and "style=" not in svg
    for element in _tree(svg).iter():
        assert element.tag not in (NS + "style", NS + "script", NS + "foreignObject")
        assert "style" not in element.attrib
        assert not [name for name in element.attrib if name.lower().startswith("on")]
        assert not any("javascript:" in value for value in element.attrib.values())


@pytest.mark.parametrize("draw", DRAWERS, ids=IDS)
def test_accessible(draw: Chart) -> None:
    root = _tree(draw("c1"))
    assert root.attrib["role"] == "img"
    title, desc = root[0], root[1]
    assert (title.tag, desc.tag) == (NS + "title", NS + "desc")
    assert root.attrib["aria-labelledby"] == title.attrib["id"]
    assert root.attrib["aria-describedby"] == desc.attrib["id"]
    assert title.text and "\n" not in title.text and desc.text


@pytest.mark.parametrize("draw", DRAWERS, ids=IDS)
def test_deterministic(draw: Chart) -> None:
    assert draw("c1") == draw("c1")


@pytest.mark.parametrize("draw", DRAWERS, ids=IDS)
def test_numbers_compact(draw: Chart) -> None:
    names = r'(?<![\w-])(?:x|y|x1|x2|y1|y2|cx|cy|r|width|height)="([^"]*)"'
    numbers = re.findall(names, draw("c1"))
    assert numbers and all(re.fullmatch(r"-?\d+(\.\d{1,2})?|100%", n) for n in numbers)


@pytest.mark.parametrize("draw", DRAWERS, ids=IDS)
def test_ids_unique_between_charts(draw: Chart) -> None:
    ids = [e.attrib["id"] for idt in ("first", "second") for e in _tree(draw(idt)).iter()
           if "id" in e.attrib]
    assert len(ids) == len(set(ids)) == 4


@pytest.mark.parametrize("ident", ['"><script>x</script>', "a b/c", "", "ümlaut"])
def test_ident_sanitized(ident: str) -> None:
    root = _tree(funnel(ident, FUNNEL, "t"))
    assert re.fullmatch(r"[A-Za-z0-9_-]+", root[0].attrib["id"])
    assert re.fullmatch(r"[A-Za-z0-9_ -]+", root.attrib["aria-labelledby"])


@pytest.mark.parametrize("draw", HOSTILE_CASES, ids=["funnel", "intervals", "timeline", "spark"])
def test_text_from_data_is_escaped(draw: Chart) -> None:
    svg = draw("x")
    root = _tree(svg)
    assert not [e for e in root.iter() if e.tag.endswith("img")]
    assert "<img" not in svg and "&amp;" in svg
    assert root[0].text == HOSTILE
    texts = ["".join(e.itertext()) for e in root.iter()]
    assert any(HOSTILE in text for text in texts)


@pytest.mark.parametrize(("counts", "widths"), [
    ([1000, 500, 250, 0], [280, 140, 70, 0]),
    ([4, 8], [140, 280]),  # a later stage above the first: widths against the max
    ([0, 0, 0], [0, 0, 0]),
    ([10**15, 10**14], [280, 28]),
])
def test_funnel_widths_proportional(counts: list[int], widths: list[float]) -> None:
    root = _tree(funnel("f", [(f"s{i}", c) for i, c in enumerate(counts)], "t"))
    assert [_f(r, "width") for r in _all(root, "rect", "bar")] == pytest.approx(widths, abs=0.01)


def test_funnel_labels_show_count_and_share_of_first() -> None:
    root = _tree(funnel("f", FUNNEL, "t"))
    values = [e.text for e in _all(root, "text", "value")]
    assert values == ["2,252 (100%)", "2,240 (99.5%)", "1,117 (49.6%)", "301 (13.4%)", "0 (0%)"]
    assert "opened: 1,117 (49.6%)" in (root[1].text or "")


def test_funnel_without_stages_says_so() -> None:
    root = _tree(funnel("f", [], "t"))
    assert not _all(root, "rect") and [e.text for e in _all(root, "text")] == ["no data yet"]


def _axis(root: ET.Element) -> Callable[[float], float]:
    """The x of a value, read back from the tick labels (percent or points)."""
    ticks = [(float(re.sub(r"[^\d.+-]", "", e.text or "")) / 100, _f(e, "x"))
             for e in _all(root, "text", "tick")]
    (v0, x0), (v1, x1) = ticks[0], ticks[-1]
    return lambda v: x0 + (v - v0) / (v1 - v0) * (x1 - x0)


@pytest.mark.parametrize(("rows", "reference", "unit"), [
    (RATES, 0.12, "%"),
    ([Interval("B-A", -0.03, -0.08, 0.02), Interval("C-A", 0.05, 0.01, 0.09)], 0.0, "points"),
    ([Interval("B-A", -0.4, -0.9, -0.1)], 0.0, "points"),
    ([Interval("A", 0.98, 0.95, 1.0), Interval("B", 0.01, 0.0, 0.03)], None, "%"),
    ([Interval("A", 0.3, 0.4, 0.2)], 0.5, "%"),  # low and high swapped
])
def test_intervals_drawn_to_scale(rows: list[Interval], reference: float | None,
                                  unit: Unit) -> None:
    root = _tree(intervals("i", rows, "t", reference=reference, unit=unit))
    x_of = _axis(root)
    lines, points = _all(root, "line", "interval"), _all(root, "circle", "point")
    assert len(lines) == len(points) == len(rows)
    for row, line, point in zip(rows, lines, points, strict=True):
        ends = sorted((_f(line, "x1"), _f(line, "x2")))
        assert ends[0] <= _f(point, "cx") <= ends[1]
        assert _f(line, "y1") == _f(line, "y2") == _f(point, "cy")
        assert _f(point, "cx") == pytest.approx(x_of(row.value or 0), abs=0.02)
        assert ends == pytest.approx(sorted([x_of(row.low or 0), x_of(row.high or 0)]), abs=0.02)
    refs = _all(root, "line", "reference")
    if reference is None:
        assert not refs
    else:
        assert _f(refs[0], "x1") == _f(refs[0], "x2") == pytest.approx(x_of(reference), abs=0.02)


@pytest.mark.parametrize(("row", "unit", "labels"), [
    (Interval("A", 0.15, 0.1, 0.2), "%", {"10%", "20%"}),
    (Interval("B-A", 0.05, -0.05, 0.15), "points", {"-5 pp", "0 pp", "+10 pp"}),
])
def test_intervals_tick_units(row: Interval, unit: Unit, labels: set[str]) -> None:
    root = _tree(intervals("i", [row], "t", unit=unit))
    assert labels <= {e.text for e in _all(root, "text", "tick")}


def test_intervals_without_data_say_so() -> None:
    rows = [Interval("A", None, 0.1, 0.2), Interval("B", 0.1, 0.0, None), RATES[0]]
    root = _tree(intervals("i", rows, "t"))
    assert [e.text for e in _all(root, "text", "empty")] == ["not enough data"] * 2
    assert len(_all(root, "circle", "point")) == 1
    assert "A: not enough data" in (root[1].text or "")


@pytest.mark.parametrize(("count", "shown"), [(1, 1), (12, 12), (13, 7), (200, 12)])
def test_timeline_thins_x_labels(count: int, shown: int) -> None:
    root = _tree(timeline("t", [(f"d{i}", 1.0) for i in range(count)], "t"))
    x_labels = [e for e in _all(root, "text", "tick") if e.attrib["text-anchor"] == "middle"]
    assert len(x_labels) == shown and x_labels[0].text == "d0"
    assert len(_all(root, "rect", "bar")) == count


@pytest.mark.parametrize("values", [[3.0, 6.0, 9.0], [0.0, 0.0], [1e12, 5e11], [0.3, 0.7], [42.0]])
def test_timeline_nice_ticks_and_heights(values: list[float]) -> None:
    root = _tree(timeline("t", [(str(i), v) for i, v in enumerate(values)], "t"))
    y_ticks = [e for e in _all(root, "text", "tick") if e.attrib["text-anchor"] == "end"]
    assert 3 <= len(y_ticks) <= 5 and y_ticks[0].text == "0"
    heights = [_f(r, "height") for r in _all(root, "rect", "bar")]
    if max(values):
        tallest = max(heights)
        assert heights == pytest.approx([tallest * v / max(values) for v in values], abs=0.02)
    else:
        assert heights == [0.0] * len(values)


def test_timeline_empty_frame() -> None:
    root = _tree(timeline("t", [], "t"))
    assert [e.text for e in _all(root, "text", "empty")] == ["no data yet"]
    assert len(_all(root, "line", "axis")) == 2 and not _all(root, "rect")


def _path_ys(root: ET.Element) -> list[float]:
    d = _all(root, "path", "line")[0].attrib["d"]
    return [float(pair.split()[1]) for pair in re.split(r"[ML]", d) if pair.strip()]


@pytest.mark.parametrize(("values", "last"), [([], "—"), ([0.0] * 60, "0"), ([5.0], "5"),
                                              ([0.0, 0.0, 2500.0], "2.5k")])
def test_sparkline_last_value_and_flat_cases(values: list[float], last: str) -> None:
    root = _tree(sparkline("s", values, "t"))
    assert [e.text for e in _all(root, "text", "value")] == [last]
    ys = _path_ys(root)
    assert len(ys) == max(2, len(values))
    if not any(values) or len(values) == 1:
        assert len(set(ys)) == 1


def test_sparkline_rises_with_values() -> None:
    ys = _path_ys(_tree(sparkline("s", [1.0, 2.0, 3.0], "t")))
    assert ys[0] > ys[1] > ys[2]  # SVG's y grows downward
