"""Identity routing: which user a batch belongs to, the one rule the single process and the
distributed mode's shard owner both follow.

A device starts as its own anonymous profile (`d:<device>`). An anonymous batch goes to
whoever owns the device now: the device itself, or the user it became. An identified batch
goes to its user; when the device is not that user's yet, the batch *claims* it: the device's
anonymous history (if any) is folded into the user on the way, and from then on the device is
the user's (an alias when it had no history, a retire of its profile when the history moved),
so its later anonymous batches follow, after a restart too.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

__all__ = ["Route", "link_kind", "route"]


@dataclass(frozen=True, slots=True)
class Route:
    key: str  # the user (or device) the batch is applied to
    claims: bool  # the device becomes `key`'s: bring its history along, then link it


def route(batch_key: str, device_key: str, owner: str | None) -> Route:
    """Where a batch routed by `batch_key`, from the device `device_key` (whose current owner
    is `owner`, None when it has none but itself), goes."""
    if batch_key == device_key:
        return Route(owner or device_key, claims=False)
    return Route(batch_key, claims=owner != batch_key)


def link_kind(history: bytes | None) -> Literal["alias", "retire"]:
    """How a claimed device is linked to its user: its profile retired when its history moved
    into the user, else only an alias."""
    return "alias" if history is None else "retire"
