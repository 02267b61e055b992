"""The backtest scores as the server does, with the server config's `[scoring]`: its JSON ends
with the scores at the history's end (spread, band entries), so a rule is tried on history
first; a bad `[scoring]` is refused with the field at fault."""

from pathlib import Path

import pytest
from backtest_cases import backtest, write_csv

CONFIG = """
[scoring]
half_life = "1d"
bands = { warm = 10, hot = 30 }
[[scoring.rules]]
event = "cart_add"
points = 5
[[scoring.rules]]
event = "purchase"
points = 25
"""


def test_scores_at_the_history_s_end(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    history = write_csv(tmp_path / "h.csv", ("user_id", "event", "timestamp", "cart_id"), [
        ("u1", "cart_add", "2024-03-04T10:00:00Z", "c1"),
        ("u1", "cart_add", "2024-03-04T11:00:00Z", "c1"),
        ("u1", "purchase", "2024-03-04T12:00:00Z", "c1"),
        ("u2", "cart_add", "2024-03-05T12:00:00Z", "c2"),
    ])
    config = tmp_path / "server.toml"
    config.write_text(CONFIG)
    run = backtest(capsys, history, "--config", str(config))
    scores = run.summary["scores"]
    assert scores["users"] == 2
    # u1: 5 + 5 + 25 around 2024-03-04 noon, a day before the end: about half of 35
    u1 = (5 * 2 ** (-2 / 24) + 5 * 2 ** (-1 / 24) + 25) / 2
    assert scores["max"] == pytest.approx(u1, abs=1e-3)
    assert scores["min"] == pytest.approx(5.0)  # u2 at the very end
    # u1: 9.9 after the second cart (no band), hot at the purchase, then, as the clock runs
    # on, warm and none by decay; u2's 5 never reaches a band
    assert scores["band_entries"] == {"hot": 1, "warm": 1, "none": 1}
    assert "scores" not in backtest(capsys, history).summary  # no config: no score


def test_a_bad_scoring_table_is_refused(tmp_path: Path,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "server.toml"
    config.write_text('[scoring]\nhalf_life = "soon"\n')
    history = write_csv(tmp_path / "h.csv", ("user_id", "event", "timestamp"),
                        [("u1", "cart_add", "2024-03-04T10:00:00Z")])
    run = backtest(capsys, history, "--config", str(config))
    assert run.code == 2 and "scoring.half_life" in run.err
