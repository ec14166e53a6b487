"""X.509 certificates as the seed exchanges them: PEM text in and out, keyed by the base64 SHA-256 hash of the DER
bytes (seed 002, lookupCertificate: "a base64 encoded SHA-256 hash of the DER bytes")."""

from __future__ import annotations

import base64
import hashlib

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding


class NotACertificateError(ValueError):
    """The text is not exactly one PEM-encoded X.509 certificate."""


def load_pem(text: str) -> x509.Certificate:
    # The seed sends PEM "with newlines replaced by \n": JSON decoding restores them, but a client that escaped
    # them twice sends a backslash and an n, which PEM (base64 between armour lines) never contains.
    data = text.replace("\\n", "\n").encode()
    try:
        found = x509.load_pem_x509_certificates(data)
    except ValueError:
        raise NotACertificateError("not a PEM-encoded X.509 certificate") from None
    if len(found) != 1:
        raise NotACertificateError(f"expected one PEM certificate, found {len(found)}")
    return found[0]


def der_hash(certificate: x509.Certificate) -> str:
    """The key of a certificate: standard base64 (with padding) of the SHA-256 of its DER bytes."""
    return base64.b64encode(hashlib.sha256(certificate.public_bytes(Encoding.DER)).digest()).decode()


def to_pem(certificate: x509.Certificate) -> str:
    return certificate.public_bytes(Encoding.PEM).decode()


def normalise_hash(text: str) -> str | None:
    """The standard base64 form of a hash written in standard or URL-safe base64, padded or not (a `/` cannot
    travel in a URL path segment); None when the text is not the base64 of 32 bytes."""
    standard = text.replace("-", "+").replace("_", "/")
    try:
        raw = base64.b64decode(standard + "=" * (-len(standard) % 4), validate=True)
    except ValueError:  # not base64 (binascii.Error), or not even ASCII
        return None
    return base64.b64encode(raw).decode() if len(raw) == hashlib.sha256().digest_size else None
