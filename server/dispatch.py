"""The dispatcher: outbox rows -> rendered MIME -> SMTP -> marked sent, retried, or dead.

A shard writes an outbox row in the same transaction as the decision to send (transactional
outbox), then pokes the dispatcher. Workers take due rows, check the address is not
suppressed, render the template in the sandbox, build the message (deterministic Message-ID
from the row's message key, List-Unsubscribe headers, DKIM when configured) and send it on a
kept-open SMTP connection. The result goes back through the shard's writer:
  delivered -> status sent;
  transient (4xx, connection refused, timeout) -> attempts + 1 and the next try after an
    exponential backoff, until max_attempts, then dead;
  permanent (5xx) -> dead; when the recipient itself was refused (a hard bounce), also an
    email_bounce event for the user, so the engine stops mailing them;
  unrenderable or unbuildable (a missing template, a template error, an address that is not
    a mailbox, a header that cannot be made valid; any exception there) -> dead at once, with
    the error's type and message: the same row would fail the same way again.
No failure leaves a row due at once, so no row is tried in a hot loop and none holds up the
rows behind it: a fault outside the message (a shard read, a claim, the sender) is a counted
retry with backoff; when even that cannot be written, the row rests in memory for a while
(FAULT_HOLD_S). A row that SMTP accepted and whose "sent" could not be written is marked, never
sent again, when it next comes up.
The one window where a crash can duplicate an email is after SMTP accepted the message and
before the row is marked sent: on restart it is sent again with the same Message-ID, which
receiving systems use to drop duplicates. Nothing is ever lost: a row stays queued until marked.

Before SMTP a send is claimed through the mode's `SendClaims` (server/modes.py): in one
process always granted; in the distributed mode cluster-wide, so a node that takes a shard over
never sends what the shard's last holder sent. A bounce goes to the user through the mode's
`apply_events`, like every other change to a user.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from email.utils import parseaddr
from typing import Any

from server.clock import Clock
from server.config import Settings
from server.engine import Event
from server.errors import PulsewireError, ShardClosed, Unavailable
from server.mail.links import LinkBuilder
from server.mail.message import DkimSigner, build_message, envelope_address
from server.mail.render import Templates, send_context
from server.mail.smtp import Delivery, DeliveryStatus, SmtpSender
from server.mail.tokens import LinkSigner
from server.metrics import Metrics
from server.modes import ApplyEvents, SendClaims
from server.storage.shard import OutboxRow, Shard, Shards

__all__ = ["Dispatcher"]

log = logging.getLogger("pulsewire.dispatch")
WORKERS = 4
BATCH = 64
CLAIMS_RETRY_MS = 1_000
FAULT_HOLD_S = 5.0  # a row whose outcome could not be written is not taken again before this
MAX_REASON = 500  # characters of an error kept in the outbox row


class Dispatcher:
    def __init__(self, settings: Settings, shards: Shards, templates: Callable[[], Templates],
                 signer: LinkSigner, clock: Clock, metrics: Metrics, claims: SendClaims,
                 apply_events: ApplyEvents, dkim: DkimSigner | None = None) -> None:
        self._settings = settings
        self._shards = shards
        self._templates = templates
        self._signer = signer
        self._clock = clock
        self._metrics = metrics
        self._dkim = dkim
        self._claims = claims
        self._apply_events = apply_events
        smtp = settings.smtp
        self._senders = [SmtpSender(smtp.host, smtp.port, username=smtp.username,
                                    password=smtp.password, starttls=smtp.starttls,
                                    timeout_s=smtp.timeout_s) for _ in range(WORKERS)]
        self._envelope_from = parseaddr(smtp.sender)[1]
        self._wake = asyncio.Event()
        self._queue: asyncio.Queue[OutboxRow] = asyncio.Queue()
        self._in_flight: set[tuple[int, int]] = set()
        self._finished: set[tuple[int, int]] = set()  # since the current scan began
        self._delivered: set[tuple[int, int]] = set()  # accepted by SMTP, "sent" not yet written
        self._tasks: list[asyncio.Task[None]] = []

    def poke(self, _shard: int = -1) -> None:
        self._wake.set()

    async def start(self) -> None:
        self._tasks = [asyncio.create_task(self._scan(), name="dispatch-scan")]
        self._tasks += [asyncio.create_task(self._work(sender), name=f"dispatch-{i}")
                        for i, sender in enumerate(self._senders)]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for sender in self._senders:
            await sender.close()

    # ---- finding due rows -------------------------------------------------------------------

    async def _scan(self) -> None:
        while True:
            try:
                await self._scan_once()
            except Exception:  # the scan must outlive any one failure, or nothing is sent
                log.exception("dispatch: scanning the outboxes failed; again in a second")
                await asyncio.sleep(1.0)

    async def _scan_once(self) -> None:
        self._wake.clear()
        self._finished.clear()  # rows finished from here on may still show in this scan
        now = self._clock.now_ms()
        found = 0
        for shard in self._shards:
            try:
                rows = await shard.due_outbox(now, BATCH)
            except ShardClosed:  # handed to another node mid-scan: its outbox goes with it
                continue
            for row in rows:
                key = (row.shard, row.id)
                if key not in self._in_flight and key not in self._finished:
                    self._in_flight.add((row.shard, row.id))
                    self._queue.put_nowait(row)
                    found += 1
        if found:
            return
        if self._in_flight:  # a worker finishing wakes the scan (its row may be retried)
            await self._wake.wait()
            return
        await self._sleep_until_next(now)

    async def _sleep_until_next(self, now: int) -> None:
        dues = []
        for shard in self._shards:
            with contextlib.suppress(ShardClosed):
                if (due := await shard.next_outbox_due()) is not None:
                    dues.append(due)
        waits: list[asyncio.Future[Any]] = [asyncio.ensure_future(self._wake.wait())]
        if dues:
            waits.append(asyncio.ensure_future(self._clock.sleep_until(max(min(dues), now + 1))))
        try:
            await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in waits:
                waiter.cancel()

    # ---- sending ------------------------------------------------------------------------------

    async def _work(self, sender: SmtpSender) -> None:
        while True:
            row = await self._queue.get()
            hold_s = 0.0
            try:
                await self._deliver(sender, row)
            except ShardClosed:
                log.info("outbox row %d: its shard went to another node", row.id)
            except Exception as err:  # not the message's fault: a shard, a claim, the sender
                log.exception("dispatch of outbox row %d failed", row.id)
                hold_s = await self._after_fault(row, err)
            finally:
                self._queue.task_done()
                self._release((row.shard, row.id), hold_s)

    def _release(self, key: tuple[int, int], after_s: float) -> None:
        """The row may be taken again (by the next scan that finds it due), after `after_s`."""
        if after_s > 0:
            asyncio.get_running_loop().call_later(after_s, self._release, key, 0.0)
            return
        self._in_flight.discard(key)
        self._finished.add(key)
        self._wake.set()

    async def _after_fault(self, row: OutboxRow, err: Exception) -> float:
        """A counted retry with backoff for a fault outside the message. Returns how long the
        row rests in memory instead: when the retry cannot be written, or the row was sent
        (it must not go again, only be marked)."""
        if (row.shard, row.id) in self._delivered:
            return FAULT_HOLD_S
        try:
            await self._retry(self._shards[row.shard], row, _reason("dispatch", err))
        except ShardClosed:
            return 0.0
        except Exception:
            log.exception("outbox row %d: cannot record its retry either", row.id)
            return FAULT_HOLD_S
        return 0.0

    async def _deliver(self, sender: SmtpSender, row: OutboxRow) -> None:
        shard = self._shards[row.shard]
        if (row.shard, row.id) in self._delivered:  # SMTP took it: mark it, never send again
            await self._mark_sent(shard, row)
            return
        if await shard.is_suppressed(row.email):
            await shard.finish_outbox(row, "suppressed", "address is suppressed")
            return
        user_id, traits = await shard.profile(row.user_key)
        try:
            recipient, message = self._message(row, user_id, traits)
        except Exception as err:  # the row's own content: it would fail the same way again
            log.error("outbox row %d cannot be rendered: %s", row.id, _reason("render", err))
            await shard.finish_outbox(row, "dead", _reason("render", err))
            return
        if not await self._claimed(shard, row):
            return
        try:
            delivery = await sender.send(self._envelope_from, recipient, message)
        except Exception as err:  # the sender reports outcomes; this is a fault inside it
            log.exception("outbox row %d: the SMTP sender failed", row.id)
            delivery = Delivery(DeliveryStatus.TRANSIENT, 0, _reason("send", err), "mail")
        if delivery.status is DeliveryStatus.DELIVERED:
            self._delivered.add((row.shard, row.id))
            self._metrics.emails_sent.inc()
            await self._mark_sent(shard, row)
        elif delivery.status is DeliveryStatus.PERMANENT:
            self._metrics.emails_failed.labels("permanent").inc()
            await shard.finish_outbox(row, "dead", _delivery_reason(delivery))
            if delivery.bounced:  # the address itself is refused, not this message's content
                bounce = Event("email_bounce", self._clock.now_ms(), {"message": row.message_key})
                await self._apply_events(row.user_key, [bounce], "", 0)
        else:
            self._metrics.emails_failed.labels("transient").inc()
            await self._claims.give_back(row.message_key)
            await self._retry(shard, row, _delivery_reason(delivery))

    async def _mark_sent(self, shard: Shard, row: OutboxRow) -> None:
        await self._claims.sent(row.message_key)
        await shard.finish_outbox(row, "sent", None)
        self._delivered.discard((row.shard, row.id))

    async def _claimed(self, shard: Shard, row: OutboxRow) -> bool:
        """Whether this process may send `row` now."""
        try:
            if await self._claims.claim(row.message_key):
                return True
        except Unavailable as err:  # not an attempt: try again shortly, uncounted
            await shard.defer_outbox(row, self._clock.now_ms() + CLAIMS_RETRY_MS, str(err))
            return False
        log.info("outbox row %d: %s was sent by another node", row.id, row.message_key)
        await shard.finish_outbox(row, "sent", "sent by the shard's previous holder")
        return False

    def _message(self, row: OutboxRow, user_id: str,
                 traits: dict[str, str]) -> tuple[str, bytes]:
        """The envelope recipient and the message bytes of `row`."""
        recipient = envelope_address(row.email)
        links = LinkBuilder(self._settings.server.public_url, self._signer, row.user_key,
                            row.message_key, row.email)
        context = send_context(row.vars, email=row.email, user_id=user_id, traits=traits)
        rendered = self._templates().render(row.template, context, links)
        return recipient, build_message(
            rendered, sender=self._settings.smtp.sender, to=row.email,
            message_key=row.message_key, unsubscribe_url=links.unsubscribe(),
            now_ms=self._clock.now_ms(), dkim=self._dkim)

    async def _retry(self, shard: Shard, row: OutboxRow, error: str) -> None:
        policy = self._settings.dispatch
        attempts = row.attempts + 1
        if attempts >= policy.max_attempts:
            await shard.finish_outbox(row, "dead", error)
            return
        backoff_s = min(policy.backoff_max_s, policy.backoff_first_s * 2 ** (attempts - 1))
        await shard.retry_outbox(row, attempts, self._clock.now_ms() + int(backoff_s * 1000),
                                 error)


def _reason(stage: str, err: BaseException) -> str:
    """What goes in the row: our own errors say it plainly, others with their type."""
    text = str(err) if isinstance(err, PulsewireError) else f"{type(err).__name__}: {err}"
    return f"{stage}: {text}"[:MAX_REASON]


def _delivery_reason(delivery: Delivery) -> str:
    text = f"{delivery.code} {delivery.message}" if delivery.code else delivery.message
    return text[:MAX_REASON]
