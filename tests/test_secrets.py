"""Secrets at rest (docs/operations.md §9): the tokens we present to partners sealed under OCPI_HUB_SECRET_KEY, the
tokens they present to us kept as keyed hashes, `ocpi-hub rotate-secret-key`, a wrong key refused at start, and no
replaced or revoked token left in the SQLite files. The real hub over HTTP, a fake eMSP, both databases."""

from __future__ import annotations

import asyncio
import os
import secrets
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from ocpi_hub.app import create_app
from ocpi_hub.credentials_token import hash_token
from ocpi_hub.db import partners
from ocpi_hub.db.partners import Partner
from ocpi_hub.secret_key import Key, Keyring, SecretKeyError, parse_key
from ocpi_hub.settings import Party, Settings, SettingsError, load_settings
from tests.conftest import Hub, MovableClock
from tests.fake_emsp import ROLE, FakeEmsp, Recorded
from tests.servers import serve
from tests.test_push_delivery import poll, put_location

TOKEN_A = "token-a-for-the-emsp"
TOKEN_B = "token-b-of-emsp"
TOKEN_B2 = "token-b2-of-emsp-after-put"
KEY_1 = secrets.token_urlsafe(32)
KEY_2 = secrets.token_urlsafe(32)


@asynccontextmanager
async def running(database_url: str, **overrides: Any) -> AsyncIterator[Hub]:
    """One hub on the test database with these settings, stopped on leaving (a restart is leaving and entering)."""
    clock = MovableClock()
    captured: dict[str, Settings] = {}

    def make(base_url: str) -> Any:
        values: dict[str, Any] = {
            "database_url": database_url,
            "public_url": base_url,
            "parties": (Party("NL", "OHB", "Test CPO"),),
            "allow_private_partner_urls": True,
            "http_timeout": 2.0,
        } | overrides
        captured["settings"] = Settings(**values)
        return create_app(captured["settings"], clock=clock)

    async with serve(make) as url, httpx.AsyncClient(timeout=10) as http:
        yield Hub(url=url, settings=captured["settings"], http=http, clock=clock)


async def register(hub: Hub, emsp: FakeEmsp) -> str:
    """The eMSP registers with token A and its token B; returns the token C we gave it."""
    assert (await hub.api("POST", "/register", json={"token": TOKEN_A})).status_code == 201
    emsp.accepted_tokens.add(TOKEN_B)
    body = {"token": TOKEN_B, "url": f"{emsp.base_url}/versions", "roles": [ROLE]}
    answer = await hub.ocpi("POST", "/ocpi/2.2.1/credentials", TOKEN_A, json=body)
    assert answer.status_code == 200, answer.text
    token_c: str = answer.json()["data"]["token"]
    return token_c


async def update_credentials(hub: Hub, emsp: FakeEmsp, token_c: str, token_b: str) -> str:
    """A credentials PUT with a new token B; returns the new token C."""
    emsp.accepted_tokens.add(token_b)
    body = {"token": token_b, "url": f"{emsp.base_url}/versions", "roles": [ROLE]}
    answer = await hub.ocpi("PUT", "/ocpi/2.2.1/credentials", token_c, json=body)
    assert answer.status_code == 200, answer.text
    new_c: str = answer.json()["data"]["token"]
    return new_c


async def pushed_with(hub: Hub, emsp: FakeEmsp, location_id: str) -> str:
    """Change a Location and wait for its push to the eMSP: the token its Authorization header carried."""
    await put_location(hub, location_id)

    async def arrived() -> list[Recorded]:
        return emsp.received("PUT", f"/2.2.1/locations/NL/OHB/{location_id}")

    return (await poll(arrived, bool))[-1].token


async def stored(sessions: async_sessionmaker[AsyncSession]) -> Partner:
    async with sessions() as session:
        [partner] = await partners.all_partners(session)
    return partner


def cli(*args: str, **environ: str) -> tuple[int, str, str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("OCPI_HUB_")}
    done = subprocess.run(
        [sys.executable, "-m", "ocpi_hub.cli", *args],
        env=clean | environ,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    return done.returncode, done.stdout, done.stderr


async def rotate(database_url: str, **keys: str) -> str:
    """`ocpi-hub rotate-secret-key` with the keys in the environment (never on the command line), at DEBUG."""
    environ = {"OCPI_HUB_DATABASE_URL": database_url, "OCPI_HUB_LOG_LEVEL": "DEBUG"} | keys
    status, out, err = await asyncio.to_thread(cli, "rotate-secret-key", **environ)
    assert status == 0, err
    for key in keys.values():
        assert key not in out + err  # nor is any token: checked by the callers
    return out + err


async def test_with_a_key_we_store_no_token_in_clear_nor_a_bare_hash(
    database_url: str, emsp: FakeEmsp, sessions: async_sessionmaker[AsyncSession]
) -> None:
    async with running(database_url, secret_key=KEY_1) as hub:
        token_c = await register(hub, emsp)
        partner = await stored(sessions)
        assert partner.token is not None
        assert partner.token_hash is not None
        key_id = Key(parse_key(KEY_1, "test")).id
        assert partner.token.startswith(f"s1.{key_id}.")
        assert TOKEN_B not in partner.token
        assert partner.token_hash.startswith(f"h1.{key_id}.")
        assert hash_token(token_c) not in partner.token_hash
        # Both directions work: they call us with C, we call them with B.
        assert (await hub.ocpi("GET", "/ocpi/2.2.1/credentials", token_c)).status_code == 200
        assert await pushed_with(hub, emsp, "LOC1") == TOKEN_B
        assert (await hub.ocpi("GET", "/ocpi/2.2.1/credentials", TOKEN_A)).status_code == 401


@pytest.mark.parametrize("status", ["REGISTERED", None])
async def test_registering_with_a_partner_under_a_key(
    database_url: str, emsp: FakeEmsp, sessions: async_sessionmaker[AsyncSession], status: str | None
) -> None:
    """We start: with a token agreed for both directions, or with their token A and the handshake (our B, their C)."""
    key = Key(parse_key(KEY_1, "test"))
    async with running(database_url, secret_key=KEY_1) as hub:
        body = {"token": "token-a-of-emsp", "url": f"{emsp.base_url}/versions"} | ({"status": status} if status else {})
        assert (await hub.api("POST", "/register", json=body)).status_code == 201
        ours, theirs = ("token-a-of-emsp", "token-a-of-emsp") if status else (emsp.received_token_b, emsp.token_c)
        assert ours is not None
        partner = await stored(sessions)
        assert partner.token is not None
        assert partner.token.startswith(f"s1.{key.id}.")
        assert partner.token_hash == key.keyed_hash(hash_token(ours))
        assert (await hub.ocpi("GET", "/ocpi/2.2.1/credentials", ours)).status_code == 200
        assert await pushed_with(hub, emsp, "LOC1") == theirs


async def test_a_partner_registered_without_a_key_keeps_working_when_a_key_is_set_and_rotated(
    database_url: str, emsp: FakeEmsp, sessions: async_sessionmaker[AsyncSession]
) -> None:
    key_1, key_2 = Key(parse_key(KEY_1, "test")), Key(parse_key(KEY_2, "test"))
    async with running(database_url) as hub:
        token_c = await register(hub, emsp)
        assert await pushed_with(hub, emsp, "LOC1") == TOKEN_B
    partner = await stored(sessions)
    assert (partner.token, partner.token_hash) == (TOKEN_B, hash_token(token_c))  # as before keys

    # The key is set: the stored values are read as they are; C's bare hash is keyed on its next presentation.
    async with running(database_url, secret_key=KEY_1) as hub:
        assert (await hub.ocpi("GET", "/ocpi/2.2.1/credentials", token_c)).status_code == 200
        assert await pushed_with(hub, emsp, "LOC2") == TOKEN_B
    partner = await stored(sessions)
    assert partner.token == TOKEN_B
    assert partner.token_hash == key_1.keyed_hash(hash_token(token_c))

    # Sealing what is left under the key, then rotating to another.
    said = await rotate(database_url, OCPI_HUB_SECRET_KEY=KEY_1)
    assert f"1 partner token(s) sealed and 0 token hash(es) keyed under key id {key_1.id}" in said
    sealed = (await stored(sessions)).token
    assert sealed is not None
    assert sealed.startswith(f"s1.{key_1.id}.")
    # At DEBUG: the loggers that would print the UPDATE's parameters are capped (docs/operations.md §1.6).
    assert TOKEN_B not in said
    assert sealed not in said
    said = await rotate(database_url, OCPI_HUB_SECRET_KEY=KEY_1, OCPI_HUB_NEW_SECRET_KEY=KEY_2)
    assert f"1 token hash(es) stay under key id {key_1.id}" in said
    for secret in (TOKEN_B, token_c, hash_token(token_c)):
        assert secret not in said
    partner = await stored(sessions)
    assert partner.token is not None
    assert partner.token.startswith(f"s1.{key_2.id}.")
    assert partner.token_hash == key_1.keyed_hash(hash_token(token_c))  # needs the token: moves on presentation

    async with running(database_url, secret_key=KEY_2, previous_secret_key=KEY_1) as hub:
        assert (await hub.ocpi("GET", "/ocpi/2.2.1/credentials", token_c)).status_code == 200
        assert (await stored(sessions)).token_hash == key_2.keyed_hash(hash_token(token_c))
        assert await pushed_with(hub, emsp, "LOC3") == TOKEN_B
        token_c2 = await update_credentials(hub, emsp, token_c, TOKEN_B2)
    # The previous key is no longer needed: everything is under the new one.
    async with running(database_url, secret_key=KEY_2) as hub:
        assert (await hub.ocpi("GET", "/ocpi/2.2.1/credentials", token_c2)).status_code == 200
        assert (await hub.ocpi("GET", "/ocpi/2.2.1/credentials", token_c)).status_code == 401
        assert await pushed_with(hub, emsp, "LOC4") == TOKEN_B2


async def test_a_wrong_or_missing_key_is_refused_at_start_in_one_line(
    database_url: str, emsp: FakeEmsp, sessions: async_sessionmaker[AsyncSession]
) -> None:
    async with running(database_url, secret_key=KEY_1) as hub:
        await register(hub, emsp)
    key_1 = Key(parse_key(KEY_1, "test"))
    for environ in ({"OCPI_HUB_SECRET_KEY": KEY_2}, {}):
        status, out, err = await asyncio.to_thread(
            cli, "serve", "--port", "1", OCPI_HUB_DATABASE_URL=database_url, **environ
        )
        assert status == 2, err
        [line] = err.splitlines()
        assert line.startswith("ocpi-hub: OCPI_HUB_SECRET_KEY: ")
        assert f"key id {key_1.id}" in line
        assert KEY_2 not in out + err
        assert TOKEN_B not in out + err
    # A rotation with the wrong key changes nothing.
    before = await stored(sessions)
    status, _, err = await asyncio.to_thread(
        cli,
        "rotate-secret-key",
        OCPI_HUB_DATABASE_URL=database_url,
        OCPI_HUB_SECRET_KEY=KEY_2,
        OCPI_HUB_NEW_SECRET_KEY=secrets.token_urlsafe(32),
    )
    assert status == 2
    assert "nothing was changed" in err
    assert (await stored(sessions)).token == before.token


@pytest.mark.parametrize("variable", ["SECRET_KEY", "PREVIOUS_SECRET_KEY", "NEW_SECRET_KEY"])
@pytest.mark.parametrize("raw", ["too-short", "a" * 42 + "!", secrets.token_urlsafe(33), "AAAA" * 16])
def test_a_malformed_key_is_refused_without_repeating_it(variable: str, raw: str) -> None:
    with pytest.raises(SettingsError) as refused:
        load_settings({f"OCPI_HUB_{variable}": raw})
    assert str(refused.value).startswith(f"OCPI_HUB_{variable}: must be 32 random bytes in URL-safe Base64")
    assert raw not in str(refused.value)


def test_a_sealed_token_opens_only_on_its_own_row_and_under_its_key() -> None:
    keyring = Keyring(Key(parse_key(KEY_1, "test")))
    sealed = keyring.seal(TOKEN_B, 7)
    assert keyring.open(sealed, 7) == TOKEN_B
    assert len(keyring.seal("x", 7)) == len(sealed)  # the length tells nothing of the token's
    with pytest.raises(SecretKeyError, match="does not open under key id"):
        keyring.open(sealed, 8)
    with pytest.raises(SecretKeyError, match="none of the keys given"):
        Keyring(Key(parse_key(KEY_2, "test"))).open(sealed, 7)
    tampered = sealed[:-2] + ("A" if sealed[-2] != "A" else "B") + sealed[-1]
    with pytest.raises(SecretKeyError):
        keyring.open(tampered, 7)


def _sqlite_files(database_url: str) -> list[Path]:
    database = make_url(database_url).database
    assert database is not None
    return [Path(database), Path(database + "-wal")]


def _found(files: list[Path], secrets_: list[str]) -> list[str]:
    data = b"".join(f.read_bytes() for f in files if f.exists())
    return [s for s in secrets_ if s.encode() in data]


async def test_replaced_and_revoked_tokens_are_not_left_in_the_sqlite_files(
    database_url: str, emsp: FakeEmsp, sessions: async_sessionmaker[AsyncSession]
) -> None:
    if not database_url.startswith("sqlite"):
        pytest.skip("SQLite's files; on PostgreSQL dead tuples stay until VACUUM (docs/operations.md §9)")
    files = _sqlite_files(database_url)
    async with running(database_url) as hub:  # no key: the values are stored as they are searched for
        token_c = await register(hub, emsp)
        current = [TOKEN_B, hash_token(token_c)]
        assert _found(files, current) == current  # the search can find them (before a checkpoint, in the WAL)
        token_c2 = await update_credentials(hub, emsp, token_c, TOKEN_B2)
        assert _found(files, [TOKEN_B, hash_token(token_c), hash_token(TOKEN_A)]) == []
        current = [TOKEN_B2, hash_token(token_c2)]
        assert _found(files, current) == current
        assert (await hub.ocpi("DELETE", "/ocpi/2.2.1/credentials", token_c2)).status_code == 200
        assert _found(files, current) == []
    async with sessions() as session:
        assert (await session.execute(text("PRAGMA secure_delete"))).scalar() == 1
