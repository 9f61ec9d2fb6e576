"""Meta's webhook signature: X-Hub-Signature-256 = "sha256=" + hex HMAC-SHA256 of the body.

See https://developers.facebook.com/docs/graph-api/webhooks/getting-started#validate-payloads.
The HMAC is over the raw bytes as received; re-serialised JSON would not match.
"""

from __future__ import annotations

import hashlib
import hmac

HEADER = "X-Hub-Signature-256"
_PREFIX = "sha256="


def sign(body: bytes, secret: str) -> str:
    return _PREFIX + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def is_valid(body: bytes, header_value: str, secret: str) -> bool:
    if not header_value.startswith(_PREFIX):
        return False
    try:
        # compare_digest refuses non-ASCII str with TypeError; such a header is no
        # signature of ours, so it is a mismatch, not a server error.
        given = header_value.strip().encode("ascii")
    except UnicodeEncodeError:
        return False
    # Constant-time comparison, so the signature cannot be guessed byte by byte.
    return hmac.compare_digest(sign(body, secret).encode("ascii"), given)
