"""Variants side by side on the 1M-event synthetic history: each --vary value and each --variant
set gives exactly the figures a backtest of that set alone gives; bad variants are refused with
what is wrong. (How long variants take against single runs is measured by scripts/bench.)"""

from pathlib import Path

import pytest
from backtest_cases import CART_AND_BROWSE, EXAMPLES, backtest

from server.backtest.synthetic import generate

CART, BROWSE = CART_AND_BROWSE


@pytest.fixture(scope="module")
def million(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("million") / "shop.csv"
    generate(path, events=1_000_000, users=20_000, seed=1)
    return path


def _cart_with_timeout(folder: Path, timeout: str) -> Path:
    text = CART.read_text()
    assert "timeout: 60m" in text
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "cart-recovery.yaml"
    path.write_text(text.replace("timeout: 60m", f"timeout: {timeout}"))
    return path


def test_each_variant_equals_its_set_replayed_alone(million: Path, tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    both = backtest(capsys, million, "--vary", "cart-recovery:steps[0].wait_for.timeout=30m,2h",
                    "--variant", f"browse-only={BROWSE}")
    assert both.code == 0, both.err
    variants = both.summary["variants"]
    assert [v["variant"] for v in variants] == [
        "cart-recovery:steps[0].wait_for.timeout=30m",
        "cart-recovery:steps[0].wait_for.timeout=2h", "browse-only"]
    alone = [
        backtest(capsys, million, sequences=[_cart_with_timeout(tmp_path / "30m", "30m"), BROWSE]),
        backtest(capsys, million, sequences=[_cart_with_timeout(tmp_path / "2h", "2h"), BROWSE]),
        backtest(capsys, million, sequences=[BROWSE]),
    ]
    for variant, run in zip(variants, alone, strict=True):
        assert run.code == 0
        assert variant["sequences"] == run.summary["sequences"]
        assert (variant["events"], variant["users"]) == (1_000_000, run.summary["users"])
    shorter, longer = (v["sequences"]["cart-recovery"] for v in variants[:2])
    assert shorter["sent"] != longer["sent"]  # the field changed what the replay decided
    assert shorter["converted"] > 0 and shorter["goal_events"] > 0


@pytest.mark.parametrize(("vary", "says"), [
    ("cart-recovery:steps[5].send.template=x", "the sequence has no steps[5]"),
    ("nosuch:holdout=0.1", "no sequence 'nosuch'"),
    ("cart-recovery:steps[0].wait_for.timeout=soon", "invalid duration 'soon'"),
    ("cart-recovery:holdout=2", "holdout"),
])
def test_a_variant_that_cannot_be_made_is_refused(tmp_path: Path, vary: str, says: str,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    history = tmp_path / "h.csv"
    history.write_text("user_id,event,timestamp\nu1,cart_add,2024-03-04T10:00:00Z\n")
    run = backtest(capsys, history, "--vary", vary)
    assert run.code == 1 and says in run.err and vary.split("=")[0] in run.err


@pytest.mark.parametrize("bad", ["cart-recovery=steps", "cart-recovery:steps[x]=1", ":a=1"])
def test_a_malformed_vary_is_a_usage_error(tmp_path: Path, bad: str,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        backtest(capsys, tmp_path / "h.csv", "--vary", bad)
    assert exit_.value.code == 2


def test_vary_needs_the_base_set(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run = backtest(capsys, tmp_path / "h.csv", "--vary", "cart-recovery:holdout=0.1",
                   sequences=[])
    assert run.code == 2 and "--vary changes the --sequences set" in run.err


def test_the_table_puts_variants_side_by_side(tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    history = tmp_path / "h.csv"
    history.write_text("user_id,event,timestamp\nu1,cart_add,2024-03-04T10:00:00Z\n"
                       "u1,purchase,2024-03-05T10:00:00Z\n")
    run = backtest(capsys, history, "--vary", "cart-recovery:holdout=0,0.999",
                   json_format=False, sequences=[EXAMPLES / "sequences" / "cart-recovery.yaml"])
    header, _rule, mailed, held = run.out.splitlines()
    assert header.split()[:4] == ["variant", "sequence", "entered", "sent"]
    assert mailed.split()[:4] == ["cart-recovery:holdout=0", "cart-recovery", "1", "1"]
    assert held.split()[:5] == ["cart-recovery:holdout=0.999", "cart-recovery", "1", "0", "1"]
