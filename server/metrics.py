"""Prometheus metrics of one server, in its own registry (tests run several servers at once)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from server.storage.bookkeeping import Seen
from server.storage.observing import ShardObserver

__all__ = ["Metrics"]

_MS_BUCKETS = (1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000)


class _QueueDepth(Collector):
    def __init__(self, depths: Callable[[], Iterable[tuple[int, int]]]) -> None:
        self._depths = depths

    def collect(self) -> Iterable[GaugeMetricFamily]:
        family = GaugeMetricFamily("pulsewire_shard_queue_depth", "Work waiting per shard",
                                   labels=["shard"])
        for shard, depth in self._depths():
            family.add_metric([str(shard)], depth)
        yield family


class _LogPositions(Collector):
    def __init__(self, positions: Callable[[], Iterable[tuple[int, int, int, bool]]]) -> None:
        self._positions = positions

    def collect(self) -> Iterable[GaugeMetricFamily]:
        applied = GaugeMetricFamily("pulsewire_shard_log_position",
                                    "Last log sequence applied, per shard held here",
                                    labels=["shard"])
        pending = GaugeMetricFamily("pulsewire_shard_log_pending",
                                    "Log entries JetStream held for a shard at its last fetch",
                                    labels=["shard"])
        caught_up = GaugeMetricFamily("pulsewire_shard_caught_up",
                                      "1 once a held shard has replayed the backlog it was"
                                      " taken with", labels=["shard"])
        for shard, position, waiting, done in self._positions():
            applied.add_metric([str(shard)], position)
            pending.add_metric([str(shard)], waiting)
            caught_up.add_metric([str(shard)], int(done))
        yield applied
        yield pending
        yield caught_up


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.events_in = Counter("pulsewire_events_in", "Events applied", registry=r)
        self.batches_rejected = Counter("pulsewire_batches_rejected", "Batches refused",
                                        ["reason"], registry=r)
        self.bot_events = Counter("pulsewire_bot_events", "Events from self-declared bots, "
                                  "acked and not applied", registry=r)
        self.commit_ms = Histogram("pulsewire_commit_ms", "Shard group commit latency (ms)",
                                   buckets=_MS_BUCKETS, registry=r)
        self.timer_lateness_ms = Histogram("pulsewire_timer_lateness_ms",
                                           "How late timers fired (ms)", buckets=_MS_BUCKETS,
                                           registry=r)
        self.emails_sent = Counter("pulsewire_emails_sent", "Emails accepted by SMTP",
                                   registry=r)
        self.emails_failed = Counter("pulsewire_emails_failed", "Email attempts that failed",
                                     ["kind"], registry=r)
        self.shard_items_failed = Counter("pulsewire_shard_items_failed", "Work items a shard"
                                          " could not apply (the rest of their group"
                                          " committed), by error", ["reason"], registry=r)
        self.erased_dropped = Counter("pulsewire_erased_dropped", "Batches for an erased user"
                                      " or from an erased device, acked and dropped",
                                      registry=r)
        self.raw_chunks = Counter("pulsewire_raw_chunks", "Raw-signal chunks, by what became of"
                                  " them (applied, held, released, duplicate, bot, invalid,"
                                  " unknown_site, origin, too_large)", ["outcome"], registry=r)
        self.raw_batches = Counter("pulsewire_raw_batches", "Batches made from raw signals, by"
                                   " what the ingest said (accepted, duplicate, refused,"
                                   " deferred, expired)", ["outcome"], registry=r)
        self.segment_messages = Counter("pulsewire_segment_messages", "Segment-spec messages,"
                                        " by outcome (accepted, refused)", ["outcome"],
                                        registry=r)
        self.resumed_streams = Gauge("pulsewire_resumed_streams", "Streams whose site, device,"
                                     " context and strings are kept for resumed batches",
                                     registry=r)

    def shard_observer(self, on_applied: Callable[[Sequence[Seen]], None] | None = None,
                       ) -> ShardObserver:
        """What shards report, into these metrics; `on_applied` also gets the events each
        committed group applied (the console's live feed)."""
        metrics = self

        class Observer(ShardObserver):
            wants_applied = on_applied is not None

            def commit(self, elapsed_ms: float) -> None:
                metrics.commit_ms.observe(elapsed_ms)

            def applied(self, seen: Sequence[Seen]) -> None:
                if on_applied is not None:
                    on_applied(seen)

            def timer_lateness(self, late_ms: int) -> None:
                metrics.timer_lateness_ms.observe(late_ms)

            def item_failed(self, reason: str) -> None:
                metrics.shard_items_failed.labels(reason).inc()

            def erased_dropped(self) -> None:
                metrics.erased_dropped.inc()

        return Observer()

    def watch_queues(self, depths: Callable[[], Iterable[tuple[int, int]]]) -> None:
        self.registry.register(_QueueDepth(depths))

    def watch_log(self,
                  positions: Callable[[], Iterable[tuple[int, int, int, bool]]]) -> None:
        """Distributed mode: the log position and catch-up of each shard held here."""
        self.registry.register(_LogPositions(positions))

    def render(self) -> bytes:
        return generate_latest(self.registry)
