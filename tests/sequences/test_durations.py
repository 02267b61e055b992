"""Durations: "90s", "60m", "1h30m", "7d", "2w", "250ms"; parse and format round-trip."""

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from server.sequences.durations import DURATION_PATTERN, format_duration_ms, parse_duration_ms

UNIT_MS = {"ms": 1, "s": 1_000, "m": 60_000, "h": 3_600_000, "d": 86_400_000, "w": 604_800_000}


@pytest.mark.parametrize(
    ("text", "ms"),
    [("250ms", 250), ("90s", 90_000), ("60m", 3_600_000), ("1h30m", 5_400_000),
     ("7d", 604_800_000), ("2w", 1_209_600_000), ("0s", 0), ("1m1ms", 60_001), (" 5m ", 300_000)],
)
def test_parse(text, ms):
    assert parse_duration_ms(text) == ms


@pytest.mark.parametrize(
    "text", ["60x", "60", "", "m", "1.5h", "-1h", "1h 30m", "h1", "1H", 60, None, 1.5],
)
def test_parse_refuses(text):
    with pytest.raises(ValueError, match="invalid duration"):
        parse_duration_ms(text)


@pytest.mark.parametrize(
    ("ms", "text"),
    [(0, "0s"), (1, "1ms"), (90_000, "1m30s"), (3_600_000, "1h"), (604_800_000, "1w"),
     (694_861_001, "1w1d1h1m1s1ms")],
)
def test_format(ms, text):
    assert format_duration_ms(ms) == text


@given(st.integers(min_value=0, max_value=10**14))
def test_format_reads_back(ms):
    text = format_duration_ms(ms)
    assert re.fullmatch(DURATION_PATTERN, text)
    assert parse_duration_ms(text) == ms


@given(st.lists(st.tuples(st.integers(0, 10**6), st.sampled_from(sorted(UNIT_MS))), min_size=1,
                max_size=6))
def test_parse_sums_parts_and_format_is_canonical(parts):
    text = "".join(f"{n}{unit}" for n, unit in parts)
    ms = parse_duration_ms(text)
    assert ms == sum(n * UNIT_MS[unit] for n, unit in parts)
    canonical = format_duration_ms(ms)
    assert format_duration_ms(parse_duration_ms(canonical)) == canonical
    units = re.findall(r"\d+(ms|s|m|h|d|w)", canonical)
    order = ["w", "d", "h", "m", "s", "ms"]
    assert units == sorted(set(units), key=order.index)  # each unit once, largest first
