"""Durations: "90s", "60m", "1h30m", "7d", "2w", "250ms"; parse and format round-trip; at most
ten years, and no text that only hides a huge number."""

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from server.sequences.durations import (
    DURATION_PATTERN,
    MAX_DURATION_CHARS,
    MAX_DURATION_MS,
    format_duration_ms,
    parse_duration_ms,
)

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


@pytest.mark.parametrize(
    ("text", "ms"),
    [("3650d", MAX_DURATION_MS), ("521w3d", MAX_DURATION_MS), ("520w", 520 * 604_800_000)],
)
def test_ten_years_is_the_longest(text, ms):
    assert parse_duration_ms(text) == ms


@pytest.mark.parametrize(
    "text",
    ["3650d1ms", "521w4d", "999999999999999999w", "1000000000000000w", "15250w",
     "9223372036854775807ms", "9223372036854775808ms"],
)
def test_parse_refuses_past_ten_years(text):
    """10^15 weeks once loaded, then overflowed the engine's and SQLite's 64-bit milliseconds."""
    with pytest.raises(ValueError, match=r"too long: at most 3650d \(10 years\)"):
        parse_duration_ms(text)


@pytest.mark.parametrize(
    "text", ["9" * 5000 + "w", "1w" * 200_000, "0" * 70 + "1s", " " * 10 + "1" * 70 + "s"],
)
def test_parse_refuses_long_text_without_echoing_it(text):
    with pytest.raises(ValueError, match=f"longer than {MAX_DURATION_CHARS} characters") as err:
        parse_duration_ms(text)
    assert len(str(err.value)) < 120


@given(st.integers(min_value=0, max_value=MAX_DURATION_MS))
def test_format_reads_back(ms):
    text = format_duration_ms(ms)
    assert re.fullmatch(DURATION_PATTERN, text)
    assert parse_duration_ms(text) == ms


@given(st.lists(st.tuples(st.integers(0, 10**6), st.sampled_from(sorted(UNIT_MS))), min_size=1,
                max_size=6))
def test_parse_sums_parts_and_format_is_canonical(parts):
    text = "".join(f"{n}{unit}" for n, unit in parts)
    total = sum(n * UNIT_MS[unit] for n, unit in parts)
    if total > MAX_DURATION_MS:
        with pytest.raises(ValueError, match="at most 3650d"):
            parse_duration_ms(text)
        return
    ms = parse_duration_ms(text)
    assert ms == total
    canonical = format_duration_ms(ms)
    assert format_duration_ms(parse_duration_ms(canonical)) == canonical
    units = re.findall(r"\d+(ms|s|m|h|d|w)", canonical)
    order = ["w", "d", "h", "m", "s", "ms"]
    assert units == sorted(set(units), key=order.index)  # each unit once, largest first
