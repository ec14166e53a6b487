"""Credentials tokens: how we issue them, store them and read them off a request (OCPI 2.2.1 §4.1.3, §7).

Tokens that partners present to us are stored only as hashes: a token we issue carries 256 bits of entropy, so a
fast hash is as good as a slow one, and it lets us look the caller up by an index. `hash_token` is the bare SHA-256
kept when no secret key is set; with one, ocpi_hub/secret_key.py keys it (docs/operations.md §9). Tokens are never
logged; nothing in this module logs.
"""

from __future__ import annotations

import base64
import hashlib
import secrets


def issue_token() -> str:
    """A new credentials token: 256 random bits, URL-safe base64, so printable non-whitespace ASCII (43 chars)."""
    return secrets.token_urlsafe(32)


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def presented_tokens(authorization: str | None) -> list[str]:
    """The tokens an `Authorization: Token ...` header may carry, best guess first.

    2.2.1 sends the token Base64-encoded; 2.1.1 and many 2.2 peers send it raw (spec §4.1.3, d2 note). We accept
    both: the Base64-decoded value when the header decodes strictly to printable ASCII, then the raw value.
    """
    if not authorization:
        return []
    scheme, _, value = authorization.strip().partition(" ")
    value = value.strip()
    if scheme.lower() != "token" or not value:
        return []
    candidates = []
    try:
        decoded = base64.b64decode(value, validate=True).decode("ascii")
    except ValueError:  # not Base64 (binascii.Error), not ASCII before or after decoding (docs/ocpi.md §11)
        decoded = ""
    if decoded and decoded.isprintable() and not any(c.isspace() for c in decoded):
        candidates.append(decoded)
    candidates.append(value)
    return candidates


def authorization_header(token: str, *, send_base64: bool) -> str:
    """What we send to a partner: Base64 by default (2.2.1), the raw token for peers configured so."""
    return "Token " + (base64.b64encode(token.encode()).decode() if send_base64 else token)
