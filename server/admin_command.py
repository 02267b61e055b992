"""`pulsewire admin ...`: the Admin service from the command line, against a running server.

The operator token comes from --token or PULSEWIRE_SERVER__OPERATOR_TOKEN (the same variable
the server reads), so it need not appear in shell history.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from typing import Any

import grpc
from google.protobuf import json_format

from collector.gen.pulsewire.v1 import admin_pb2
from server.measure.table import stats_table
from server.rpc.gen.pulsewire.v1 import admin_pb2_grpc
from server.stats_wire import from_message

__all__ = ["add_admin_arguments", "run_admin_command"]


def add_admin_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--grpc", default="127.0.0.1:50051", help="the server's gRPC address")
    parser.add_argument("--token", default=None, help="operator token (default: from env)")
    actions = parser.add_subparsers(dest="action", required=True)
    actions.add_parser("reload", help="reload sequences and templates (all or nothing)")
    stats = actions.add_parser("stats", help="per sequence: counters, conversion rates, uplift "
                               "against the holdout, split arms, steps")
    stats.add_argument("--format", choices=("table", "json"), default="table",
                       help="table for people (default), json for programs: numbers as numbers")
    for name, what in (("user", "show a user"), ("erase", "erase a user everywhere")):
        actions.add_parser(name, help=what).add_argument(
            "who", help="user id, email, device id or routing key")
    for name, what in (("suppress", "stop all email to an address"),
                       ("unsuppress", "allow email to an address again")):
        actions.add_parser(name, help=what).add_argument("email")


def run_admin_command(args: argparse.Namespace) -> int:
    token = args.token or os.environ.get("PULSEWIRE_SERVER__OPERATOR_TOKEN", "")
    try:
        reply = asyncio.run(_call(args, token))
    except grpc.aio.AioRpcError as err:
        print(f"admin {args.action}: {err.code().name}: {err.details()}", file=sys.stderr)
        return 1
    if args.action == "stats":
        report = from_message(reply)
        print(json.dumps(report, indent=2) if args.format == "json" else stats_table(report),
              end="\n" if args.format == "json" else "")
        return 0
    print(json_format.MessageToJson(reply, always_print_fields_with_no_presence=True,
                                    preserving_proto_field_name=True))
    return 0


async def _call(args: argparse.Namespace, token: str) -> Any:
    metadata = (("authorization", f"Bearer {token}"),)
    async with grpc.aio.insecure_channel(args.grpc) as channel:
        stub = admin_pb2_grpc.AdminStub(channel)  # type: ignore[no-untyped-call]
        action = args.action
        if action == "reload":
            return await stub.ReloadSequences(admin_pb2.ReloadSequencesRequest(),
                                              metadata=metadata)
        if action == "stats":
            return await stub.Stats(admin_pb2.StatsRequest(), metadata=metadata)
        if action == "user":
            return await stub.GetUser(admin_pb2.GetUserRequest(user=args.who), metadata=metadata)
        if action == "erase":
            return await stub.EraseUser(admin_pb2.EraseUserRequest(user=args.who),
                                        metadata=metadata)
        return await stub.Suppress(admin_pb2.SuppressRequest(
            email=args.email, suppressed=action == "suppress"), metadata=metadata)
