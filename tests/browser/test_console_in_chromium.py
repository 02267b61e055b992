"""The web console at /console/ in real headless Chromium against the real server (demo mode, a
real SMTP catcher), as the issue's acceptance asks: nothing without a session, no form without
its CSRF token, the figures shown are `pulsewire admin stats --format json`'s at the same
moment, a shopper driven in the demo shop shows on the Live page within a second of being
applied and on their user page waiting, every example template previews, event properties
show as text, every page passes axe-core (nothing serious or critical) and starts with a skip
link; a full-page screenshot of each goes to build/screenshots/console/.

One server and one browser (tests/browser/console.mjs, told what to do a line at a time) serve
every check: the module's fixture runs the whole scenario once and keeps what it saw; each test
asserts on its part.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest
from console_scenario import (
    BROKEN,
    NOT_STATS,
    PAGES,
    POSTS,
    USERS,
    XSS,
    expected_figures,
    on_sequence_page,
    run_scenario,
    same_figure,
)
from shop import EXAMPLES


@pytest.fixture(scope="module")
def seen(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Everything the scenario saw, once for the module."""
    tmp = tmp_path_factory.mktemp("console")
    started = time.monotonic()
    found = asyncio.run(run_scenario(tmp))
    print(f"\nthe console scenario took {time.monotonic() - started:.1f} s")
    return found


def test_login_with_the_token_and_nothing_without_a_session(seen: dict[str, Any]) -> None:
    access = seen["access"]
    for page in access["anonymous"]:  # every page, and a made-up session, land on the login
        assert page["url"].endswith("/console/login") and page["login_form"] == 1, page
    assert [page["path"] for page in access["anonymous"]] == PAGES
    assert all(page["url"].endswith("/console/login") for page in access["forged"])
    assert access["no_session"] == dict.fromkeys(POSTS, 401)
    login = access["login"]
    assert login["wrong_token"] == 401 and "Wrong token" in login["wrong_token_problem"]
    assert login["status"] == 303 and login["landed"].endswith("/console/")
    assert login["who"] == "operator"
    cookie = login["cookie"]
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict" and cookie["path"] == "/console"


def test_every_form_without_its_csrf_token_is_refused(seen: dict[str, Any]) -> None:
    access = seen["access"]
    login = access["login"]
    assert (login["no_csrf"], login["wrong_csrf"]) == (403, 403)
    assert login["cookie_after_refusals"] is None
    with_session = access["with_session"]
    for form in POSTS:  # no token, a wrong one, the login form's (not this session's)
        assert with_session[form] == {"no_csrf": 403, "wrong_csrf": 403,
                                      "login_forms_csrf": 403}, form
    assert with_session["still_logged_in"].endswith("/console/")  # logout was refused too
    # with its token a form goes through
    assert with_session["valid_unknown_action"] == 400
    assert with_session["valid_check"] == {"status": 200, "outcome": "valid"}


def test_the_figures_shown_are_the_admin_stats_of_the_same_moment(seen: dict[str, Any]) -> None:
    report = seen["stats"]
    assert seen["stats_before"] == report  # a still moment: the page read between the two
    want = expected_figures(report)
    by_id = {s["sequence"]: s for s in report["sequences"]}
    assert by_id["ab-offer"]["holdout"]["entered"] > 0 and by_id["ab-offer"]["arms"]
    steps = [step for s in report["sequences"] for step in s["steps"]]
    assert sum(step["opened"] for step in steps) and sum(step["clicked"] for step in steps)
    assert by_id["welcome"]["converted"] == USERS // 3
    checked = 0
    for path, page in seen["figures"].items():
        assert page["status"] == 200, path
        shown: dict[str, Any] = {}
        for metric, value in page["figures"]:
            if NOT_STATS.match(metric):
                continue
            assert metric in want, f"{path}: {metric} is not in the stats report"
            assert same_figure(value, want[metric]), (
                f"{path}: {metric} = {value}, stats {want[metric]}")
            shown[metric] = value
            checked += 1
        if path == "/console/":
            for seq in by_id:
                assert {f"{seq}/*/entered", f"{seq}/*/sent", f"{seq}/*/converted",
                        f"{seq}/treated/rate", f"{seq}/holdout/rate"} <= set(shown), seq
            assert {"*/*/entered", "*/*/sent", "*/*/opened", "*/*/clicked", "*/*/converted",
                    "programme/treated/entered", "programme/holdout/rate"} <= set(shown)
        else:
            seq = by_id[path.rsplit("/", 1)[1]]
            assert set(shown) == on_sequence_page(seq, want), path
    print(f"\n{checked} figures on {len(seen['figures'])} pages equal the stats report")


def test_a_shopper_shows_live_within_a_second_and_waits_on_their_page(
        seen: dict[str, Any]) -> None:
    live = seen["live"]
    assert live["opened"]["status"] == 200
    assert live["opened"]["type"].startswith("text/event-stream")
    mine = [row for row in live["rows"] if row["user"] in live["keys"]]
    assert all(row["streamed"] for row in mine)  # came by the stream, not a reload
    events = {(row["user"], row["cells"][2]) for row in mine}  # when, user, event, ...
    device_key, user_key = live["keys"]
    assert {(device_key, "cart_add"), (user_key, "identify")} <= events, events
    applied = {int(n): ms for n, ms in live["applied"].items()}
    late = [(row["number"], row["seen_ms"] - applied[row["number"]]) for row in mine]
    after_ack = []
    for row in mine:  # the ack of the batch that carried it follows its apply
        ack = min((ms for ms, _ in live["acks"] if ms >= applied[row["number"]]), default=None)
        if ack is not None:
            after_ack.append(row["seen_ms"] - ack)
    assert after_ack, live["acks"]
    print(f"\n{len(mine)} rows of the shopper on the Live page; from apply to row: max "
          f"{max(ms for _, ms in late)} ms; from the batch's ack: max {max(after_ack)} ms")
    assert all(ms < 1000 for _, ms in late), late
    assert max(after_ack) < 1000, after_ack
    user = live["user"]
    assert user["status"] == 200 and user["user"].startswith("u:")
    waiting = {i["sequence"]: i for i in user["instances"]}
    assert {"cart-seen", "cart-keyed"} <= set(waiting), user["instances"]
    for instance in waiting.values():
        assert instance["due"] and int(instance["due"]) > time.time() * 1000 - 60_000, instance
        assert "wait" in instance["at"], instance  # at its wait_for step


def test_event_properties_show_as_text(seen: dict[str, Any]) -> None:
    xss = seen["xss"]
    streamed = [row for row in xss["streamed"]["rows"] if XSS in row["text"]]
    assert streamed and all(row["streamed"] for row in streamed)
    for page in (xss["streamed"], xss["live"], xss["user"], xss["who"]):
        assert page["imgs"] == 0 and page["handlers"] == 0, page
    for page in (xss["live"], xss["user"], xss["who"]):
        assert XSS in page["main"], page["main"][:500]
    assert [i["key"] for i in xss["user"]["instances"] if i["sequence"] == "cart-keyed"] == [XSS]
    assert seen["events"]["dialogs"] == []


def test_every_example_template_previews(seen: dict[str, Any]) -> None:
    names = sorted({p.name.split(".")[0] for p in (EXAMPLES / "templates").iterdir()
                    if not p.name.startswith("_")})
    previews = {p["name"]: p for p in seen["previews"]}
    assert sorted(previews) == sorted([*names, BROKEN])
    for name in names:
        frames = previews[name]["frames"]
        assert len(frames) == 2 and all(f["sandbox"] == "" and f["body"] for f in frames), name
        assert not any("does not render" in w for w in previews[name]["warnings"]), name
    broken = previews[BROKEN]
    assert broken["frames"] == [] and any("does not render" in w for w in broken["warnings"])


def test_every_page_passes_axe_and_starts_with_a_skip_link(seen: dict[str, Any]) -> None:
    audit = seen["audit"]
    print(f"\naxe-core injected by {audit['injection']}")
    for name, page in audit["pages"].items():
        rules = sorted({f"{v['id']} ({v['impact']})" for v in page["violations"]})
        review = sorted({v["id"] for v in page["review"]})
        print(f"{name}: {page['shot']}; axe ran {page['ran']} rules: violations "
              f"{', '.join(rules) or 'none'}; to review by hand {', '.join(review) or 'none'}")
    for name, page in audit["pages"].items():
        assert page["ran"] > 20, name  # axe did run
        serious = [v for v in page["violations"] if v["impact"] in ("serious", "critical")]
        assert serious == [], (name, serious)
        assert page["first_tab"]["class"] == "skip" and page["first_tab"]["href"] == "#main"
        assert page["after_enter"] == {"tag": "MAIN", "id": "main"}, name
        assert {"header", "main", "footer"} <= set(page["landmarks"]), name
        assert Path(page["shot"]).stat().st_size > 5000
    errors = seen["events"]["errors"]
    assert errors == [], errors  # no CSP violation, no script error


# ---- expected figures -------------------------------------------------------------------------
