"""Stable draws: which users a holdout keeps, and which arm of a split a user goes down.

Every draw is a hash, never a random number, so the server, every node of a cluster and a
backtest over the same users decide the same, today and after any replay. The hash reads the
user as the site knows them: a routing key `u:<id>` draws as `<id>`, the user id a history
names, so a backtest over an export draws what the server did.

- The site's holdout (`[holdout] global`) draws from the user alone: the same users are kept
  out of every sequence's email, which is what measures the programme as a whole.
- A sequence's holdout draws from (sequence, user).
- A split draws from (user, sequence, step): a user's arm does not depend on the holdout draw.
"""

from __future__ import annotations

import hashlib

from server.engine.rules import ArmRule, SequenceRules, SplitRule
from server.engine.state import GLOBAL_HOLDOUT, HOLDOUT, TREATED

__all__ = ["cohort_of", "draw", "held_out", "pick_arm"]

_SITE = "\x00site"  # the sequence part of the site-wide holdout's draw: no sequence id has it


def draw(*parts: str) -> float:
    """A number in [0, 1), the same for the same parts in every process."""
    digest = hashlib.blake2b("\x00".join(parts).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2.0**64


def person(user: str) -> str:
    return user[2:] if user.startswith("u:") else user


def held_out(sequence: str, user: str, fraction: float) -> bool:
    """Whether the holdout of `fraction` keeps `user` (for `sequence`) from being mailed."""
    return fraction > 0 and draw(sequence, person(user)) < fraction


def cohort_of(seq: SequenceRules, user: str, global_holdout: float) -> str:
    if held_out(_SITE, user, global_holdout):
        return GLOBAL_HOLDOUT
    if held_out(seq.id, user, seq.holdout):
        return HOLDOUT
    return TREATED


def pick_arm(split: SplitRule, user: str, sequence: str, step: int) -> ArmRule:
    return split.pick(draw(person(user), sequence, str(step)))
