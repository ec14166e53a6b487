"""The command reports bad configuration in one line on stderr and exits with status 2, never a traceback."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest


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
