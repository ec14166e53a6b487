"""The `ocpi-hub` command: serve | migrate | sync | rotate-secret-key (docs/operations.md §4, §9)."""

from __future__ import annotations

import argparse
import gc
import ipaddress
import logging
import os
import sys
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from urllib.parse import urlsplit

from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError

from ocpi_hub import logs
from ocpi_hub.settings import Settings, SettingsError, load_settings

log = logging.getLogger("ocpi_hub")

KEEP_ALIVE_SECONDS = 75  # above the 60 s idle timeout of common proxies and load balancers (nginx, AWS ALB)

# The variables each command reads (README "Settings"), listed by its --help.
_COMMON = ("OCPI_HUB_DATABASE_URL", "OCPI_HUB_LOG_LEVEL", "OCPI_HUB_LOG_FORMAT")
_PARTIES = ("OCPI_HUB_COUNTRY_CODE", "OCPI_HUB_PARTY_ID", "OCPI_HUB_BUSINESS_NAME", "OCPI_HUB_EXTRA_PARTIES")
_SYNC = ("OCPI_HUB_SYNC_SOURCE", "OCPI_HUB_SYNC_LENIENT", "OCPI_HUB_SYNC_MAX_REMOVE_SHARE", "OCPI_HUB_HTTP_TIMEOUT")
_SERVE = (
    "OCPI_HUB_PUBLIC_URL",
    "OCPI_HUB_ADMIN_TOKEN",
    "OCPI_HUB_ALLOW_PRIVATE_PARTNER_URLS",
    "OCPI_HUB_PAGE_LIMIT",
    "OCPI_HUB_PUSH_WORKER",
    "OCPI_HUB_PUSH_MAX_ATTEMPTS",
    "OCPI_HUB_PUSH_MAX_AGE",
    "OCPI_HUB_PUSH_LEASE",
    "OCPI_HUB_SENT_RETENTION",
    "OCPI_HUB_TRAFFIC_RETENTION",
    "OCPI_HUB_TRAFFIC_BODIES",
    "OCPI_HUB_AUTHORIZATION_TIMEOUT",
    "OCPI_HUB_COMMAND_TIMEOUT",
    "OCPI_HUB_CURRENCY",
    "OCPI_HUB_SYNC_INTERVAL",
)
# Secrets at rest (docs/operations.md §9); never on the command line, which every user of the machine can read.
_KEYS = ("OCPI_HUB_SECRET_KEY", "OCPI_HUB_PREVIOUS_SECRET_KEY")
ENVIRONMENT = {
    "serve": _COMMON + _PARTIES + _SERVE + _SYNC + _KEYS,
    "migrate": _COMMON,
    "sync": _COMMON + _PARTIES + _SYNC,
    "rotate-secret-key": (*_COMMON, *_KEYS, "OCPI_HUB_NEW_SECRET_KEY"),
}


def hub_version() -> str:
    try:
        return version("ocpi-hub")
    except PackageNotFoundError:  # run from a source tree that was never installed
        return "unknown"


def _epilog(command: str) -> str:
    defaults = Settings()
    party = defaults.default_party
    special = {
        "OCPI_HUB_COUNTRY_CODE": party.country_code,
        "OCPI_HUB_PARTY_ID": party.party_id,
        "OCPI_HUB_BUSINESS_NAME": party.business_name,
    }

    def default(variable: str) -> str:
        name = variable.removeprefix("OCPI_HUB_").lower()
        value = special.get(variable, getattr(defaults, name, None))
        return "unset" if value is None else str(value).lower() if isinstance(value, bool) else str(value)

    lines = [f"{variable} (default: {default(variable)})" for variable in ENVIRONMENT[command]]
    return "environment variables (see the README's Settings):\n  " + "\n  ".join(lines)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ocpi-hub", description="The OCPI 2.2.1 / 2.2 service of a CPO.")
    parser.add_argument("--version", action="version", version=f"ocpi-hub {hub_version()}")
    commands = parser.add_subparsers(dest="command", required=True)

    def command(name: str, help_: str) -> argparse.ArgumentParser:
        return commands.add_parser(
            name,
            help=help_,
            description=help_,
            epilog=_epilog(name),
            formatter_class=_Formatter,
        )

    serve = command("serve", "apply migrations, then serve /ocpi and /api/v0")
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on")
    serve.add_argument("--port", type=_port, default=8000, help="TCP port to listen on")
    command("migrate", "bring the database to the newest schema (creating a SQLite file if missing)")
    sync = command("sync", "apply migrations, then run one location sync")
    sync.add_argument("--source", help="file, directory or http(s) URL of records (default: OCPI_HUB_SYNC_SOURCE)")
    command(
        "rotate-secret-key",
        "apply migrations, then seal every stored partner token under OCPI_HUB_NEW_SECRET_KEY (or OCPI_HUB_SECRET_KEY) "
        "and key every bare token hash, in one transaction (keys from the environment only)",
    )
    return parser


class _Formatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """Defaults shown (where there is one), and the epilog's list of variables kept one per line."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        if action.default is None:
            return action.help
        return super()._get_help_string(action)


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)

    try:
        settings = load_settings(os.environ)
    except SettingsError as exc:
        return _refuse(str(exc))
    logs.configure(settings.log_level, settings.log_format)

    source: str | None = None
    if args.command == "sync":
        source = args.source or settings.sync_source
        if source is None:
            print("ocpi-hub sync: give --source or set OCPI_HUB_SYNC_SOURCE", file=sys.stderr)  # noqa: T201
            return 2
        missing = _sqlite_file(settings.database_url)
        if missing is not None and not missing.exists():
            # A sync into a database nobody serves reports success and changes nothing an eMSP sees.
            return _refuse(
                f"OCPI_HUB_DATABASE_URL: no database at {missing}; point OCPI_HUB_DATABASE_URL at the hub's "
                "database, or create this one with `ocpi-hub migrate`"
            )

    from ocpi_hub.db.migrate import upgrade

    if (file := _sqlite_file(settings.database_url)) is not None and not file.parent.is_dir():
        # Checked here rather than left to the driver: aiosqlite reports a failed open from its thread after our event
        # loop has closed, and prints a traceback of its own.
        return _refuse(f"OCPI_HUB_DATABASE_URL: cannot use the database (no folder {file.parent})")
    try:
        upgrade(settings.database_url)
    except (OperationalError, InterfaceError, OSError) as exc:
        # A wrong path, host or password is a configuration problem: the operator needs the cause, not a traceback.
        reason = " ".join(str(exc.orig if isinstance(exc, DBAPIError) else exc).split())  # drivers' DETAIL lines
        return _refuse(f"OCPI_HUB_DATABASE_URL: cannot use the database ({reason})")
    if args.command == "migrate":
        return 0
    if args.command == "rotate-secret-key":
        from ocpi_hub.stored_secrets import rotate_command

        return rotate_command(settings)
    if source is not None:
        from ocpi_hub.sync.command import sync_once

        return sync_once(settings, source, database=shown_database(settings.database_url))

    import uvicorn

    from ocpi_hub import stored_secrets
    from ocpi_hub.app import create_app
    from ocpi_hub.secret_key import SecretKeyError

    try:
        notes = stored_secrets.check(settings)
    except SecretKeyError as exc:  # a wrong key: one line now, rather than an error per push and per request
        return _refuse(str(exc))
    log.info("%s", start_line(settings))
    for note in notes:
        log.warning("secrets at rest: %s", note)
    if warning := public_url_warning(settings.public_url, args.host, args.port):
        log.warning("%s", warning)
    app = create_app(settings)
    freeze_start()
    uvicorn.run(
        app,
        host=args.host,
        port=args.port,
        log_level=settings.log_level.lower(),
        log_config=None,  # uvicorn's lines go through our handler (ocpi_hub.logs), with the request ids
        access_log=False,  # one DEBUG line per request instead (ocpi_hub.api.observe)
        # Idle connections kept longer than clients and proxies keep theirs (docs/ocpi.md §11): uvicorn's 5 s equals
        # httpx's default, and a request sent as the server closes the connection fails without an answer.
        timeout_keep_alive=KEEP_ALIVE_SECONDS,
    )
    return 0


def freeze_start() -> None:
    """What the start made (the imports, the time zone data, the app: most of the process's objects) lives as long
    as the process: taken out of the garbage collector's reach, so that its full collections, which the entries
    waiting for the traffic log set off every few seconds under a busy crawl, no longer walk it each time (half of the
    collector's time in bench/crawl_under_writes.py's setting)."""
    gc.collect()
    gc.freeze()


def shown_database(url: str) -> str:
    """The database URL without its password; a SQLite file as an absolute path."""
    parsed = make_url(url)
    if parsed.drivername.startswith("sqlite") and parsed.database and parsed.database != ":memory:":
        parsed = parsed.set(database=str(Path(parsed.database).resolve()))
    return parsed.render_as_string(hide_password=True)


def _sqlite_file(url: str) -> Path | None:
    """The file of a SQLite database URL, resolved; None for other databases and in-memory ones."""
    parsed = make_url(url)
    if not parsed.drivername.startswith("sqlite") or not parsed.database or parsed.database == ":memory:":
        return None
    return Path(parsed.database).resolve()


def start_line(settings: Settings) -> str:
    parties = ", ".join(f"{p.country_code}/{p.party_id}" for p in settings.parties)
    sync = f"sync of {settings.sync_source} every {settings.sync_interval:g} s" if settings.sync_source else "sync off"
    return (
        f"ocpi-hub {hub_version()} starting: database {shown_database(settings.database_url)}, "
        f"public URL {settings.public_url}, parties {parties}, push worker {'on' if settings.push_worker else 'off'}, "
        f"{sync}"
    )


def public_url_warning(public_url: str, host: str, port: int) -> str | None:
    """Partners reach us at the public URL: one naming this machine on another port than ours is most likely a
    mistake (a reverse proxy on the same machine would be the exception)."""
    parts = urlsplit(public_url)
    name = parts.hostname or ""
    try:
        loopback = name == "localhost" or ipaddress.ip_address(name).is_loopback
    except ValueError:
        loopback = False
    their_port = parts.port or (443 if parts.scheme == "https" else 80)
    if not loopback or their_port == port:
        return None
    return (
        f"OCPI_HUB_PUBLIC_URL {public_url} names this machine on port {their_port}, but the hub listens on "
        f"{host}:{port}: partners will not reach the URLs we hand out"
    )


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
