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
    # Constant-time comparison, so the signature cannot be guessed byte by byte.
    return hmac.compare_digest(sign(body, secret), header_value.strip())
