"""TLS failures as one clear line: a server certificate that does not verify against the CA given
(``ssl_ca_certs`` for ``rediss://``, ``sslrootcert`` for PostgreSQL)."""
from __future__ import annotations

import re
import ssl

_REASON = re.compile(r"certificate verify failed: ([^(\n]+)")


def verify_failure(exc: BaseException) -> str | None:
    """The verification failure's reason (e.g. "self-signed certificate in certificate chain") when
    ``exc`` or an exception it was raised from is one, else None."""
    seen = 0
    cur: BaseException | None = exc
    while cur is not None and seen < 10:
        if isinstance(cur, ssl.SSLCertVerificationError):
            return (cur.verify_message or "certificate verify failed").strip()
        match = _REASON.search(str(cur))
        if match:
            return match.group(1).strip().rstrip(".")
        cur = cur.__cause__ or cur.__context__
        seen += 1
    return None


def verify_message(what: str, host_label: str, reason: str, option: str) -> str:
    return f"TLS certificate of {what} at {host_label} did not verify: {reason} (check {option})"
