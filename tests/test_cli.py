"""The command reports bad configuration in one line on stderr and exits with status 2, never a traceback; it says
what it runs, and refuses to create an empty database by accident (docs/operations.md §4)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from ocpi_hub import cli
from ocpi_hub.settings import Settings


def run(*args: str, environ: dict[str, str]) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("OCPI_HUB_")}
    return subprocess.run(
        [sys.executable, "-m", "ocpi_hub.cli", *args],
        env=clean | environ,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        ({"OCPI_HUB_PAGE_LIMIT": "0.5"}, "ocpi-hub: OCPI_HUB_PAGE_LIMIT: '0.5' must be a whole number >= 1"),
        ({"OCPI_HUB_DATABASE_URL": "sqlite+aiosqlite:////no/such/directory/hub.db"}, "ocpi-hub: OCPI_HUB_DATABASE_URL"),
    ],
)
def test_the_command_reports_bad_configuration_in_one_line(environ: dict[str, str], message: str) -> None:
    done = run("migrate", environ=environ)
    assert (done.returncode, done.stdout) == (2, "")
    assert done.stderr.splitlines() == [done.stderr.strip()]
    assert done.stderr.startswith(message)


def test_a_port_out_of_range_is_a_usage_error() -> None:
    done = run("serve", "--port", "99999", environ={})
    assert done.returncode == 2
    assert "--port: '99999' is not a TCP port" in done.stderr


def test_version_and_help_list_the_environment_variables() -> None:
    done = run("--version", environ={})
    assert (done.returncode, done.stdout.strip()) == (0, f"ocpi-hub {cli.hub_version()}")
    helped = run("serve", "--help", environ={})
    assert "--port PORT  TCP port to listen on (default: 8000)" in helped.stdout
    assert "OCPI_HUB_DATABASE_URL (default: sqlite+aiosqlite:///ocpi-hub.db)" in helped.stdout
    assert "OCPI_HUB_LOG_FORMAT (default: text)" in helped.stdout
    assert "OCPI_HUB_PUSH_WORKER (default: true)" in helped.stdout
    assert "OCPI_HUB_SYNC_SOURCE (default: unset)" in run("sync", "--help", environ={}).stdout


def test_sync_refuses_to_create_a_new_empty_database(tmp_path: Path) -> None:
    source = tmp_path / "export.json"
    source.write_text("[]")
    done = subprocess.run(
        [sys.executable, "-m", "ocpi_hub.cli", "sync", "--source", str(source)],
        env={k: v for k, v in os.environ.items() if not k.startswith("OCPI_HUB_")},
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    assert done.stderr.startswith(f"ocpi-hub: OCPI_HUB_DATABASE_URL: no database at {tmp_path / 'ocpi-hub.db'}; ")
    assert not (tmp_path / "ocpi-hub.db").exists()


def test_the_start_line_names_what_runs_and_never_a_password() -> None:
    settings = Settings(
        database_url="postgresql+asyncpg://hub:pa55word@db.example/hub",
        public_url="https://ocpi.example.com",
        sync_source="/data/export.json",
        push_worker=False,
    )
    line = cli.start_line(settings)
    assert "pa55word" not in line
    assert line == (
        f"ocpi-hub {cli.hub_version()} starting: database postgresql+asyncpg://hub:***@db.example/hub, "
        "public URL https://ocpi.example.com, parties NL/OHB, push worker off, sync of /data/export.json every 300 s"
    )


def test_a_loopback_public_url_on_another_port_is_a_warning() -> None:
    assert cli.public_url_warning("http://127.0.0.1:8000", "127.0.0.1", 8000) is None
    assert cli.public_url_warning("https://ocpi.example.com", "0.0.0.0", 8000) is None  # a proxy in front
    warning = cli.public_url_warning("http://localhost:8000", "127.0.0.1", 9000)
    assert warning is not None
    assert warning.startswith("OCPI_HUB_PUBLIC_URL http://localhost:8000 names this machine on port 8000, but ")


def test_every_setting_is_listed_by_some_commands_help() -> None:
    listed = {variable for variables in cli.ENVIRONMENT.values() for variable in variables}
    settings = {"OCPI_HUB_" + name.upper() for name in Settings.__struct_fields__ if name != "parties"}
    assert settings <= listed, settings - listed


def test_sync_of_a_lenient_source_prints_its_warnings_and_rejections(
    tmp_path: Path, database_url: str, engine: AsyncEngine
) -> None:
    connector = {
        "uid": 1,
        "connectorType": "Type2",
        "electricalProperties": {"powerType": "AC3Phase", "voltage": 230, "amperage": 32, "maxElectricPower": 22},
    }
    avcon = {**connector, "uid": 2, "connectorType": "Avcon"}
    evse = {"uid": 11, "status": "Available", "updated": "2024-01-01T00:00:00Z", "connectors": [connector, avcon]}
    address = {"streetAndNumber": "Damrak 1", "postalCode": "1012 LG", "city": "Amsterdam", "country": "NLD"}
    located = {
        "coordinates": {"latitude": 52.37, "longitude": 4.89},
        "address": address,
        "updated": "2024-01-01T00:00:00Z",
        "evses": [evse],
    }
    source = tmp_path / "export.json"
    source.write_text(json.dumps([{"uid": 1, **located}, {"uid": 2, "evses": [evse]}]))
    environ = {"OCPI_HUB_DATABASE_URL": database_url, "OCPI_HUB_SYNC_LENIENT": "true"}
    done = run("sync", "--source", str(source), environ=environ)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        f"sync of {source}: 2 records: 1 created, 0 updated, 0 unchanged, 1 rejected, 0 removed",
        "rejected: record 2 (location 2): $.address: None is required",
        "warning: location 1: $.evses[0].connectors[1].connectorType: 'Avcon' has no OCPI 2.2.1 ConnectorType; "
        "connector left out",
        f"database: {cli.shown_database(database_url)}",
    ]
