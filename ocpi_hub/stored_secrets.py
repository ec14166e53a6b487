"""The tokens stored in the partners table against the secret keys given (docs/operations.md §9): the check made
before `ocpi-hub serve` starts, and `ocpi-hub rotate-secret-key`.

The check refuses to start when a token we present to a partner cannot be opened with the keys given (a wrong or
missing key would otherwise fail every push and every real-time authorization, one error each), and tells what is
left to convert. The rotation re-seals every such token under the new key and turns every bare SHA-256 into a keyed
hash, in one transaction; a hash under an older key stays until the partner's next request re-hashes it
(ocpi_hub/db/partners.py `authenticate`), which needs the older key as OCPI_HUB_PREVIOUS_SECRET_KEY meanwhile.
"""

from __future__ import annotations

import asyncio
import sys
from collections import Counter
from dataclasses import dataclass, field

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from ocpi_hub.db import partners
from ocpi_hub.db.engine import create_engine, session_factory
from ocpi_hub.db.partners import Partner
from ocpi_hub.secret_key import Key, Keyring, SecretKeyError, keyring_of, parse_key, rehash, scheme_key_id
from ocpi_hub.settings import Settings


@dataclass
class Inventory:
    """What the partners table holds: tokens we present by key id (None: in clear), hashes of the tokens partners
    present by key id (None: bare SHA-256)."""

    tokens: Counter[str | None] = field(default_factory=Counter)
    hashes: Counter[str | None] = field(default_factory=Counter)
    # Partners whose hash is under a key that is neither the current nor the previous one: they get 401s.
    locked_out: list[int] = field(default_factory=list)

    def notes(self, keyring: Keyring) -> list[str]:
        """One line for each thing an operator should do, none when everything is under the current key."""
        current = keyring.current.id if keyring.current is not None else None
        lines = []
        if current is not None and (self.tokens[None] or self.hashes[None]):
            lines.append(
                f"{self.tokens[None]} partner token(s) in clear and {self.hashes[None]} bare token hash(es) are not "
                "under OCPI_HUB_SECRET_KEY yet: run `ocpi-hub rotate-secret-key`"
            )
        if keyring.previous is not None:
            waiting = self.hashes[keyring.previous.id]
            lines.append(
                f"{waiting} token hash(es) are still under OCPI_HUB_PREVIOUS_SECRET_KEY (key id "
                f"{keyring.previous.id}); each moves to the current key on that partner's next request"
                if waiting
                else "no token is under OCPI_HUB_PREVIOUS_SECRET_KEY any more: it can be removed"
            )
        if self.locked_out:
            ids = ", ".join(map(str, self.locked_out))
            lines.append(
                f"the token hash of partner(s) {ids} is under a key that is none of the keys given: they cannot "
                "authenticate until OCPI_HUB_PREVIOUS_SECRET_KEY is that key, or they get a new token"
            )
        return lines


async def inventory(session: AsyncSession, keyring: Keyring) -> Inventory:
    """Counts what is stored under which key; SecretKeyError (naming the partner) for a token we present that the
    keyring cannot open."""
    found = Inventory()
    for partner in await partners.all_partners(session):
        if partner.token is not None:
            partners.outbound_token(partner, keyring)  # raises when it does not open
            found.tokens[scheme_key_id(partner.token)] += 1
        if partner.token_hash is not None:
            key_id = scheme_key_id(partner.token_hash)
            found.hashes[key_id] += 1
            if key_id is not None and keyring.key(key_id) is None:
                found.locked_out.append(partner.id)
    return found


def check(settings: Settings) -> list[str]:
    """Before serving: the notes for the operator, or SecretKeyError (one line) when the hub cannot run."""
    keyring = keyring_of(settings)

    async def run() -> Inventory:
        engine = create_engine(settings.database_url)
        try:
            async with session_factory(engine)() as session:
                return await inventory(session, keyring)
        finally:
            await engine.dispose()

    try:
        found = asyncio.run(run())
    except SecretKeyError as exc:
        raise SecretKeyError(f"OCPI_HUB_SECRET_KEY: {exc}") from None
    keyed = {k for k in (*found.tokens, *found.hashes) if k is not None}
    if keyed and not any(keyring.key(k) for k in keyed):
        # Nothing stored is under the keys given: a wrong key, rather than a rotation with a partner left behind.
        given = keyring.current.id if keyring.current is not None else "unset"
        raise SecretKeyError(
            f"OCPI_HUB_SECRET_KEY: the stored tokens are under key id {', '.join(sorted(keyed))}, but this key's id is "
            f"{given}: set the key they were stored under"
        )
    return found.notes(keyring)


@dataclass(frozen=True)
class Rotated:
    sealed: int  # tokens we present, now sealed under the new key
    rehashed: int  # bare SHA-256 hashes now keyed under the new key
    waiting: Counter[str]  # hashes left under an older key, by key id


async def rotate(session: AsyncSession, keyring: Keyring, new: Key) -> Rotated:
    """Re-seal every token we present under `new` and key every bare hash under it, in the session's transaction
    (committed by the caller). Raises SecretKeyError, changing nothing, when a token does not open."""
    sealed = rehashed = 0
    waiting: Counter[str] = Counter()
    target = Keyring(current=new)
    rows = await session.scalars(select(Partner).order_by(Partner.id).with_for_update())
    for partner in rows:
        token = partners.outbound_token(partner, keyring)
        if token is not None:
            partners.set_outbound_token(partner, token, target)
            sealed += 1
        if partner.token_hash is not None:
            key_id = scheme_key_id(partner.token_hash)
            if key_id is None:
                partner.token_hash = rehash(partner.token_hash, new)
                rehashed += 1
            elif key_id != new.id:
                waiting[key_id] += 1
    return Rotated(sealed, rehashed, waiting)


def rotate_command(settings: Settings) -> int:
    """`ocpi-hub rotate-secret-key`: the keys from the environment only (a command line is visible to every user of
    the machine). Opens with OCPI_HUB_SECRET_KEY and OCPI_HUB_PREVIOUS_SECRET_KEY, seals under
    OCPI_HUB_NEW_SECRET_KEY (or OCPI_HUB_SECRET_KEY when that is unset: finishing a move to it). Exit status 2 when
    nothing could be done."""
    new_raw = settings.new_secret_key or settings.secret_key
    if new_raw is None:
        sys.stderr.write("ocpi-hub: OCPI_HUB_NEW_SECRET_KEY: set the key to seal the stored tokens under\n")
        return 2
    new = Key(parse_key(new_raw, "OCPI_HUB_NEW_SECRET_KEY"))
    keyring = keyring_of(settings)

    async def run() -> Rotated:
        engine = create_engine(settings.database_url)
        try:
            async with session_factory(engine)() as session:
                done = await rotate(session, keyring, new)
                await session.commit()
                await partners.scrub(session)  # the tokens under the old key
                return done
        finally:
            await engine.dispose()

    try:
        done = asyncio.run(run())
    except SecretKeyError as exc:
        sys.stderr.write(f"ocpi-hub: OCPI_HUB_SECRET_KEY: {exc}; nothing was changed\n")
        return 2
    lines = [f"{done.sealed} partner token(s) sealed and {done.rehashed} token hash(es) keyed under key id {new.id}"]
    for key_id, count in sorted(done.waiting.items()):
        lines.append(
            f"{count} token hash(es) stay under key id {key_id} until each partner's next request: serve with that "
            "key as OCPI_HUB_PREVIOUS_SECRET_KEY meanwhile"
        )
    sys.stdout.write("\n".join(lines) + "\n")
    return 0
