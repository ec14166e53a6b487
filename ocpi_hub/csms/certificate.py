"""The uploadCertificate / lookupCertificate body (seed 002, `/certificate`, schema "Certificate").

Whether the text is a certificate is judged by `ocpi_hub.certificates.load_pem`, which says what is wrong.
"""

from __future__ import annotations

import msgspec


class Certificate(msgspec.Struct, kw_only=True):
    # The PEM encoded certificate, newlines escaped as JSON escapes them (`\n`).
    certificate: str
