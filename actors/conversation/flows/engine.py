"""Runs the flows: picks the flow a turn triggers, executes its actions, keeps asking state.

One turn yields at most one reply (the exactly-one-reply contract): texts of consecutive
`reply` actions are joined, and a reply with buttons or a list, a question (`ask`), a
handoff or a hand-over to the LLM ends the turn.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from actors.conversation.flows.hours import is_open
from actors.conversation.flows.schema import Action, Flow, FlowsFile, Trigger
from actors.wire import Choice, Content

CLOSED_NOTICE = "_closed_notice_day"
_PLACEHOLDER = re.compile(r"\{([a-z_][a-z0-9_]*)\}")


@dataclass(frozen=True, slots=True)
class TurnInput:
    text: str | None
    choice_id: str | None  # the id of a tapped button or list row
    first_message: bool
    now: datetime


@dataclass(slots=True)
class FlowOutcome:
    content: Content | None = None
    handoff: bool = False
    to_llm: bool = False
    pending: dict[str, Any] | None = None  # {"flow", "step", "field"} while a question waits
    variables: dict[str, str] = field(default_factory=dict)
    flow: str | None = None


def _fill(text: str, variables: dict[str, str]) -> str:
    return _PLACEHOLDER.sub(lambda m: variables.get(m.group(1), m.group(0)), text)


def _rank(trigger: Trigger, turn: TurnInput, closed: bool) -> tuple[int, int] | None:
    """How well a trigger fits this turn (lower wins), or None when it does not fire.

    A tapped button is what the customer chose exactly; then words, the longest matching
    phrase first ("when are you open" beats "hi"); then situations.
    """
    if turn.choice_id is not None and turn.choice_id in trigger.button:
        return (0, 0)
    text = (turn.text or "").strip()
    if text:
        matched = [
            k
            for k in trigger.keyword
            if re.search(rf"(?<!\w){re.escape(k)}(?!\w)", text, re.IGNORECASE)
        ]
        if matched:
            return (1, -max(len(k) for k in matched))
        if trigger.regex and re.search(trigger.regex, text, re.IGNORECASE):
            return (1, 0)
    if trigger.outside_hours and closed:
        return (2, 0)
    if trigger.first_message and turn.first_message:
        return (3, 0)
    return None


class FlowEngine:
    def __init__(self, flows: FlowsFile) -> None:
        self.flows = flows
        self._by_name = {f.name: f for f in flows.flows}

    def closed(self, now: datetime) -> bool:
        hours = self.flows.business_hours
        return hours is not None and bool(hours.weekly) and not is_open(hours, now)

    def respond(
        self, turn: TurnInput, pending: dict[str, Any] | None, variables: dict[str, str]
    ) -> FlowOutcome | None:
        """The flows' answer to this turn, or None when no flow handles it."""
        variables = dict(variables)
        if pending and (flow := self._by_name.get(str(pending.get("flow")))) is not None:
            step = int(pending.get("step", 0))
            ask = flow.actions[step].ask if step < len(flow.actions) else None
            if ask is not None:
                answer = (turn.text or "").strip()
                if not answer or (ask.pattern and not re.fullmatch(ask.pattern, answer)):
                    return FlowOutcome(
                        content=Content.plain(_fill(ask.retry, variables)),
                        pending=pending,
                        variables=variables,
                        flow=flow.name,
                    )
                variables[ask.field] = answer
                return self._run(flow, step + 1, variables)
        closed = self.closed(turn.now) and not self._told_closed_today(turn.now, variables)
        fired = [
            (rank, position, flow)
            for position, flow in enumerate(self.flows.flows)
            if (rank := _rank(flow.trigger, turn, closed)) is not None
        ]
        if fired:
            rank, _, flow = min(fired, key=lambda f: (f[0], f[1]))
            if rank[0] == 2:
                self._remember_told_closed(turn.now, variables)
            return self._run(flow, 0, variables)
        hours = self.flows.business_hours
        if closed and hours is not None and hours.closed_reply:
            self._remember_told_closed(turn.now, variables)
            return FlowOutcome(content=Content.plain(hours.closed_reply), variables=variables)
        return None

    # The closed-hours notice goes out once a day per conversation, not on every message.
    def _local_day(self, now: datetime) -> str:
        hours = self.flows.business_hours
        zone = ZoneInfo(hours.timezone if hours is not None else "UTC")
        return now.astimezone(zone).date().isoformat()

    def _told_closed_today(self, now: datetime, variables: dict[str, str]) -> bool:
        return variables.get(CLOSED_NOTICE) == self._local_day(now)

    def _remember_told_closed(self, now: datetime, variables: dict[str, str]) -> None:
        variables[CLOSED_NOTICE] = self._local_day(now)

    def _run(self, flow: Flow, start: int, variables: dict[str, str]) -> FlowOutcome:
        texts: list[str] = []
        outcome = FlowOutcome(variables=variables, flow=flow.name)
        for step in range(start, len(flow.actions)):
            action: Action = flow.actions[step]
            if action.reply is not None:
                texts.append(_fill(action.reply, variables))
            elif action.set is not None:
                variables.update({k: _fill(v, variables) for k, v in action.set.items()})
            elif action.ask is not None:
                texts.append(_fill(action.ask.prompt, variables))
                outcome.pending = {"flow": flow.name, "step": step, "field": action.ask.field}
                break
            elif action.reply_buttons is not None:
                spec = action.reply_buttons
                outcome.content = Content(
                    "buttons",
                    "\n\n".join([*texts, _fill(spec.text, variables)]),
                    tuple(Choice(b.id, b.title) for b in spec.buttons),
                ).validate()
                return outcome
            elif action.reply_list is not None:
                spec_list = action.reply_list
                outcome.content = Content(
                    "list",
                    "\n\n".join([*texts, _fill(spec_list.text, variables)]),
                    tuple(Choice(r.id, r.title, r.description) for r in spec_list.rows),
                    list_button=spec_list.button,
                ).validate()
                return outcome
            elif action.handoff is not None:
                texts.append(_fill(action.handoff, variables))
                outcome.handoff = True
                break
            elif action.llm:
                # Texts before it open the LLM's answer (still one message this turn).
                outcome.to_llm = True
                break
        if texts:
            outcome.content = Content.plain("\n\n".join(texts))
        return outcome
