"""The secret key that protects the credentials tokens we store (docs/operations.md §9).

Two kinds of token are kept in the partners table (OCPI 2.2.1 §7):
- the token *we present* to a partner (their B or C), needed in clear to call them: with a key it is sealed with
  AES-256-GCM, bound to the partner's row id, under a key derived from the secret key;
- the token a partner *presents to us* (A, then C): only a hash is kept, to find the caller by an index. With a key
  it is HMAC-SHA256 of the token's SHA-256 under another derived key; without, the bare SHA-256 (as before keys).

Every stored value says its scheme, so that a database can go from no key to a key and from one key to the next
(`ocpi-hub rotate-secret-key`):

    token       <= 64 characters          the token in clear (no key; CredentialsToken is at most 64 characters)
                s1.<key id>.<base64url>   sealed: nonce (12 bytes) + AES-GCM of the token NUL-padded to 64 bytes
    token_hash  64 hex digits             SHA-256 of the token (no key)
                h1.<key id>.<64 hex>      HMAC-SHA256(hash key, SHA-256 of the token)

The key id is 8 hex digits derived one-way from the key, never the key. The keyed hash is taken over the token's
SHA-256 so that the rotation command can turn a bare SHA-256 into a keyed hash without the token; a hash under an
older key cannot be converted (that needs the token), so it is looked up under the previous key and re-hashed
under the current one on the partner's next request. Keys are derived once per process (`keyring_of` caches).
Nothing here logs, and no message ever holds a key or a token.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import re
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from ocpi_hub.credentials_token import hash_token as plain_hash

if TYPE_CHECKING:
    from ocpi_hub.settings import Settings

KEY_RULE = (
    "must be 32 random bytes in URL-safe Base64 (43 characters), such as the output of "
    "`python3 -c 'import secrets; print(secrets.token_urlsafe(32))'`"
)
_PLAIN_MAX = 64  # CredentialsToken's max_length: a longer stored value is never a token in clear
_PADDED = 64  # a sealed token is padded to this, so that its length tells nothing
_NONCE = 12
_SEALED = "s1"
_KEYED = "h1"


class SecretKeyError(ValueError):
    """A key is malformed, or a stored value cannot be read with the keys given; the message says which and what
    to do, never a key or a token."""


def parse_key(raw: str, variable: str) -> bytes:
    """The 32 bytes of a key given as URL-safe Base64 (padding optional), or SecretKeyError naming `variable`."""
    text = raw.strip()
    if not re.fullmatch(r"[A-Za-z0-9_-]{43}=?", text):
        raise SecretKeyError(f"{variable}: {KEY_RULE}")
    return base64.urlsafe_b64decode(text.rstrip("=") + "=")


def _derive(secret: bytes, purpose: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=b"ocpi-hub " + purpose).derive(secret)


class Key:
    """One secret key's derived keys: its id, the sealing key and the hash key (each from its own HKDF info)."""

    def __init__(self, secret: bytes) -> None:
        self.id = _derive(secret, b"key id")[:4].hex()
        self._aead = AESGCM(_derive(secret, b"token sealing v1"))
        self._hash_key = _derive(secret, b"token hashing v1")

    def __repr__(self) -> str:
        return f"Key(id={self.id})"  # never the key material

    def seal(self, token: str, row_id: int) -> str:
        nonce = os.urandom(_NONCE)
        sealed = self._aead.encrypt(nonce, token.encode().ljust(_PADDED, b"\0"), _bound(row_id))
        return f"{_SEALED}.{self.id}.{base64.urlsafe_b64encode(nonce + sealed).decode().rstrip('=')}"

    def open(self, body: str, row_id: int) -> str:
        data = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
        return self._aead.decrypt(data[:_NONCE], data[_NONCE:], _bound(row_id)).rstrip(b"\0").decode()

    def keyed_hash(self, plain_hash: str) -> str:
        digest = hmac.new(self._hash_key, bytes.fromhex(plain_hash), hashlib.sha256).hexdigest()
        return f"{_KEYED}.{self.id}.{digest}"


def _bound(row_id: int) -> bytes:
    # Associated data: a sealed token copied onto another partner's row does not open there.
    return f"partners.token:{row_id}".encode()


def scheme_key_id(stored: str) -> str | None:
    """The key id a stored token or hash is under; None for the keyless forms. SecretKeyError for what is neither."""
    if len(stored) <= _PLAIN_MAX:
        return None
    scheme, _, rest = stored.partition(".")
    key_id, dot, _ = rest.partition(".")
    if scheme not in (_SEALED, _KEYED) or not dot or len(key_id) != 8:
        raise SecretKeyError("a stored credentials token is in a scheme this version does not know")
    return key_id


@dataclass(frozen=True)
class Keyring:
    """The current key (None: tokens are stored as before keys existed) and, during a rotation, the previous one."""

    current: Key | None = None
    previous: Key | None = None

    def key(self, key_id: str) -> Key | None:
        return next((k for k in (self.current, self.previous) if k is not None and k.id == key_id), None)

    # --- tokens we present to partners ---

    def seal(self, token: str, row_id: int) -> str:
        """How the token we present to partner `row_id` is stored: sealed under the current key, or in clear."""
        return token if self.current is None else self.current.seal(token, row_id)

    def open(self, stored: str, row_id: int) -> str:
        """The token in clear; SecretKeyError when it is sealed under a key we do not have or does not open."""
        key_id = scheme_key_id(stored)
        if key_id is None:
            return stored
        key = self.key(key_id)
        if key is None:
            raise SecretKeyError(
                f"partner {row_id}'s token is sealed under key id {key_id}, {self._neither()}: set the key it was "
                "stored under"
            )
        try:
            return key.open(stored.split(".", 2)[2], row_id)
        except (InvalidTag, ValueError):
            raise SecretKeyError(
                f"partner {row_id}'s sealed token does not open under key id {key_id}: it was altered or copied "
                "from another row"
            ) from None

    # --- tokens partners present to us ---

    def token_hash(self, token: str) -> str:
        """How a token a partner presents to us is stored: under the current key, or the bare SHA-256."""
        plain = plain_hash(token)
        return plain if self.current is None else self.current.keyed_hash(plain)

    def lookup_hashes(self, token: str) -> list[str]:
        """Every form the token's hash may be stored in: current key first, then previous key, then bare."""
        plain = plain_hash(token)
        return [*(k.keyed_hash(plain) for k in (self.current, self.previous) if k is not None), plain]

    def matches(self, token: str, stored_hash: str | None) -> bool:
        return stored_hash is not None and any(
            hmac.compare_digest(h.encode(), stored_hash.encode()) for h in self.lookup_hashes(token)
        )

    def is_current_hash(self, stored_hash: str) -> bool:
        key_id = scheme_key_id(stored_hash)
        return key_id == (self.current.id if self.current is not None else None)

    def _neither(self) -> str:
        given = ((self.current, "OCPI_HUB_SECRET_KEY"), (self.previous, "OCPI_HUB_PREVIOUS_SECRET_KEY"))
        ids = [f"{k.id} ({variable})" for k, variable in given if k is not None]
        return "which is none of the keys given" + (f": {', '.join(ids)}" if ids else " (OCPI_HUB_SECRET_KEY is unset)")


PLAIN = Keyring()  # no key: tokens in clear, bare SHA-256 hashes (as before keys existed)


def rehash(stored_hash: str, key: Key) -> str | None:
    """A bare SHA-256 as a keyed hash under `key`; None when it is already keyed (that needs the token)."""
    return key.keyed_hash(stored_hash) if scheme_key_id(stored_hash) is None else None


@lru_cache(maxsize=8)
def _keyring(current: str | None, previous: str | None) -> Keyring:
    return Keyring(
        Key(parse_key(current, "OCPI_HUB_SECRET_KEY")) if current else None,
        Key(parse_key(previous, "OCPI_HUB_PREVIOUS_SECRET_KEY")) if previous else None,
    )


def keyring_of(settings: Settings) -> Keyring:
    """The keyring of the settings' keys, derived once per process and key pair (so never once per request)."""
    return _keyring(settings.secret_key, settings.previous_secret_key)
