"""The `pulsewire` command line: one subcommand per job, each a thin call into a module."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from server.errors import InvalidSequence

__all__ = ["main"]


def _schema(_args: argparse.Namespace) -> int:
    from server.sequences.schema import document_schema

    print(json.dumps(document_schema(), indent=2, sort_keys=True))
    return 0


def _validate(args: argparse.Namespace) -> int:
    from server.sequences.loading import load_paths

    try:
        sequence_set, origin = load_paths(Path(p) for p in args.paths)
    except InvalidSequence as err:
        for problem in err.problems:
            print(problem, file=sys.stderr)
        print(f"invalid: {len(err.problems)} problem(s)", file=sys.stderr)
        return 1
    for ident, path in sorted(origin.items()):
        print(f"ok  {path}  ({ident})")
    print(f"valid: {len(sequence_set.sequences)} sequence(s), "
          f"{len(sequence_set.segments)} segment(s)")
    return 0


def _backtest(args: argparse.Namespace) -> int:
    from server.backtest.command import run_backtest_command

    return run_backtest_command(args)


def _serve(args: argparse.Namespace) -> int:
    import asyncio
    import gc
    import os
    import signal

    from server.app import running
    from server.config import ConfigError, load_settings
    from server.logs import configure_logging

    configure_logging(args.log_level)
    try:
        settings = load_settings(args.config, os.environ)
    except ConfigError as err:
        print(f"serve: {err}", file=sys.stderr)
        return 2

    async def serve() -> None:
        async with running(settings) as app:
            # What start-up made lives as long as the process: keep it out of the collector's
            # full passes, which otherwise paused the loop ~100 ms every few seconds under load.
            gc.collect()
            gc.freeze()
            gc.set_threshold(20_000, 20, 20)
            loop = asyncio.get_running_loop()
            for signum in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(signum, app.stopped.set)
            print(f"pulsewire: gRPC on {settings.server.grpc_listen.rsplit(':', 1)[0]}:"
                  f"{app.grpc_port}\npulsewire: HTTP on "
                  f"{settings.server.http_listen.rsplit(':', 1)[0]}:{app.http_port}", flush=True)
            if settings.console.enabled:
                port = app.console_port or app.http_port
                listen = settings.console.listen or settings.server.http_listen
                print(f"pulsewire: console on http://{listen.rsplit(':', 1)[0]}:{port}/console/",
                      flush=True)
            await app.stopped.wait()

    try:
        import uvloop

        uvloop.run(serve())
    except InvalidSequence as err:
        for problem in err.problems:
            print(problem, file=sys.stderr)
        return 1
    except ConfigError as err:  # found while starting: a file a setting names
        print(f"serve: {err}", file=sys.stderr)
        return 2
    return 0


def _catalog_import(args: argparse.Namespace) -> int:
    import os

    from server.config import ConfigError, load_settings
    from server.mail.catalog import Catalog, CatalogError

    try:
        settings = load_settings(args.config, os.environ)
        catalog = Catalog.open(Path(settings.server.data_dir) / "catalog.sqlite")
        count = catalog.import_csv(args.file)
    except (ConfigError, CatalogError) as err:
        print(f"catalog import: {err}", file=sys.stderr)
        return 1
    print(f"imported {count} products into {settings.server.data_dir}/catalog.sqlite")
    return 0


def _console_password(_args: argparse.Namespace) -> int:
    import getpass

    from server.web.console.auth import hash_password

    if sys.stdin.isatty():
        password = getpass.getpass("Password: ")
        if getpass.getpass("Again: ") != password:
            print("console-password: the two differ", file=sys.stderr)
            return 1
    else:
        password = sys.stdin.readline().rstrip("\n")
    if len(password) < 12:
        print("console-password: use at least 12 characters", file=sys.stderr)
        return 1
    print(hash_password(password))
    return 0


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """Every subcommand; given the `command` about to run, the other commands' modules are not
    imported (the mail catcher's and the admin client's cost a backtest half a second)."""
    parser = argparse.ArgumentParser(prog="pulsewire", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    schema = sub.add_parser("schema", help="print the JSON Schema of sequence and segment files")
    schema.set_defaults(run=_schema)

    validate = sub.add_parser("validate", help="check sequence/segment files or directories")
    validate.add_argument("paths", nargs="+", metavar="PATH")
    validate.set_defaults(run=_validate)

    serve = sub.add_parser("serve", help="run the server")
    serve.add_argument("--config", type=Path, default=None, help="TOML settings file")
    serve.add_argument("--log-level", default="info")
    serve.set_defaults(run=_serve)

    password = sub.add_parser("console-password", help="hash a console account's password for "
                              "[console.accounts] (reads it from the terminal or stdin)")
    password.set_defaults(run=_console_password)

    catalog = sub.add_parser("catalog", help="the product catalog templates read")
    catalog_actions = catalog.add_subparsers(dest="catalog_action", required=True)
    catalog_import = catalog_actions.add_parser("import", help="import products from CSV")
    catalog_import.add_argument("--config", type=Path, default=None)
    catalog_import.add_argument("file", type=Path)
    catalog_import.set_defaults(run=_catalog_import)

    mailcatcher = sub.add_parser("mailcatcher", help="a local SMTP server with a web page")
    if command in (None, "mailcatcher"):
        from server.mail.mailcatcher import add_mailcatcher_arguments, run_mailcatcher_command

        add_mailcatcher_arguments(mailcatcher)
        mailcatcher.set_defaults(run=run_mailcatcher_command)

    admin = sub.add_parser("admin", help="operator calls against a running server")
    if command in (None, "admin"):
        from server.admin_command import add_admin_arguments, run_admin_command

        add_admin_arguments(admin)
        admin.set_defaults(run=run_admin_command)

    from server.backtest.command import add_backtest_arguments

    backtest = sub.add_parser("backtest", help="replay an event history through the sequences")
    add_backtest_arguments(backtest)
    backtest.set_defaults(run=_backtest)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    given = list(sys.argv[1:] if argv is None else argv)
    command = next((a for a in given if not a.startswith("-")), None)
    args = build_parser(command).parse_args(given)
    code: int = args.run(args)
    return code


if __name__ == "__main__":
    raise SystemExit(main())
