"""Operators acting on a conversation: reply, assign, hand off, return to the bot, close,
labels. Each change is announced as a live event so every open dashboard follows."""

from __future__ import annotations

import structlog
from pydantic import BaseModel, Field

from actors.wire import Content, DeliveryRequest, DeliveryResult
from config.vocabulary import MessageStatus
from gateway.api.conversations import (
    LABEL_PATTERN,
    ConversationOut,
    MessageOut,
    load_conversation,
)
from gateway.api.routing import ApiError, Call, Endpoint
from store import agent_actions, dead_letters, inbox, live_events, users
from store import conversation_views as views

log = structlog.get_logger(__name__)

DELIVERY_TIMEOUT_SECONDS = 60.0


class ReplyBody(BaseModel):
    text: str = Field(min_length=1, max_length=4096)  # Meta's text body limit


class ReplyOut(BaseModel):
    message: MessageOut
    delivered: bool
    error_code: int | None = None
    error_title: str | None = None


class AssignBody(BaseModel):
    user_id: int | None = Field(default=None, ge=1, le=2**63 - 1, description="null unassigns")


class HandoffBody(BaseModel):
    reason: str = Field(default="taken over by an operator", min_length=1, max_length=200)


class LabelBody(BaseModel):
    label: str = Field(pattern=LABEL_PATTERN)


async def _announce(call: Call, conversation_id: int, what: str) -> ConversationOut:
    row = await load_conversation(call, conversation_id)
    services = call.services
    await live_events.publish(
        services.redis,
        services.settings.redis_key_prefix,
        "conversation.updated",
        conversation_id=conversation_id,
        state=row.state,
        change=what,
    )
    return ConversationOut.of(row)


async def _deliver(call: Call, request: DeliveryRequest) -> DeliveryResult:
    actors = call.services.actors
    if actors is None or not actors.delivery:
        raise ApiError(503, "delivery actors are not attached to this gateway")
    return await actors.send_reply(request, wait=DELIVERY_TIMEOUT_SECONDS)


async def reply(call: Call) -> ReplyOut:
    body: ReplyBody = call.body
    conversation_id = call.ids["conversation_id"]
    services = call.services
    if services.actors is None:
        raise ApiError(503, "delivery actors are not attached to this gateway")
    pool = await services.pools.get()
    async with pool.acquire() as conn:
        target = await agent_actions.reply_target(conn, conversation_id)
        if target is None:
            raise ApiError(404, "no such conversation")
        if not target.within_window:
            raise ApiError(
                409,
                "the customer's last message is more than 24 hours old: WhatsApp allows "
                "only an approved template now, not a free-form reply",
            )
        message_id = await agent_actions.insert_agent_reply(
            conn,
            target,
            body.text,
            call.user.user_id,
            provider=services.settings.delivery_provider,
        )
    log.info("operator_reply", conversation_id=conversation_id, message_id=message_id)
    await live_events.publish(
        services.redis,
        services.settings.redis_key_prefix,
        "message.new",
        conversation_id=conversation_id,
        message_id=message_id,
        direction="outbound",
    )
    result = await _deliver(
        call,
        DeliveryRequest(
            message_id, target.business_number, target.customer_phone, Content.plain(body.text)
        ),
    )
    async with pool.acquire() as conn:
        rows = await views.messages_page(conn, conversation_id, before_id=message_id + 1, limit=1)
    return ReplyOut(
        message=MessageOut.of(rows[-1]),
        delivered=result.ok,
        error_code=result.error_code,
        error_title=result.error_title,
    )


async def assign(call: Call) -> ConversationOut:
    body: AssignBody = call.body
    conversation_id = call.ids["conversation_id"]
    pool = await call.services.pools.get()
    async with pool.acquire() as conn:
        if body.user_id is not None and await users.by_id(conn, body.user_id) is None:
            raise ApiError(422, "no such operator")
        if not await agent_actions.assign(conn, conversation_id, body.user_id):
            raise ApiError(404, "no such conversation")
    return await _announce(call, conversation_id, "assigned")


async def handoff(call: Call) -> ConversationOut:
    body: HandoffBody = call.body
    conversation_id = call.ids["conversation_id"]
    pool = await call.services.pools.get()
    async with pool.acquire() as conn:
        done = await agent_actions.hand_to_human(
            conn, conversation_id, reason=body.reason, assign_to=call.user.user_id
        )
    if not done:
        raise ApiError(404, "no such conversation")
    return await _announce(call, conversation_id, "handoff")


async def return_to_bot(call: Call) -> ConversationOut:
    conversation_id = call.ids["conversation_id"]
    pool = await call.services.pools.get()
    async with pool.acquire() as conn:
        if not await agent_actions.return_to_bot(conn, conversation_id):
            raise ApiError(404, "no such conversation")
    return await _announce(call, conversation_id, "returned_to_bot")


async def close(call: Call) -> ConversationOut:
    conversation_id = call.ids["conversation_id"]
    pool = await call.services.pools.get()
    async with pool.acquire() as conn:
        if not await agent_actions.close(conn, conversation_id):
            raise ApiError(404, "no such conversation")
    return await _announce(call, conversation_id, "closed")


async def add_label(call: Call) -> ConversationOut:
    body: LabelBody = call.body
    conversation_id = call.ids["conversation_id"]
    pool = await call.services.pools.get()
    async with pool.acquire() as conn:
        if not await agent_actions.add_label(conn, conversation_id, body.label):
            raise ApiError(404, "no such conversation")
    return await _announce(call, conversation_id, "labels")


async def remove_label(call: Call) -> ConversationOut:
    label = call.request.match_info["label"]
    conversation_id = call.ids["conversation_id"]
    pool = await call.services.pools.get()
    async with pool.acquire() as conn:
        if not await agent_actions.remove_label(conn, conversation_id, label):
            raise ApiError(404, "no such conversation")
    return await _announce(call, conversation_id, "labels")


async def retry_message(call: Call) -> MessageOut:
    """A dead letter goes back to the shards with its tries reset, in its inbox place."""
    conversation_id, message_id = call.ids["conversation_id"], call.ids["message_id"]
    pool = await call.services.pools.get()
    async with pool.acquire() as conn:
        status = await dead_letters.status_of(conn, conversation_id, message_id)
        if status is None:
            raise ApiError(404, "no such inbound message in this conversation")
        if status != MessageStatus.DEAD or not await dead_letters.retry(
            conn, conversation_id, message_id
        ):
            raise ApiError(409, f"only a dead message is retried; this one is {status}")
        item = await inbox.item(conn, message_id)
        [row] = await views.messages_page(conn, conversation_id, before_id=message_id + 1, limit=1)
    assert item is not None
    call.services.dispatcher.submit([item])
    log.info("dead_letter_retried", message_id=message_id, by=call.user.user_id)
    await _announce(call, conversation_id, "retry")
    return MessageOut.of(row)


_C = "/api/conversations/{conversation_id}"
ENDPOINTS = [
    Endpoint("POST", f"{_C}/reply", reply,
             "Send an operator reply through the delivery actor (24-hour window applies)",
             "actions", body=ReplyBody, response=ReplyOut, status=201, errors=(404, 409, 503)),
    Endpoint("POST", f"{_C}/assign", assign, "Assign to an operator, or unassign with null",
             "actions", body=AssignBody, response=ConversationOut, errors=(404, 422)),
    Endpoint("POST", f"{_C}/handoff", handoff,
             "Take over: the bot stops answering; the caller is assigned if nobody is",
             "actions", body=HandoffBody, response=ConversationOut, errors=(404,)),
    Endpoint("POST", f"{_C}/return", return_to_bot, "Hand back to the bot", "actions",
             response=ConversationOut, errors=(404,)),
    Endpoint("POST", f"{_C}/close", close, "Close the conversation", "actions",
             response=ConversationOut, errors=(404,)),
    Endpoint("POST", f"{_C}/labels", add_label, "Add a label", "actions", body=LabelBody,
             response=ConversationOut, errors=(404,)),
    Endpoint("DELETE", f"{_C}/labels/{{label}}", remove_label, "Remove a label", "actions",
             response=ConversationOut, errors=(404,)),
    Endpoint("POST", f"{_C}/messages/{{message_id}}/retry", retry_message,
             "Retry a dead message: its tries are reset and it is routed to the bot again",
             "actions", response=MessageOut, errors=(404, 409)),
]  # fmt: skip
