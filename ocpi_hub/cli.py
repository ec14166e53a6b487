"""The `ocpi-hub` command: serve | migrate | sync."""

from __future__ import annotations

import argparse
import logging
import os
import sys

from ocpi_hub.settings import SettingsError, load_settings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="ocpi-hub", description="The OCPI 2.2.1 / 2.2 service of a CPO.")
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="apply migrations, then serve /ocpi and /api/v0")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    commands.add_parser("migrate", help="bring the database to the newest schema")
    sync = commands.add_parser("sync", help="apply migrations, then run one location sync")
    sync.add_argument("--source", help="file, directory or http(s) URL of records (default: OCPI_HUB_SYNC_SOURCE)")
    args = parser.parse_args(argv)

    try:
        settings = load_settings(os.environ)
    except SettingsError as exc:
        print(f"ocpi-hub: {exc}", file=sys.stderr)  # noqa: T201 - a CLI error goes to stderr
        return 2
    logging.basicConfig(level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("alembic").setLevel(logging.WARNING)

    from ocpi_hub.db.migrate import upgrade

    if args.command == "sync":
        source: str | None = args.source or settings.sync_source
        if source is None:
            print("ocpi-hub sync: give --source or set OCPI_HUB_SYNC_SOURCE", file=sys.stderr)  # noqa: T201
            return 2
        from ocpi_hub.sync.command import sync_once

        upgrade(settings.database_url)
        return sync_once(settings, source)

    upgrade(settings.database_url)
    if args.command == "migrate":
        return 0

    import uvicorn

    from ocpi_hub.app import create_app

    uvicorn.run(create_app(settings), host=args.host, port=args.port, log_level=settings.log_level.lower())
    return 0


if __name__ == "__main__":
    sys.exit(main())
