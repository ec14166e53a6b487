"""The `ocpi-hub` command: serve | migrate | sync."""

from __future__ import annotations

import argparse
import logging
import os
import sys

from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError

from ocpi_hub.settings import SettingsError, load_settings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="ocpi-hub", description="The OCPI 2.2.1 / 2.2 service of a CPO.")
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="apply migrations, then serve /ocpi and /api/v0")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=_port, default=8000)
    commands.add_parser("migrate", help="bring the database to the newest schema")
    sync = commands.add_parser("sync", help="apply migrations, then run one location sync")
    sync.add_argument("--source", help="file, directory or http(s) URL of records (default: OCPI_HUB_SYNC_SOURCE)")
    args = parser.parse_args(argv)

    try:
        settings = load_settings(os.environ)
    except SettingsError as exc:
        return _refuse(str(exc))
    logging.basicConfig(level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("alembic").setLevel(logging.WARNING)

    source: str | None = None
    if args.command == "sync":
        source = args.source or settings.sync_source
        if source is None:
            print("ocpi-hub sync: give --source or set OCPI_HUB_SYNC_SOURCE", file=sys.stderr)  # noqa: T201
            return 2

    from ocpi_hub.db.migrate import upgrade

    try:
        upgrade(settings.database_url)
    except (OperationalError, InterfaceError, OSError) as exc:
        # A wrong path, host or password is a configuration problem: the operator needs the cause, not a traceback.
        reason = " ".join(str(exc.orig if isinstance(exc, DBAPIError) else exc).split())  # drivers' DETAIL lines
        return _refuse(f"OCPI_HUB_DATABASE_URL: cannot use the database ({reason})")
    if args.command == "migrate":
        return 0
    if source is not None:
        from ocpi_hub.sync.command import sync_once

        return sync_once(settings, source)

    import uvicorn

    from ocpi_hub.app import create_app

    uvicorn.run(create_app(settings), host=args.host, port=args.port, log_level=settings.log_level.lower())
    return 0


def _port(raw: str) -> int:
    if not raw.isdigit() or not 0 < int(raw) < 65536:
        raise argparse.ArgumentTypeError(f"{raw!r} is not a TCP port (1 to 65535)")
    return int(raw)


def _refuse(message: str) -> int:
    """Report bad configuration in one line; exit status 2, as for a command-line usage error."""
    print(f"ocpi-hub: {message}", file=sys.stderr)  # noqa: T201 - a CLI error goes to stderr
    return 2


if __name__ == "__main__":
    sys.exit(main())
