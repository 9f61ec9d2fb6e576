"""One reply through the send ledger: part by part, each sent only under a live claim.

The reply's parts (split_text for a long text; buttons, lists and templates are one part)
are created once, on the first try, after the 24-hour window has chosen what may go. Then
each part in order: take a pacing token, claim it (the order gate holds it back while an
earlier part of the conversation is open), call the provider within the lease, and record
what the answer proves (DESIGN.md §3):

- a wamid: sent;
- Meta's refusal (4xx with an error body): failed, with its code and title;
- proof that Meta did not take it (refused connection, 429/5xx with an error body, after
  the provider's own retries): back to pending, and the conversation tries again later;
- anything else (a timeout or reset after the request was written, an unreadable 200):
  unknown. The part then waits, bounded, for the status webhook carrying its callback
  data; with none, it goes again.

Parts already sent are never sent again, so a retry or a replay finishes a reply where
the last try stopped.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import asyncpg
import structlog

from actors.delivery.batched_ledger import BatchedLedger
from actors.delivery.pacing import PacingTimeout, SendPacer
from actors.delivery.providers import OutboundMessage, Provider
from actors.delivery.providers.errors import OutcomeUnknown, ReEngagementRequired, SendError
from actors.delivery.window_policy import (
    WindowTemplate,
    as_template,
    choose,
    refusal,
    window_open,
)
from actors.outages import is_outage
from actors.wire import Content, DeliveryRequest, DeliveryResult, InvalidContent, split_text
from config.logs import mask_phone
from config.vocabulary import MessageStatus, ProviderName
from store import outbound, send_ledger
from store.send_ledger import Part, PartState

log = structlog.get_logger(__name__)

# How often a part waiting on another owner, a webhook or the order gate looks again.
POLL_SECONDS = 0.2
# The lease outlasts the provider call by this much, so a claim never lapses mid-call.
LEASE_MARGIN_SECONDS = 5.0
# A send Meta took but Postgres could not record yet is retried at most this far apart.
RECORD_RETRY_MAX_SECONDS = 2.0
# How many earlier replies, one behind another, a send drives through the order gate.
MAX_HELP_DEPTH = 3

Templates = Callable[[], Awaitable[WindowTemplate | None]]


@dataclass(frozen=True, slots=True)
class _Outcome:
    sent: bool
    wamid: str | None = None
    code: int | None = None
    title: str | None = None
    retryable: bool = False
    synced: bool = False  # the messages row already shows this outcome


def _retry_later(title: str) -> _Outcome:
    return _Outcome(False, title=title, retryable=True)


class LedgerSender:
    def __init__(
        self,
        pool: asyncpg.Pool,
        provider: Provider,
        pacer: SendPacer | None,
        templates: Templates,
        *,
        owner: str,
        call_seconds: float,
        unknown_wait_seconds: float,
        unknown_wait: Callable[[], Awaitable[float]] | None = None,
    ) -> None:
        self._pool = pool
        self._provider = provider
        self._pacer = pacer
        self._templates = templates
        self._owner = owner
        self._call_seconds = call_seconds
        self.lease_seconds = call_seconds + LEASE_MARGIN_SECONDS
        self._unknown_wait_seconds = unknown_wait_seconds
        # The wait now, when it follows how late status webhooks arrive (store.webhook_lag).
        self._current_unknown_wait = unknown_wait
        # Long enough to see a lapsed lease and an unknown outcome through in one try.
        self._patience = self.lease_seconds + unknown_wait_seconds + LEASE_MARGIN_SECONDS
        # The common steps of the replies sent at once share their statements.
        self.batched = BatchedLedger(pool, self.lease_seconds)

    async def _unknown_wait(self) -> float:
        if self._current_unknown_wait is None:
            return self._unknown_wait_seconds
        return await self._current_unknown_wait()

    async def deliver(self, request: DeliveryRequest) -> DeliveryResult:
        parts = await self._parts(request)
        if isinstance(parts, DeliveryResult):
            return parts
        outcome = _Outcome(True)
        wamids: list[str] = []
        for part in parts:
            outcome = await self._send_part(request, part)
            if outcome.wamid:
                wamids.append(outcome.wamid)
            if not outcome.sent:
                break
        first = wamids[0] if wamids else None
        if not outcome.synced:
            async with self._pool.acquire() as conn:
                await send_ledger.sync_messages(conn, [request.request_id])
        if outcome.sent:
            return DeliveryResult(request.request_id, ok=True, provider_message_id=first)
        return DeliveryResult(
            request.request_id,
            ok=False,
            error_code=outcome.code,
            error_title=outcome.title,
            retryable=outcome.retryable,
        )

    # -- the parts -------------------------------------------------------------------

    async def _parts(self, request: DeliveryRequest) -> list[Part] | DeliveryResult:
        """The reply's parts, made on its first try from what the window allows."""
        start = await self.batched.start(request.request_id)
        if start is None:
            return DeliveryResult(request.request_id, ok=False, error_title="no such reply")
        if start.parts:
            return start.parts
        facts = start.facts
        if facts.status == MessageStatus.FAILED:
            return DeliveryResult(request.request_id, ok=False, error_title="the reply failed")
        content = request.content
        now = datetime.now(tz=UTC)
        last = facts.last_customer_message_at
        # The template matters only once the window is closed, by our clock or Meta's.
        template = None if window_open(last, now) else await self._templates()
        allowed = choose(content, last, now, template)
        try:
            if allowed is None:
                sandbox = self._provider.name == ProviderName.SANDBOX
                reason = refusal(last, now, sandbox=sandbox)
                log.warning("reply_refused_outside_window", outbound_id=request.request_id,
                            to=mask_phone(request.to), reason=reason)  # fmt: skip
                raise ReEngagementRequired(reason)
            allowed.validate()
        except (ReEngagementRequired, InvalidContent) as exc:
            code = exc.code if isinstance(exc, SendError) else None
            title = exc.title if isinstance(exc, SendError) else str(exc)
            async with self._pool.acquire() as conn:
                await outbound.mark_failed(conn, request.request_id, code, title)
            return DeliveryResult(request.request_id, ok=False, error_code=code, error_title=title)
        if allowed is not content:
            await self._record_template(request.request_id, allowed)
        texts = split_text(allowed.text) if allowed.kind == "text" else [allowed.text]
        payloads = [
            Content.plain(t).to_payload() if allowed.kind == "text" else allowed.to_payload()
            for t in texts
        ]
        # A row sent before the ledger existed: its outcome is known or being awaited.
        state = PartState.PENDING
        if facts.status != MessageStatus.PENDING:
            state = PartState.SENT if facts.provider_message_id else PartState.UNKNOWN
        return await self.batched.create_parts((request.request_id, payloads, state))

    async def _send_part(self, request: DeliveryRequest, part: Part, depth: int = 0) -> _Outcome:
        owner = f"{self._owner}:{uuid.uuid4().hex[:8]}"
        give_up_at = time.monotonic() + self._patience
        # The part was just read: a pending one goes straight to its (conditional) claim.
        fresh: Part | None = part if part.state == PartState.PENDING else None
        while True:
            if fresh is not None:
                current, fresh = fresh, None
            else:
                async with self._pool.acquire() as conn:
                    read = await send_ledger.get(conn, part.id)
                    if read is None:
                        return _Outcome(True)  # dropped: a template went in an earlier part's place
                    if read.state == PartState.CLAIMED and (read.lease_left or 0.0) <= 0:
                        # A lapsed lease is an unknown outcome, never a reason to send again.
                        await send_ledger.expire_leases(conn, part.id)
                        continue
                    if read.state == PartState.UNKNOWN and await send_ledger.reopen(
                        conn, part.id, await self._unknown_wait()
                    ):
                        log.info("send_outcome_unknown_resending", part_id=part.id)
                        continue
                current = read
            if current.state == PartState.SENT:
                return _Outcome(True, wamid=current.provider_message_id)
            if current.state == PartState.FAILED:
                return _Outcome(False, code=current.error_code, title=current.error_title)
            if current.state == PartState.PENDING:
                outcome = await self._claim_and_send(request, current, owner)
                if outcome is None and depth < MAX_HELP_DEPTH:
                    outcome = await self._send_earlier(request, part, depth)
                if outcome is not None:
                    return outcome
                continue
            # Claimed by a live owner, awaiting a status webhook, or behind the order gate.
            if time.monotonic() >= give_up_at:
                return _retry_later(f"part {part.part} is {current.state}: waiting for it")
            await asyncio.sleep(POLL_SECONDS)

    async def _send_earlier(
        self, request: DeliveryRequest, part: Part, depth: int
    ) -> _Outcome | None:
        """The order gate holds this part behind an earlier pending one that nobody may be
        driving (an operator's reply, a holding reply, a try given up): send that first.
        Its claim is as conditional as any, so racing its own sender sends it once."""
        async with self._pool.acquire() as conn:
            blocker = await send_ledger.first_open_before(conn, part.id)
        if blocker is None or blocker.state != PartState.PENDING:
            return None
        # The same conversation, so the same business number and customer.
        earlier = dataclasses.replace(request, request_id=blocker.message_id, reply_context=None)
        helped = await self._send_part(earlier, blocker, depth + 1)
        if not helped.sent and helped.retryable:
            return _retry_later(f"an earlier reply waits: {helped.title}")
        return None

    async def _claim_and_send(
        self, request: DeliveryRequest, part: Part, owner: str
    ) -> _Outcome | None:
        """Send the part under a claim; None when the loop should look at it again."""
        try:
            if self._pacer is not None:
                # One token per part, taken before the claim so the lease covers the call.
                await self._pacer.wait_turn(request.business_number, request.to)
        except PacingTimeout as exc:
            return _retry_later(str(exc))
        # Claimed with its messages row's status in one commit (actors.delivery.batched_ledger).
        if not await self.batched.claim((part, owner)):
            await asyncio.sleep(POLL_SECONDS)  # the gate is closed, or another owner won
            return None
        content = Content.from_payload(part.content, str(part.content.get("text") or ""))
        try:
            try:
                wamid = await self._call(request, part, content)
            except ReEngagementRequired:
                # Meta's clock says the window closed (131047): the template goes instead.
                fallback = as_template(await self._templates())
                if fallback is None or content.kind == "template":
                    raise
                async with self._pool.acquire() as conn:
                    await send_ledger.replace_with_template(
                        conn, part.id, owner, fallback.to_payload()
                    )
                await self._record_template(part.message_id, fallback)
                wamid = await self._call(request, part, fallback)
        except SendError as exc:
            return await self._settle_error(request, part, owner, exc)
        recorded = await self._record_sent(part, owner, wamid)
        if recorded:
            return _Outcome(True, wamid=wamid, synced=True)
        return None  # a webhook got there first: the loop reads back what it recorded

    async def _record_sent(self, part: Part, owner: str, wamid: str) -> bool:
        """Record what Meta took. This process alone knows the wamid now, so an outage of
        Postgres is waited out (while the part can still be in doubt) rather than leaving
        the send to the unknown-outcome path, which would wait and maybe send it again."""
        give_up_at = time.monotonic() + self._patience
        pause = POLL_SECONDS
        while True:
            try:
                # With the messages row and any held MSG91 reports, as one batch of the
                # sends recorded together; an outage fails the batch, and each waits.
                return await self.batched.record_sent((part, owner, wamid))
            except Exception as exc:
                if not is_outage(exc) or time.monotonic() + pause > give_up_at:
                    raise
                log.warning("send_not_recorded_yet", part_id=part.id, error=repr(exc))
                await asyncio.sleep(pause)
                pause = min(pause * 2, RECORD_RETRY_MAX_SECONDS)

    async def _settle_error(
        self, request: DeliveryRequest, part: Part, owner: str, exc: SendError
    ) -> _Outcome | None:
        unknown = isinstance(exc, OutcomeUnknown)
        log.warning(
            "delivery_failed",
            outbound_id=request.request_id,
            part=part.part,
            to=mask_phone(request.to),
            code=exc.code,
            title=exc.title,
            retryable=exc.retryable,
            unknown=unknown,
            provider=self._provider.name,
        )
        async with self._pool.acquire() as conn:
            if unknown:
                await send_ledger.finish_unknown(conn, part.id, owner)
                return None  # wait for its status webhook, bounded
            if exc.retryable:
                await send_ledger.release(conn, part.id, owner)
                return _retry_later(exc.title)
            await send_ledger.finish_failed(conn, part.id, owner, exc.code, exc.title)
            await send_ledger.sync_messages(conn, [part.message_id])
        return _Outcome(False, code=exc.code, title=exc.title)

    async def _call(self, request: DeliveryRequest, part: Part, content: Content) -> str:
        message = OutboundMessage(
            business_number=request.business_number,
            to=request.to,
            content=content,
            callback_data=send_ledger.callback_data(part.message_id, part.part),
            context_message_id=(
                request.reply_context if content.kind != "template" and part.part == 1 else None
            ),
        )
        try:
            # Bounded inside the lease: only the owner of a live claim talks to the provider.
            async with asyncio.timeout(self._call_seconds):
                return await self._provider.send(message)
        except TimeoutError as exc:
            raise OutcomeUnknown("the send outlasted its claim's budget") from exc
        except InvalidContent as exc:
            raise SendError(f"invalid content: {exc}") from exc
        except SendError:
            raise
        except Exception as exc:
            # Not a provider's answer: nothing says the request did not go out.
            log.exception("send_raised", part_id=part.id)
            raise OutcomeUnknown(f"the send raised {exc!r}") from exc

    async def _record_template(self, outbound_id: int, sent: Content) -> None:
        # The dashboard and the API show that a template went instead of the text.
        payload: dict[str, Any] = sent.to_payload()
        async with self._pool.acquire() as conn:
            await outbound.record_template(conn, outbound_id, payload, sent.text)
