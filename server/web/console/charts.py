"""The web console's charts, drawn on the server as inline SVG markup strings.

Each function takes plain data and returns one `<svg>` element as a string; the same input gives
the same bytes. The console runs under a strict Content-Security-Policy (`style-src 'self'`, no
scripts), so the markup carries no `style` attribute, no `<style>` element and no script: the
geometry is in SVG attributes (x, y, width, height, d, viewBox) and every colour and font comes
from a CSS class that the console's stylesheet defines. Every chart is an image to assistive
technology: `role="img"`, a one-line `<title>` named by `aria-labelledby` and a `<desc>` that
lists the values as text, named by `aria-describedby`; the ids derive from the caller's `ident`
(kept to [A-Za-z0-9_-]), so charts with different idents never share an id on one page. All
text from data goes through `html.escape`. Numbers print with at most two decimals.

CSS classes the stylesheet must define:
    chart            every <svg>, together with one of chart--funnel, chart--intervals,
                     chart--timeline, chart--sparkline
    bar              a funnel stage or a timeline bar (<rect>)
    label            a category name: funnel stage, interval row, timeline unit (<text>)
    value            a number beside its mark: funnel counts, the sparkline's last value (<text>)
    axis             an axis line (<line>)
    tick             a tick label on an axis (<text>)
    grid             a grid line behind the marks (<line>)
    interval         an interval's line from low to high (<line>)
    point            an interval's estimate, the sparkline's last value (<circle>)
    reference        the forest plot's vertical reference line (<line>)
    line             the sparkline itself (<path>, wants `fill: none`)
    area             the area under the sparkline (<path>)
    empty            "no data yet", "not enough data" (<text>)
"""

from __future__ import annotations

import html
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

SVG_NS = "http://www.w3.org/2000/svg"
NO_DATA = "no data yet"
NOT_ENOUGH = "not enough data"
MAX_X_LABELS = 12  # a timeline with more points labels every k-th one
_UNSAFE_ID = re.compile(r"[^A-Za-z0-9_-]")


@dataclass(frozen=True)
class Interval:
    """One forest-plot row: an estimate and its interval; None anywhere means too little data."""

    label: str
    value: float | None
    low: float | None
    high: float | None


def _num(x: float, digits: int = 2, group: bool = False) -> str:
    """Compact: 2.5 not 2.50, 3 not 3.00, 0 not -0; with group, 1,117."""
    text = f"{x:{',' if group else ''}.{digits}f}"
    if digits:
        text = text.rstrip("0").rstrip(".")
    return "0" if text == "-0" else text


def _short(x: float) -> str:
    """Short enough for an axis or a sparkline: 1234 -> 1.23k, 2500000 -> 2.5M."""
    for size, suffix in ((1e12, "T"), (1e9, "B"), (1e6, "M"), (1e3, "k")):
        if abs(x) >= size:
            return _num(x / size) + suffix
    return _num(x)


def _esc(text: str) -> str:
    """Escaped, on one line (titles and labels never break)."""
    return html.escape(" ".join(str(text).split()))


def _text(cls: str, x: float, y: float, text: str, anchor: str = "start") -> str:
    return (f'<text class="{cls}" x="{_num(x)}" y="{_num(y)}" text-anchor="{anchor}" '
            f'dy="0.35em">{_esc(text)}</text>')


def _line(cls: str, x1: float, y1: float, x2: float, y2: float) -> str:
    return f'<line class="{cls}" x1="{_num(x1)}" y1="{_num(y1)}" x2="{_num(x2)}" y2="{_num(y2)}"/>'


def _rect(x: float, y: float, width: float, height: float, tip: str = "") -> str:
    box = f'class="bar" x="{_num(x)}" y="{_num(y)}" width="{_num(width)}" height="{_num(height)}"'
    return f"<rect {box}><title>{_esc(tip)}</title></rect>" if tip else f"<rect {box}/>"


def _open(kind: str, ident: str, title: str, desc: str, width: int, height: float) -> list[str]:
    """The <svg> start tag, its <title> and its <desc>, with ids unique per ident."""
    safe = _UNSAFE_ID.sub("-", ident) or "chart"
    title_id, desc_id = f"chart-{safe}-title", f"chart-{safe}-desc"
    return [f'<svg xmlns="{SVG_NS}" class="chart chart--{kind}" '
            f'viewBox="0 0 {width} {_num(height)}" width="100%" role="img" '
            f'aria-labelledby="{title_id}" aria-describedby="{desc_id}">',
            f'<title id="{title_id}">{_esc(title)}</title>',
            f'<desc id="{desc_id}">{_esc(desc)}</desc>']


def _step(span: float, count: int) -> float:
    """A nice step (1, 2, 2.5 or 5 times a power of ten) of at least span / count."""
    raw = span / count if span > 0 else 1.0
    power = 10.0 ** math.floor(math.log10(raw))
    return next(f * power for f in (1, 2, 2.5, 5, 10) if f * power >= raw * (1 - 1e-9))


def _ticks(low: float, high: float, step: float) -> list[float]:
    first, last = math.ceil(low / step - 1e-9), math.floor(high / step + 1e-9)
    return [k * step for k in range(first, last + 1)]


# -- funnel ---------------------------------------------------------------------------------
F_WIDTH, F_LABEL_X, F_BAR_X, F_BAR_MAX, F_ROW, F_BAR_H = 640, 140, 150, 280, 28, 18


def _share(count: int, first: int) -> str:
    return f"{count:,} ({_num(100 * count / first, 1)}%)" if first else f"{count:,}"


def funnel(ident: str, stages: Sequence[tuple[str, int]], title: str) -> str:
    """Horizontal bars, one per stage: widths against the largest stage, shares of the first."""
    names = [name for name, _ in stages]
    counts = [max(0, int(count)) for _, count in stages]
    first, top = (counts[0], max(counts)) if counts else (0, 0)
    notes = [_share(count, first) for count in counts]
    desc = "; ".join(f"{name}: {note}" for name, note in zip(names, notes, strict=True))
    height = max(1, len(counts)) * F_ROW + 8
    parts = _open("funnel", ident, title, desc or NO_DATA, F_WIDTH, height)
    if not counts:
        parts.append(_text("empty", F_WIDTH / 2, height / 2, NO_DATA, "middle"))
    for i, (name, count, note) in enumerate(zip(names, counts, notes, strict=True)):
        middle = 4 + i * F_ROW + F_ROW / 2
        width = F_BAR_MAX * count / top if top else 0.0
        parts += [_text("label", F_LABEL_X, middle, name, "end"),
                  _rect(F_BAR_X, middle - F_BAR_H / 2, width, F_BAR_H),
                  _text("value", F_BAR_X + width + 6, middle, note)]
    return "".join([*parts, "</svg>"])


# -- intervals (a forest plot) --------------------------------------------------------------
I_WIDTH, I_LABEL_X, I_LEFT, I_RIGHT, I_ROW, I_TOP = 640, 150, 160, 620, 24, 8


def _estimate(row: Interval) -> tuple[float, float, float] | None:
    """(value, low, high) when all three are known and finite, else None."""
    value, low, high = row.value, row.low, row.high
    if value is None or low is None or high is None:
        return None
    if not all(math.isfinite(x) for x in (value, low, high)):
        return None
    return value, min(low, high), max(low, high)


def _percent(x: float, unit: Literal["%", "points"]) -> str:
    text = _num(100 * x)
    if unit == "%":
        return f"{text}%"
    return f"{'' if text == '0' or text.startswith('-') else '+'}{text} pp"


def _domain(values: list[float], unit: Literal["%", "points"]) -> tuple[float, float, float]:
    """(low, high, step): covers the values with a margin, ends on ticks."""
    if not values:
        values = [0.0, 1.0] if unit == "%" else [-0.1, 0.1]
    low, high = min(values), max(values)
    margin = (high - low) * 0.05 or 0.05
    start, end = low - margin, high + margin
    if unit == "%":  # a proportion's axis stays inside 0..100% unless the data leave it
        start, end = (max(start, 0.0) if low >= 0 else start), (min(end, 1.0) if high <= 1 else end)
    step = _step(end - start, 5)
    start, end = math.floor(start / step + 1e-9) * step, math.ceil(end / step - 1e-9) * step
    return start, (end if end > start else start + step), step


def intervals(ident: str, rows: Sequence[Interval], title: str, reference: float | None = None,
              unit: Literal["%", "points"] = "%") -> str:
    """One row per item: a point at the value on a line from low to high, axis in % or points."""
    known = [_estimate(row) for row in rows]
    ref = reference if reference is not None and math.isfinite(reference) else None
    values = [x for est in known if est for x in est] + ([] if ref is None else [ref])
    low, high, step = _domain(values, unit)

    def x_of(v: float) -> float:
        return I_LEFT + (v - low) / (high - low) * (I_RIGHT - I_LEFT)

    notes = [f"{row.label}: " + (f"{_percent(est[0], unit)} ({_percent(est[1], unit)} to "
                                 f"{_percent(est[2], unit)})" if est else NOT_ENOUGH)
             for row, est in zip(rows, known, strict=True)]
    if ref is not None:
        notes.append(f"reference: {_percent(ref, unit)}")
    axis_y = I_TOP + max(1, len(rows)) * I_ROW + 4
    parts = _open("intervals", ident, title, "; ".join(notes) or NO_DATA, I_WIDTH, axis_y + 26)
    for tick in _ticks(low, high, step):
        parts += [_line("grid", x_of(tick), I_TOP, x_of(tick), axis_y),
                  _text("tick", x_of(tick), axis_y + 14, _percent(tick, unit), "middle")]
    parts.append(_line("axis", I_LEFT, axis_y, I_RIGHT, axis_y))
    if ref is not None:
        parts.append(_line("reference", x_of(ref), I_TOP, x_of(ref), axis_y))
    if not rows:
        parts.append(_text("empty", (I_LEFT + I_RIGHT) / 2, I_TOP + I_ROW / 2, NO_DATA, "middle"))
    for i, (row, est) in enumerate(zip(rows, known, strict=True)):
        middle = I_TOP + i * I_ROW + I_ROW / 2
        parts.append(_text("label", I_LABEL_X, middle, row.label, "end"))
        if est is None:
            parts.append(_text("empty", I_LEFT + 4, middle, NOT_ENOUGH))
            continue
        parts += [_line("interval", x_of(est[1]), middle, x_of(est[2]), middle),
                  f'<circle class="point" cx="{_num(x_of(est[0]))}" cy="{_num(middle)}" r="4"/>']
    return "".join([*parts, "</svg>"])


# -- timeline -------------------------------------------------------------------------------
T_WIDTH, T_LEFT, T_RIGHT, T_TOP, T_BOTTOM = 640, 56, 630, 24, 190


def timeline(ident: str, points: Sequence[tuple[str, float]], title: str,
             unit_label: str = "") -> str:
    """Bars over time; y axis with 3-5 nice ticks; x labels thinned past MAX_X_LABELS."""
    labels = [label for label, _ in points]
    values = [float(v) if math.isfinite(v) and v > 0 else 0.0 for _, v in points]
    suffix = f" {unit_label}" if unit_label else ""
    notes = [f"{label}: {_num(v, group=True)}{suffix}"
             for label, v in zip(labels, values, strict=True)]
    parts = _open("timeline", ident, title, "; ".join(notes) or NO_DATA, T_WIDTH, T_BOTTOM + 26)
    if unit_label:
        parts.append(_text("label", 4, 10, unit_label))
    if not values:
        parts += [_line("axis", T_LEFT, T_TOP, T_LEFT, T_BOTTOM),
                  _line("axis", T_LEFT, T_BOTTOM, T_RIGHT, T_BOTTOM),
                  _text("empty", (T_LEFT + T_RIGHT) / 2, (T_TOP + T_BOTTOM) / 2, NO_DATA, "middle")]
        return "".join([*parts, "</svg>"])
    step = _step(max(values) or 1.0, 4)
    top = math.ceil((max(values) or 1.0) / step - 1e-9) * step
    height = T_BOTTOM - T_TOP
    for tick in _ticks(0.0, top, step):
        y = T_BOTTOM - tick / top * height
        parts += [_line("grid", T_LEFT, y, T_RIGHT, y),
                  _text("tick", T_LEFT - 6, y, _short(tick), "end")]
    parts += [_line("axis", T_LEFT, T_TOP, T_LEFT, T_BOTTOM),
              _line("axis", T_LEFT, T_BOTTOM, T_RIGHT, T_BOTTOM)]
    slot = (T_RIGHT - T_LEFT) / len(values)
    every = math.ceil(len(values) / MAX_X_LABELS)
    for i, (label, value, note) in enumerate(zip(labels, values, notes, strict=True)):
        bar = value / top * height
        parts.append(_rect(T_LEFT + (i + 0.1) * slot, T_BOTTOM - bar, 0.8 * slot, bar, note))
        if i % every == 0:
            parts.append(_text("tick", T_LEFT + (i + 0.5) * slot, T_BOTTOM + 14, label, "middle"))
    return "".join([*parts, "</svg>"])


# -- sparkline ------------------------------------------------------------------------------
S_WIDTH, S_HEIGHT, S_PLOT, S_PAD = 160, 32, 116, 3


def sparkline(ident: str, values: Sequence[float], title: str) -> str:
    """A small line with no axes and the last value as text; nothing or zeros draw it flat."""
    clean = [float(v) if math.isfinite(v) else 0.0 for v in values]
    low, high = min([0.0, *clean]), max([0.0, *clean])

    def y_of(v: float) -> float:
        share = (v - low) / (high - low) if high > low else 0.0
        return S_HEIGHT - S_PAD - share * (S_HEIGHT - 2 * S_PAD)

    if len(clean) > 1:
        xs = [S_PAD + i * (S_PLOT - S_PAD) / (len(clean) - 1) for i in range(len(clean))]
        ys = [y_of(v) for v in clean]
    else:
        xs, ys = [S_PAD, S_PLOT], [y_of(clean[0] if clean else 0.0)] * 2
    line = "M" + " L".join(f"{_num(x)} {_num(y)}" for x, y in zip(xs, ys, strict=True))
    base = _num(y_of(0.0))
    area = f"{line} L{_num(xs[-1])} {base} L{_num(xs[0])} {base} Z"
    desc = (f"{len(clean)} values, last {_num(clean[-1], group=True)}: "
            + ", ".join(_num(v, group=True) for v in clean)) if clean else NO_DATA
    parts = _open("sparkline", ident, title, desc, S_WIDTH, S_HEIGHT)
    parts += [f'<path class="area" d="{area}"/>', f'<path class="line" d="{line}"/>']
    if clean:
        parts.append(f'<circle class="point" cx="{_num(xs[-1])}" cy="{_num(ys[-1])}" r="2"/>')
    parts.append(_text("value", S_PLOT + 6, S_HEIGHT / 2, _short(clean[-1]) if clean else "—"))
    return "".join([*parts, "</svg>"])
