"""One customer turn: what the bot does with one inbound message, and what it answers.

In order: the message's effect on earlier ones (reaction, edit, revoke), which is all a
non-conversational message (those, and system notices) ever does; whether the bot
may answer at all (a person has the conversation, or it returns to the bot after idling);
the per-phone abuse limit; the customer asking for a person; scripted flows; then the
reply policy by message type, with the LLM pool for free text.

It writes nothing: it returns a TurnPlan (actors.conversation.turn_plan), which the
conversation commits in one transaction after the LLM has answered.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from actors.conversation.abuse_limit import SLOW_DOWN, AbuseLimit, Verdict
from actors.conversation.flows.engine import FlowOutcome, TurnInput
from actors.conversation.flows.source import FlowSource
from actors.conversation.reply_policy import NOT_CONVERSATIONAL, TEXTUAL, decide
from actors.conversation.turn_plan import FlowStep, MessageUpdate, TurnPlan
from actors.wire import LLMRequest, LLMResult
from config import Settings
from config.vocabulary import ConversationState, MessageType
from store.inbox import WorkState
from store.outbound import NewReply
from store.records import ConversationSnapshot, InboxItem

HANDOFF_REPLY = (
    "Thanks! I've asked a member of our team to take over. They will answer you here shortly."
)

AskLLM = Callable[[LLMRequest], Awaitable[LLMResult]]


class TurnPlanner:
    def __init__(
        self,
        settings: Settings,
        abuse: AbuseLimit,
        ask_llm: AskLLM,
        flows: FlowSource | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(tz=UTC),
    ) -> None:
        self._settings = settings
        self._abuse = abuse
        self._ask_llm = ask_llm
        self._flows = flows
        self._clock = clock
        words = "|".join(re.escape(w) for w in settings.handoff_keywords if w.strip())
        self._handoff = re.compile(rf"\b({words})\b", re.IGNORECASE) if words else None

    async def plan(
        self, item: InboxItem, work: WorkState, snapshot: ConversationSnapshot
    ) -> TurnPlan:
        """What this message does and the reply to reserve (None for no reply)."""
        plan = TurnPlan(updates=_updates_of(item))
        if item.type in NOT_CONVERSATIONAL:
            return plan
        if not self._bot_may_answer(work, plan):
            return plan
        verdict = await self._abuse.check(
            item.business_number, item.customer_phone, item.message_id
        )
        if verdict is Verdict.DROP:
            return plan
        if verdict is Verdict.WARN:
            plan.reply = self._canned(item, SLOW_DOWN)
            return plan
        if self._asks_for_person(item):
            plan.handoff = "customer_asked"
            plan.reply = self._canned(item, HANDOFF_REPLY)
            return plan
        if self._flows is not None:
            scripted = await self._run_flows(item, work, plan)
            if scripted is not None:
                plan.reply = await self._from_flow(item, snapshot, scripted, plan)
                return plan
        decision = decide(item)
        if decision.kind == "canned":
            plan.reply = self._canned(item, decision.text)
        elif decision.kind != "none":
            plan.reply = await self._llm_reply(item, snapshot, decision.text, plan)
        return plan

    def _bot_may_answer(self, work: WorkState, plan: TurnPlan) -> bool:
        if work.conversation_state == ConversationState.BOT:
            return True
        idle_limit = self._settings.human_idle_return_seconds
        if (
            work.conversation_state == ConversationState.HUMAN
            and idle_limit > 0
            and work.human_idle_seconds is not None
            and work.human_idle_seconds >= idle_limit
        ):
            # Nobody answered for a long while: the bot takes the conversation back.
            plan.return_to_bot = True
            return True
        return False

    def _asks_for_person(self, item: InboxItem) -> bool:
        return (
            self._handoff is not None
            and item.type == MessageType.TEXT
            and bool(item.text)
            and self._handoff.search(item.text or "") is not None
        )

    def _canned(self, item: InboxItem, text: str) -> NewReply:
        return NewReply(
            item.conversation_id, item.message_id, text, provider=self._settings.delivery_provider
        )

    async def _run_flows(
        self, item: InboxItem, work: WorkState, plan: TurnPlan
    ) -> FlowOutcome | None:
        assert self._flows is not None
        engine = await self._flows.engine()
        turn = TurnInput(
            text=item.text if item.type in TEXTUAL else None,
            choice_id=choice_id(item.payload),
            first_message=work.first_message,
            now=self._clock(),
        )
        variables = {k: str(v) for k, v in (work.variables or {}).items()}
        outcome = engine.respond(turn, work.flow_state, variables)
        if outcome is not None and (
            outcome.variables != variables or outcome.pending != work.flow_state
        ):
            plan.flow = FlowStep(outcome.variables, outcome.pending)
        return outcome

    async def _from_flow(
        self, item: InboxItem, snapshot: ConversationSnapshot, outcome: FlowOutcome, plan: TurnPlan
    ) -> NewReply | None:
        if outcome.handoff:
            plan.handoff = f"flow:{outcome.flow}"
        if outcome.to_llm and item.text:
            reply = await self._llm_reply(item, snapshot, item.text, plan)
            if outcome.content is not None:
                reply = replace(reply, text=f"{outcome.content.text}\n\n{reply.text}")
            return reply
        if outcome.content is None:
            return None
        content = outcome.content
        return NewReply(
            item.conversation_id,
            item.message_id,
            content.text,
            content=content.to_payload() if content.kind != "text" else None,
            provider=self._settings.delivery_provider,
        )

    async def _llm_reply(
        self, item: InboxItem, snapshot: ConversationSnapshot, text: str, plan: TurnPlan
    ) -> NewReply:
        result = await self._ask_llm(
            LLMRequest(item.message_id, tuple(snapshot.history), text, trace=trace_of(item))
        )
        if not result.ok:
            # Every model failed: the customer gets the polite message, and a person takes
            # the conversation from here.
            plan.handoff = "llm_unavailable"
        return NewReply(
            conversation_id=item.conversation_id,
            reply_to_id=item.message_id,
            text=result.text,
            model=result.model,
            prompt_tokens=result.prompt_tokens,
            completion_tokens=result.completion_tokens,
            cost=result.cost,
            attempts=result.attempts,
            latency_ms=result.latency_ms,
            provider=self._settings.delivery_provider,
        )


def _updates_of(item: InboxItem) -> list[MessageUpdate]:
    """The message's effect on an earlier one: a reaction, an edit or a revoke."""
    payload: dict[str, Any] = item.payload
    if item.type == MessageType.REACTION:
        reaction = payload.get("reaction") or {}
        if target := reaction.get("message_id"):
            return [MessageUpdate("reaction", target, reaction.get("emoji"))]
    elif item.type == MessageType.EDIT:
        if target := (payload.get("edit") or {}).get("original_message_id"):
            return [MessageUpdate("edit", target, item.text)]
    elif item.type == MessageType.REVOKE:
        if target := (payload.get("revoke") or {}).get("original_message_id"):
            return [MessageUpdate("revoke", target)]
    return []


def trace_of(item: InboxItem) -> str:
    """The id logs carry for this message: its webhook's request id, else its inbox id."""
    return item.request_id or f"inbox-{item.message_id}"


def choice_id(payload: dict[str, Any]) -> str | None:
    """The id of the button or list row the customer tapped, if this message is one."""
    interactive = payload.get("interactive") or {}
    for kind in ("button_reply", "list_reply"):
        if isinstance(interactive.get(kind), dict) and interactive[kind].get("id"):
            return str(interactive[kind]["id"])
    button = payload.get("button") or {}
    return str(button["payload"]) if button.get("payload") else None
