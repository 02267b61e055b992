"""The Admin service: operator calls against a running server. Every call needs the operator
token as "authorization: Bearer TOKEN" metadata; with no token configured, admin is closed."""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, TypeVar

import grpc

from collector.gen.pulsewire.v1 import admin_pb2
from server.engine import Event, decode_state
from server.errors import PulsewireError
from server.rpc.gen.pulsewire.v1 import admin_pb2_grpc
from server.rpc.status import Unauthenticated, status_of
from server.storage.router import shard_of
from server.storage.shard import Shard, Shards

__all__ = ["AdminActions", "AdminServicer"]

Request = TypeVar("Request")
Reply = TypeVar("Reply")
_USER_COLUMNS = "key, email, email_verified, user_id, timezone, state"


class AdminActions:
    """What the admin calls do, given the running app's pieces."""

    def __init__(self, shards: Shards, reload: Callable[[], list[str]],
                 now_ms: Callable[[], int],
                 signal_names: Callable[[], Mapping[str, str]] = dict,
                 broadcast: Callable[[str, str], Awaitable[None]] | None = None) -> None:
        """`broadcast(call, argument)`: the distributed mode's way to every shard (through the
        log); then suppress and erase return once it is durable, before it is applied."""
        self.shards = shards
        self.broadcast = broadcast
        self.reload = reload
        self.now_ms = now_ms
        self.signal_names = signal_names  # tracker id -> description, of the running set

    async def find_users(self, who: str) -> list[tuple[Shard, tuple[Any, ...]]]:
        """Users named by a routing key, a user id, an email or a device id."""
        if "@" in who:
            found = []
            for shard in self.shards:
                for row in await shard.read(f"SELECT {_USER_COLUMNS} FROM users"
                                            " WHERE lower(email) = ?", (who.lower(),)):
                    found.append((shard, row))
            return found
        keys = [who] if who[:2] in ("u:", "e:", "d:") else [f"u:{who}", f"d:{who}"]
        found = []
        for key in keys:
            shard = self.shards[shard_of(key, len(self.shards))]
            found += [(shard, row) for row in await shard.read(
                f"SELECT {_USER_COLUMNS} FROM users WHERE key = ?", (key,))]
        return found

    async def user_view(self, who: str) -> admin_pb2.UserView:
        found = await self.find_users(who)
        if not found:
            raise LookupError(f"no user {who!r}")
        shard, (key, email, verified, user_id, tz, state) = found[0]
        engine_state = decode_state(key, state)
        view = admin_pb2.UserView(user_id=user_id or "", email=email or "",
                                  email_verified=bool(verified), timezone=tz or "",
                                  suppressed=engine_state.block in ("unsubscribed", "bounced"))
        view.devices.extend(device for (device,) in await shard.read(
            "SELECT DISTINCT device FROM dedup WHERE user_key = ? AND device NOT LIKE 'm:%'"
            " ORDER BY device", (key,)))
        names = self.signal_names()
        for tracker, stamps in sorted(engine_state.signals.items()):
            view.aggregates.add(signal=names.get(tracker, f"signal {tracker} (no longer loaded)"),
                                at_ms=stamps)
        for inst in engine_state.instances:
            view.instances.add(sequence=inst.sequence, key=inst.key, step=inst.step,
                               due_ms=inst.due_ms or 0)
        for sequence, template, at_ms, status, reason in await shard.read(
                "SELECT sequence, template, at_ms, status, coalesce(reason, '') FROM send_log"
                " WHERE user_key = ? ORDER BY at_ms DESC LIMIT 50", (key,)):
            view.sends.add(sequence=sequence, template=template, at_ms=at_ms, status=status,
                           reason=reason)
        return view

    async def suppress(self, email: str, suppressed: bool) -> None:
        address, now = email.strip().lower(), self.now_ms()
        if self.broadcast is not None:
            await self.broadcast("suppress" if suppressed else "unsuppress", address)
            return
        for shard in self.shards:
            async def write(db: Any, shard: Shard = shard) -> None:
                if suppressed:
                    await db.execute("INSERT OR REPLACE INTO suppression VALUES (?, 'operator', ?)",
                                     (address, now))
                else:
                    await db.execute("DELETE FROM suppression WHERE email = ?", (address,))
            await shard.write(write)
        for shard, (key, _email, verified, *_rest) in await self.find_users(address):
            events = [Event("unsubscribe", now)] if suppressed else [
                Event("resubscribe", now), Event("identify", now, {"verified": bool(verified)})]
            await shard.ingest(key, events)

    async def erase(self, who: str) -> int:
        """Rows removed (0 in the distributed mode, where every shard's owner does it)."""
        if self.broadcast is not None:
            await self.broadcast("erase", who)
            return 0
        found = await self.find_users(who)
        keys = [row[0] for _, row in found] or [who]
        emails = [row[1] for _, row in found if row[1]] + ([who] if "@" in who else [])
        return sum([await shard.erase(keys, emails) for shard in self.shards])

    async def stats(self) -> admin_pb2.StatsResponse:
        totals: dict[tuple[str, int, str], int] = {}
        for shard in self.shards:
            for sequence, step, counter, n in await shard.read("SELECT * FROM stats"):
                totals[(sequence, step, counter)] = totals.get((sequence, step, counter), 0) + n
        response = admin_pb2.StatsResponse()
        for sequence in sorted({s for s, _, _ in totals}):
            entry = response.sequences.add(sequence=sequence,
                                           entered=totals.get((sequence, -1, "entered"), 0),
                                           exited=totals.get((sequence, -1, "exited"), 0))
            for step in sorted({st for s, st, _ in totals if s == sequence and st >= 0}):
                counts = {c: n for (s, st, c), n in totals.items() if s == sequence and st == step}
                row = entry.steps.add(step=step, sent=counts.get("sent", 0),
                                      opened=counts.get("opened", 0),
                                      clicked=counts.get("clicked", 0),
                                      converted=counts.get("converted", 0))
                for counter, n in counts.items():
                    if counter.startswith("suppressed:"):
                        row.suppressed[counter.split(":", 1)[1]] = n
        return response


class AdminServicer(admin_pb2_grpc.AdminServicer):
    def __init__(self, actions: AdminActions, operator_token: str) -> None:
        self._actions = actions
        self._token = operator_token

    async def _call(self, context: grpc.aio.ServicerContext[Any, Any],
                    work: Callable[[], Awaitable[Reply]]) -> Reply:
        try:
            self._check_token(context)
            return await work()
        except LookupError as err:
            await context.abort(grpc.StatusCode.NOT_FOUND, str(err.args[0]))
        except PulsewireError as err:
            await context.abort(status_of(err), str(err))
        raise AssertionError("unreachable")

    def _check_token(self, context: grpc.aio.ServicerContext[Any, Any]) -> None:
        metadata = dict(context.invocation_metadata() or ())
        given = str(metadata.get("authorization", ""))
        if not self._token or not hmac.compare_digest(given.encode(),
                                                      f"Bearer {self._token}".encode()):
            raise Unauthenticated("admin needs the operator token")

    async def ReloadSequences(self, request: admin_pb2.ReloadSequencesRequest,
                              context: grpc.aio.ServicerContext[Any, Any],
                              ) -> admin_pb2.ReloadSequencesResponse:
        async def work() -> admin_pb2.ReloadSequencesResponse:
            return admin_pb2.ReloadSequencesResponse(sequences=self._actions.reload())
        return await self._call(context, work)

    async def GetUser(self, request: admin_pb2.GetUserRequest,
                      context: grpc.aio.ServicerContext[Any, Any]) -> admin_pb2.UserView:
        return await self._call(context, lambda: self._actions.user_view(request.user))

    async def Suppress(self, request: admin_pb2.SuppressRequest,
                       context: grpc.aio.ServicerContext[Any, Any]) -> admin_pb2.SuppressResponse:
        async def work() -> admin_pb2.SuppressResponse:
            await self._actions.suppress(request.email, request.suppressed)
            return admin_pb2.SuppressResponse()
        return await self._call(context, work)

    async def EraseUser(self, request: admin_pb2.EraseUserRequest,
                        context: grpc.aio.ServicerContext[Any, Any],
                        ) -> admin_pb2.EraseUserResponse:
        async def work() -> admin_pb2.EraseUserResponse:
            return admin_pb2.EraseUserResponse(rows_removed=await self._actions.erase(request.user))
        return await self._call(context, work)

    async def Stats(self, request: admin_pb2.StatsRequest,
                    context: grpc.aio.ServicerContext[Any, Any]) -> admin_pb2.StatsResponse:
        return await self._call(context, self._actions.stats)

