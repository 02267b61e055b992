"""The example emails, as sent, score low with SpamAssassin's local rules (no network tests).

One `spamassassin --mbox` run scores every example template; HOME is a temporary directory and
Bayes is off, so the run neither reads nor learns from anything outside this test. The run
orders messages by date, so results are matched back by Message-ID."""

import mailbox
import os
import re
import shutil
import subprocess
from email import policy
from email.parser import BytesHeaderParser
from pathlib import Path

import pytest
from mail_fixtures import SEQUENCE_TEMPLATES, cart_context, example_templates, links

from server.mail.message import build_message, message_id_for

LIMIT = 3.0
SENDER = "Voltline <shop@shop.example.com>"
# GTUBE: SpamAssassin scores this 1000, which shows that the run and its parsing work.
GTUBE = (b"From: x@spam.example\r\nTo: y@example.org\r\nSubject: test\r\n"
         b"Message-ID: <gtube@spam.example>\r\n\r\n"
         b"XJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X\r\n")


def scores_by_message_id(output: bytes) -> dict[str, float]:
    scores = {}
    for block in re.split(rb"^From .*\n", output, flags=re.MULTILINE):
        headers = BytesHeaderParser(policy=policy.default).parsebytes(block)
        status = str(headers.get("X-Spam-Status", ""))
        found = re.search(r"score=(-?[0-9.]+)", status)
        if found:
            scores[str(headers["Message-ID"])] = float(found.group(1))
    return scores


def test_example_emails_score_below_limit(tmp_path: Path) -> None:
    spamassassin = shutil.which("spamassassin")
    if spamassassin is None:
        pytest.fail("spamassassin is not installed: run ./scripts/setup (it installs it)")
    templates = example_templates(tmp_path)
    box = mailbox.mbox(tmp_path / "all.mbox")
    for i, name in enumerate(SEQUENCE_TEMPLATES):
        email = templates.render(name, cart_context(value_minor="25900"), links(f"m-{i}"))
        box.add(build_message(email, sender=SENDER, to="ann@example.org",
                              message_key=f"test/{name}",
                              unsubscribe_url=links(f"m-{i}").unsubscribe(),
                              now_ms=1_790_000_000_000))
    box.add(GTUBE)
    box.close()
    home = tmp_path / "home"
    home.mkdir()
    with (tmp_path / "all.mbox").open("rb") as stdin:
        run = subprocess.run(
            [spamassassin, "-L", "-t", "--mbox", "--cf=use_bayes 0", "--cf=bayes_auto_learn 0"],
            stdin=stdin, capture_output=True, check=True, timeout=90,
            env={**os.environ, "HOME": str(home)})
    found = scores_by_message_id(run.stdout)
    assert found.pop("<gtube@spam.example>") >= 1000
    scores = {name: found[message_id_for(f"test/{name}", SENDER)] for name in SEQUENCE_TEMPLATES}
    print("spamassassin scores:", scores)
    assert all(score < LIMIT for score in scores.values()), scores
