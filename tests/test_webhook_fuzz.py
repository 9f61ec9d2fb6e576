"""The webhook fuzzed (issue 11 §4): bodies generated from our own models, with extra fields,
wrong types, huge strings, deep nesting and unicode, signed and posted as Meta would.

Never a 5xx: a 200, or a 4xx for a body that is no webhook at all. Every well-formed
message in an answered body is stored, whatever its siblings hold, and afterwards the
service still answers a customer.
"""

from __future__ import annotations

import asyncio
import json
import types
from collections.abc import Coroutine
from inspect import isclass
from typing import Annotated, Any, TypeVar, Union, get_args, get_origin

import asyncpg
import httpx
import orjson
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from pydantic import BaseModel

from fakes.graph_api import GraphApiFake
from gateway.app import WEBHOOK_PATH
from gateway.signature import HEADER, sign
from gateway.whatsapp.models import Message, Status
from tests.conftest import APP_SECRET
from tests.support import (
    WebhookClient,
    envelope,
    eventually,
    new_phone,
    text_message,
)

EXAMPLES = 60
KNOWN_TYPES = ["text", "image", "audio", "video", "document", "sticker", "location",
               "contacts", "interactive", "button", "order", "reaction", "system", "edit",
               "revoke", "unsupported", "request_welcome", "a_new_type"]  # fmt: skip
# Past orjson's 254 levels: such a body cannot be stored, and is refused with a 4xx.
TOO_DEEP = 254

T = TypeVar("T")

texts = st.text(max_size=40) | st.sampled_from(["", "\x00", "a\x00b", "²³.¹", "٣", "🙂" * 3,
                                                "\u202egnirts", "\ufeff", "null"])  # fmt: skip
json_leaves = (
    st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False) | texts
)  # fmt: skip
json_values = st.recursive(
    json_leaves,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(texts, inner, max_size=3),
    max_leaves=12,
)

# Drawn, not random: hypothesis replays and shrinks examples. Fuzz phones start with 47,
# apart from other tests' customers (49...).
wamids = st.uuids().map(lambda u: f"wamid.FUZZ{u.hex}")
phones = st.integers(10**9, 10**10 - 1).map(lambda n: f"47{n}")


def from_annotation(tp: Any) -> st.SearchStrategy[Any]:
    """Values of a model field's type, the way Meta could send them."""
    origin, args = get_origin(tp), get_args(tp)
    if origin is Annotated:  # the edge's limits: generated past them too, now and then
        return from_annotation(args[0])
    if origin in (Union, types.UnionType):
        return st.one_of(*(from_annotation(a) for a in args))
    if tp is type(None):
        return st.none()
    if tp is str:
        return texts
    if tp is bool:
        return st.booleans()
    if tp is int:
        return st.integers(-(2**31), 2**31 - 1)
    if tp is float:
        return st.floats(-90, 90) | st.floats(-90, 90).map(str)
    if origin is list:
        return st.lists(from_annotation(args[0]), max_size=2)
    if origin is dict or tp is Any:
        return st.dictionaries(texts, json_values, max_size=3) if origin is dict else json_values
    if isclass(tp) and issubclass(tp, BaseModel):
        return from_model(tp)
    raise AssertionError(f"no strategy for {tp!r}")


def from_model(model: type[BaseModel]) -> st.SearchStrategy[dict[str, Any]]:
    required, optional = {}, {}
    for name, info in model.model_fields.items():
        target = required if info.is_required() else optional
        target[info.alias or name] = from_annotation(info.annotation)
    return st.fixed_dictionaries(required, optional=optional)


def well_formed(draw: st.DrawFn, phone: str) -> dict[str, Any]:
    """A message valid by our model, with the envelope facts a real one always has."""
    sent = draw(from_model(Message))
    sent.pop("user_id", None)
    sent.pop("parent_user_id", None)
    sent["from"] = phone
    sent["id"] = draw(wamids)
    sent["type"] = draw(st.sampled_from(KNOWN_TYPES))
    sent["timestamp"] = draw(st.integers(0, 2**40) | st.integers(0, 2**33).map(str) | texts)
    return sent


def mutated(draw: st.DrawFn, sent: dict[str, Any]) -> tuple[dict[str, Any], bool]:
    """A copy made hostile; and whether it nests too deeply to be stored."""
    hostile = dict(sent)
    deep = False
    for _ in range(draw(st.integers(1, 3))):
        how = draw(st.sampled_from(["extra", "wrong_type", "huge", "deep", "drop"]))
        key = draw(st.sampled_from(sorted(hostile) or ["id"]))
        if how == "extra":
            hostile[draw(texts)] = draw(json_values)
        elif how == "wrong_type":
            hostile[key] = draw(json_values)
        elif how == "huge":
            hostile[key] = draw(st.sampled_from(["é", "7", "\x00", "A"])) * draw(
                st.integers(10_000, 200_000)
            )
        elif how == "deep":
            depth = draw(st.integers(20, 300))
            nested: Any = draw(json_leaves)
            for _ in range(depth):
                nested = [nested] if draw(st.booleans()) else {"k": nested}
            hostile[key] = nested
            deep = deep or depth + 6 >= TOO_DEEP
        else:
            hostile.pop(key, None)
    return hostile, deep


@st.composite
def bodies(draw: st.DrawFn) -> tuple[dict[str, Any], list[str], bool]:
    """A body, the wamids of its well-formed messages, and whether it may be refused."""
    good = [well_formed(draw, draw(phones)) for _ in range(draw(st.integers(1, 3)))]
    hostile: list[dict[str, Any]] = []
    deep = False
    for base in draw(st.lists(st.sampled_from(good), max_size=3)):
        copy, too_deep = mutated(draw, {**base, "id": draw(wamids)})
        hostile.append(copy)
        deep = deep or too_deep
    statuses = draw(st.lists(from_model(Status), max_size=2))
    messages = draw(st.permutations(good + hostile))
    payload = envelope(messages, statuses)
    if draw(st.booleans()):  # another field in the same entry, shaped anyhow
        payload["entry"][0]["changes"].append(
            {"field": draw(texts), "value": draw(st.dictionaries(texts, json_values, max_size=3))}
        )
    return payload, [m["id"] for m in good], deep


def _run(loop: asyncio.AbstractEventLoop, coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run_coroutine_threadsafe(coro, loop).result(30)


async def _missing(db: asyncpg.Pool, wamids: list[str]) -> list[str]:
    rows = await db.fetch(
        "SELECT provider_message_id FROM messages WHERE provider_message_id = ANY($1)", wamids
    )
    found = {r["provider_message_id"] for r in rows}
    return [w for w in wamids if w not in found]


async def test_generated_webhooks_never_get_a_5xx_and_every_well_formed_message_is_stored(
    gateway: str, webhooks: WebhookClient, graph: GraphApiFake, db: asyncpg.Pool
) -> None:
    loop = asyncio.get_running_loop()
    failures: list[str] = []

    def fuzz() -> None:
        with httpx.Client(base_url=gateway, timeout=30) as client:

            @given(case=bodies())
            @hypothesis_settings(
                max_examples=EXAMPLES,
                deadline=None,
                derandomize=True,
                database=None,
                suppress_health_check=list(HealthCheck),
            )
            def one(case: tuple[dict[str, Any], list[str], bool]) -> None:
                payload, wamids, deep = case
                raw = orjson.dumps(payload) if not deep else _dumps_deep(payload)
                response = client.post(
                    WEBHOOK_PATH,
                    content=raw,
                    headers={"Content-Type": "application/json", HEADER: sign(raw, APP_SECRET)},
                )
                assert response.status_code < 500, response.text
                if response.status_code != 200:
                    too_large = len(raw) > 1024 * 1024
                    assert deep or too_large, (response.status_code, response.text)
                    return
                missing = _run(loop, _missing(db, wamids))
                assert missing == [], (missing, response.text)

            try:
                one()
            except Exception as exc:
                failures.append(repr(exc)[:3000])

    await asyncio.to_thread(fuzz)
    assert failures == [], failures[0]

    # The service keeps answering: a customer writing now gets the usual reply.
    phone = new_phone()
    response = await webhooks.post(envelope([text_message(phone, "still there?")]))
    assert response.status_code == 200, response.text

    async def answered() -> bool:
        return any(m.text == "Echo: still there?" for m in graph.messages_to(phone))

    await eventually(answered, within=20)


async def test_any_json_at_all_gets_a_200_or_a_4xx(gateway: str) -> None:
    def fuzz() -> None:
        with httpx.Client(base_url=gateway, timeout=30) as client:

            @given(
                body=json_values
                | st.fixed_dictionaries(
                    {
                        "object": st.just("whatsapp_business_account") | texts,
                        "entry": st.lists(json_values, max_size=3) | json_values,
                    }
                )
            )
            @hypothesis_settings(
                max_examples=EXAMPLES,
                deadline=None,
                derandomize=True,
                database=None,
                suppress_health_check=list(HealthCheck),
            )
            def one(body: Any) -> None:
                raw = orjson.dumps(body)
                response = client.post(
                    WEBHOOK_PATH,
                    content=raw,
                    headers={"Content-Type": "application/json", HEADER: sign(raw, APP_SECRET)},
                )
                assert response.status_code in (200, 400), response.text

            one()  # fmt: skip

    await asyncio.to_thread(fuzz)


def _dumps_deep(payload: Any) -> bytes:
    """JSON for a body orjson will not write (over 254 levels)."""
    return json.dumps(payload, ensure_ascii=False).encode()
