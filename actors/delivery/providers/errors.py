"""Meta's Cloud API error codes as named exceptions, so callers write
`except ReEngagementRequired` rather than compare numbers.

Codes from https://developers.facebook.com/docs/whatsapp/cloud-api/support/error-codes.
Retryable ones are limits or transient faults; the rest are permanent for that message.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from tenacity import (
    AsyncRetrying,
    retry_if_exception,
    stop_after_attempt,
    stop_after_delay,
    wait_random_exponential,
)


class SendError(Exception):
    """A send the provider refused or could not complete."""

    retryable = False
    # The one Meta error code this class stands for, the default of `code`.
    meta_code: int | None = None

    def __init__(self, title: str, code: int | None = None, *, retryable: bool | None = None):
        code = code if code is not None else self.meta_code
        super().__init__(f"{code}: {title}" if code is not None else title)
        self.title = title
        self.code = code
        if retryable is not None:
            self.retryable = retryable


class TransientError(SendError):
    """5xx, timeouts, connection errors and Meta's temporary codes (1, 2, 131000, ...)."""

    retryable = True


class ThroughputLimitHit(SendError):
    """130429: over the business number's messages per second."""

    retryable = True
    meta_code = 130429


class PairRateLimitHit(SendError):
    """131056: too many messages to the same user in a short time."""

    retryable = True
    meta_code = 131056


class ReEngagementRequired(SendError):
    """131047: more than 24 hours since the customer wrote; only a template may be sent."""

    meta_code = 131047


class Undeliverable(SendError):
    """131026: the message could not be delivered (not a WhatsApp user, old app, ...)."""

    meta_code = 131026


class UnsupportedMessage(SendError):
    """131051: the message type is not supported."""

    meta_code = 131051


class TemplateError(SendError):
    """132000/132001: template parameters do not match, or the template does not exist."""


class AccountRestricted(SendError):
    """368: the account is temporarily blocked for policy violations."""

    meta_code = 368


_NAMED: tuple[type[SendError], ...] = (
    ThroughputLimitHit,
    PairRateLimitHit,
    ReEngagementRequired,
    Undeliverable,
    UnsupportedMessage,
    AccountRestricted,
)
_BY_CODE: dict[int, type[SendError]] = {
    **{kind.meta_code: kind for kind in _NAMED if kind.meta_code is not None},
    132000: TemplateError,
    132001: TemplateError,
}
_TRANSIENT_CODES = frozenset({1, 2, 4, 80007, 131000, 131016})


def error_for(code: int | None, title: str, http_status: int) -> SendError:
    """The named error for a Meta error response."""
    if code in _BY_CODE:
        return _BY_CODE[code](title, code)
    if code in _TRANSIENT_CODES or http_status >= 500 or http_status == 429:
        return TransientError(title, code)
    return SendError(title, code)


async def with_retries(
    send: Callable[[], Awaitable[str]],
    *,
    max_attempts: int,
    deadline: float,
    backoff_max: float = 5.0,
) -> str:
    """Run a send, retrying retryable SendErrors with jittered exponential backoff."""
    retrying = AsyncRetrying(
        retry=retry_if_exception(lambda e: isinstance(e, SendError) and e.retryable),
        wait=wait_random_exponential(multiplier=backoff_max / 25, max=backoff_max),
        stop=stop_after_attempt(max_attempts) | stop_after_delay(deadline),
        reraise=True,
    )
    async for attempt in retrying:
        with attempt:
            return await send()
    raise AssertionError("unreachable: tenacity reraises the last error")
