"""What a shard reports as it works: the app passes an observer that feeds its metrics and the
console's live page; the default observes nothing."""

from __future__ import annotations

from collections.abc import Sequence

from server.storage.bookkeeping import Seen

__all__ = ["ShardObserver"]


class ShardObserver:
    wants_applied = False  # True: the writer gathers the events a group applied, for `applied`

    def commit(self, elapsed_ms: float) -> None:
        """A group was applied and committed, `elapsed_ms` from start to COMMIT."""

    def applied(self, seen: Sequence[Seen]) -> None:
        """The events a committed group applied, in order, with the sequences each moved."""

    def timer_lateness(self, late_ms: int) -> None:
        """A timer fired `late_ms` after it was due."""

    def item_failed(self, reason: str) -> None:
        """One item failed alone (its group's others committed); `reason` is its error."""

    def erased_dropped(self) -> None:
        """A batch for an erased user or from an erased device was acked and dropped."""
