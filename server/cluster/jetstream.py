"""The node's one NATS connection and the JetStream parts of the distributed mode.

  stream   `<stream>`: subjects `<stream>.shard.<n>`, file storage, `replicas` copies; every
           accepted batch is one message on its shard's subject (server/cluster/entries.py);
  leases   key-value bucket `<stream>-leases`: `shard.<n>` = the node holding shard n and
           `node.<id>` = a live node, both kept alive by updates and gone after `lease_ttl_s`;
  sent     key-value bucket `<stream>-sent`: one key per email handed to SMTP, so a node that
           takes over a shard never sends what its last holder sent;
  stats    key-value bucket `<stream>-stats`: `shard.<n>` = shard n's stats counters as its
           holder last shared them, kept with no TTL (server/cluster/shared_counters.py);
  snapshots  object store `<stream>-snapshots`: the latest copy of each shard file.

The connection reconnects forever; a publish while NATS is out of reach fails with
Unavailable, which an ingest answers with UNAVAILABLE so the client retries.
"""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass
from typing import Any

import nats
from nats.aio.client import Client
from nats.errors import Error as NatsError
from nats.js import JetStreamContext
from nats.js.api import (
    AckPolicy,
    ConsumerConfig,
    DeliverPolicy,
    KeyValueConfig,
    StorageType,
    StreamConfig,
)
from nats.js.errors import BadRequestError, NotFoundError
from nats.js.kv import KeyValue
from nats.js.object_store import ObjectStore

from server.cluster.entries import LogEntry
from server.config import ClusterSettings
from server.errors import Unavailable

__all__ = ["JetStreamLog"]

log = logging.getLogger("pulsewire.cluster")
PUBLISH_TIMEOUT_S = 5.0
DUPLICATE_WINDOW_S = 600  # a client's retry of a batch within this is stored once
SENT_KEEP_S = 30 * 86_400


@dataclass
class JetStreamLog:
    settings: ClusterSettings
    nc: Client
    js: JetStreamContext
    leases: KeyValue
    sent: KeyValue
    stats: KeyValue
    snapshots: ObjectStore
    outages: _Outages
    _made: int = 0  # consumers made by this process

    @classmethod
    async def connect(cls, settings: ClusterSettings) -> JetStreamLog:
        outages = _Outages()
        nc = await nats.connect(settings.nats_url, name=f"pulsewire-{settings.node}",
                                max_reconnect_attempts=-1, reconnect_time_wait=0.25,
                                connect_timeout=5, allow_reconnect=True,
                                error_cb=_quiet, disconnected_cb=outages.disconnected,
                                reconnected_cb=_reconnected)
        js = nc.jetstream(timeout=PUBLISH_TIMEOUT_S)
        name = settings.stream
        await _ensure_stream(js, StreamConfig(
            name=name, subjects=[f"{name}.shard.*"], storage=StorageType.FILE,
            num_replicas=settings.replicas, duplicate_window=DUPLICATE_WINDOW_S,
            max_age=settings.log_keep_s))
        leases = await js.create_key_value(KeyValueConfig(
            bucket=f"{name}-leases", ttl=settings.lease_ttl_s, history=1,
            replicas=settings.replicas))
        sent = await js.create_key_value(KeyValueConfig(
            bucket=f"{name}-sent", ttl=SENT_KEEP_S, history=1, replicas=settings.replicas))
        stats = await js.create_key_value(KeyValueConfig(
            bucket=f"{name}-stats", history=1, replicas=settings.replicas))
        snapshots = await js.create_object_store(f"{name}-snapshots")
        return cls(settings, nc, js, leases, sent, stats, snapshots, outages)

    async def close(self) -> None:
        self.outages.closing = True
        await self.nc.drain()

    def subject(self, shard: int) -> str:
        return f"{self.settings.stream}.shard.{shard}"

    async def publish(self, shard: int, entry: LogEntry, hop: str) -> bool:
        """Store `entry` on `shard`'s subject; True if JetStream already had it (a retry).
        Returns only once JetStream acknowledged it: from then on it is durable."""
        msg_id = entry.msg_id(hop)
        try:
            ack = await self.js.publish(self.subject(shard), entry.encode(),
                                        timeout=PUBLISH_TIMEOUT_S,
                                        headers={"Nats-Msg-Id": msg_id} if msg_id else None)
        except (TimeoutError, NatsError) as err:
            raise Unavailable(f"the event log is out of reach ({type(err).__name__});"
                              " retry the batch") from None
        return bool(ack.duplicate)

    async def consumer(self, shard: int, after: int) -> JetStreamContext.PullSubscription:
        """Shard `shard`'s durable consumer, made anew to deliver from sequence `after` + 1:
        the shard file's own position is the truth of what was applied."""
        # One consumer per holding: a holder that lost its lease and has not noticed yet pulls
        # from its own (deleted) consumer, never from its successor's.
        self._made += 1
        durable = f"shard-{shard}-{self.settings.node}-{self._made}"
        for info in await self.js.consumers_info(self.settings.stream):
            if (info.name or "").startswith(f"shard-{shard}-"):
                with contextlib.suppress(NotFoundError):
                    await self.js.delete_consumer(self.settings.stream, info.name or "")
        start: dict[str, Any] = ({"deliver_policy": DeliverPolicy.BY_START_SEQUENCE,
                                  "opt_start_seq": after + 1} if after
                                 else {"deliver_policy": DeliverPolicy.ALL})
        config = ConsumerConfig(durable_name=durable, ack_policy=AckPolicy.ALL,
                                filter_subject=self.subject(shard), ack_wait=60,
                                max_ack_pending=-1, **start)
        return await self.js.pull_subscribe(self.subject(shard), durable=durable,
                                            stream=self.settings.stream, config=config)


async def _ensure_stream(js: JetStreamContext, config: StreamConfig) -> None:
    try:
        await js.add_stream(config)
    except BadRequestError:  # exists with other settings (say, more replicas): keep it
        await js.stream_info(config.name or "")


async def _quiet(err: Exception) -> None:
    log.debug("nats: %s", err)


class _Outages:
    """Logs the connection's losses, but not the one a close makes on purpose."""

    closing = False

    async def disconnected(self) -> None:
        if not self.closing:
            log.warning("nats: disconnected; reconnecting")


async def _reconnected() -> None:
    log.warning("nats: reconnected")
