"""Meta's Cloud API error codes as named exceptions, so callers write
`except ReEngagementRequired` rather than compare numbers.

Codes from https://developers.facebook.com/docs/whatsapp/cloud-api/support/error-codes.
Retryable ones are limits or transient faults that prove Meta did not take the message
(the connection was refused, or Meta answered 429/5xx with its error body). A send whose
request may have reached Meta (a timeout or a reset after it was written, a 200 we cannot
read) is `OutcomeUnknown`: Meta takes no idempotency key, so it is never retried here; the
send ledger waits for its status webhook instead (DESIGN.md §3).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import aiohttp
from tenacity import (
    AsyncRetrying,
    RetryCallState,
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

    def __init__(
        self,
        title: str,
        code: int | None = None,
        *,
        retryable: bool | None = None,
        retry_after: float | None = None,
    ):
        code = code if code is not None else self.meta_code
        super().__init__(f"{code}: {title}" if code is not None else title)
        self.title = title
        self.code = code
        # Seconds the provider asked us to wait (Retry-After), if it said.
        self.retry_after = retry_after
        if retryable is not None:
            self.retryable = retryable


class OutcomeUnknown(SendError):
    """The request may have reached the provider, and we lost its answer."""


class TransientError(SendError):
    """Refused connections, 429/5xx error answers and Meta's temporary codes (1, 2, ...)."""

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
# A longer Retry-After is left to the conversation's own retry, not held in one send.
MAX_RETRY_AFTER = 10.0


def error_for(
    code: int | None, title: str, http_status: int, retry_after: float | None = None
) -> SendError:
    """The named error for a Meta error response (an answer with Meta's error body)."""
    if code in _BY_CODE:
        return _BY_CODE[code](title, code, retry_after=retry_after)
    if code in _TRANSIENT_CODES or http_status >= 500 or http_status == 429:
        return TransientError(title, code, retry_after=retry_after)
    return SendError(title, code)


def transport_error(exc: BaseException) -> SendError:
    """What a failed HTTP exchange proves: a refused connection means the request never
    left; anything later (a timeout, a reset, a cut-off answer) may have reached Meta."""
    if isinstance(exc, aiohttp.ClientConnectorError | aiohttp.ConnectionTimeoutError):
        return TransientError(f"not connected: {exc!r}")
    return OutcomeUnknown(f"no answer after the request was sent: {exc!r}")


def retry_after_of(header: str | None) -> float | None:
    """Retry-After in seconds; the HTTP-date form is rare on APIs and read as absent."""
    try:
        return max(0.0, float(header)) if header else None
    except ValueError:
        return None


def _wait_asked(retry_state: RetryCallState) -> float:
    error = retry_state.outcome.exception() if retry_state.outcome is not None else None
    asked = getattr(error, "retry_after", None)
    return float(asked) if asked is not None else 0.0


async def with_retries(
    send: Callable[[], Awaitable[str]],
    *,
    max_attempts: int,
    deadline: float,
    backoff_max: float = 5.0,
) -> str:
    """Run a send, retrying retryable SendErrors with jittered exponential backoff, or
    after the Retry-After the provider asked for when that is longer (capped)."""
    backoff = wait_random_exponential(multiplier=backoff_max / 25, max=backoff_max)

    def wait(retry_state: RetryCallState) -> float:
        return max(backoff(retry_state), min(_wait_asked(retry_state), MAX_RETRY_AFTER))

    retrying = AsyncRetrying(
        retry=retry_if_exception(lambda e: isinstance(e, SendError) and e.retryable),
        wait=wait,
        stop=stop_after_attempt(max_attempts) | stop_after_delay(deadline),
        reraise=True,
    )
    async for attempt in retrying:
        with attempt:
            return await send()
    raise AssertionError("unreachable: tenacity reraises the last error")
