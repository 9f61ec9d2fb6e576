"""Specification of the local fakes of Meta's Cloud API and OpenRouter.

Each test drives a fake over real HTTP, the way production code will.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
from aiohttp import web

from fakes.graph_api import GraphApiFake
from fakes.openrouter import OpenRouterFake
from fakes.server import FakeServer

PHONE_ID = "106540352242922"
SEND_PATH = f"/v21.0/{PHONE_ID}/messages"
CHAT_PATH = "/api/v1/chat/completions"


@asynccontextmanager
async def serving(
    app: web.Application, *, client_timeout: float = 5.0, headers: dict[str, str] | None = None
) -> AsyncIterator[httpx.AsyncClient]:
    async with (
        FakeServer(app) as srv,
        httpx.AsyncClient(base_url=srv.url, timeout=client_timeout, headers=headers) as client,
    ):
        yield client


def text_message(to: str = "15551234567", body: str = "hello", **extra: Any) -> dict[str, Any]:
    return {
        "messaging_product": "whatsapp",
        "recipient_type": "individual",
        "to": to,
        "type": "text",
        "text": {"body": body, "preview_url": False},
        **extra,
    }


def chat(model: str = "openai/gpt-4o-mini", user: str = "where is my order?") -> dict[str, Any]:
    return {
        "model": model,
        "messages": [
            {"role": "system", "content": "You are a support agent."},
            {"role": "user", "content": user},
        ],
        "max_tokens": 200,
        "temperature": 0.2,
    }


# -- Meta WhatsApp Cloud API ---------------------------------------------------


async def test_text_send_is_recorded_and_answered_with_a_wamid() -> None:
    fake = GraphApiFake()
    async with serving(fake.app) as client:
        response = await client.post(
            SEND_PATH,
            json=text_message(
                "+1 555 123 4567",
                biz_opaque_callback_data="conv-7",
                context={"message_id": "wamid.IN"},
            ),
        )

    assert response.status_code == 200
    body = response.json()
    wamid = body["messages"][0]["id"]
    assert wamid.startswith("wamid.")
    assert body["messaging_product"] == "whatsapp"
    assert body["contacts"] == [{"input": "+1 555 123 4567", "wa_id": "15551234567"}]
    [sent] = fake.sent
    assert (sent.phone_number_id, sent.to, sent.type, sent.text) == (
        PHONE_ID,
        "+1 555 123 4567",
        "text",
        "hello",
    )
    assert sent.wamid == wamid
    assert sent.biz_opaque_callback_data == "conv-7"
    assert sent.reply_to == "wamid.IN"
    assert fake.messages_to("+1 555 123 4567") == [sent]
    assert fake.message(wamid) is sent


async def test_wamids_are_unique_and_wait_for_sees_concurrent_sends() -> None:
    fake = GraphApiFake()
    async with serving(fake.app) as client:
        waiter = asyncio.create_task(fake.wait_for(5, timeout=5))
        await asyncio.gather(*(client.post(SEND_PATH, json=text_message(str(i))) for i in range(5)))
        sent = await waiter
        with pytest.raises(TimeoutError, match="expected 6"):
            await fake.wait_for(6, timeout=0.05)

    assert len({message.wamid for message in sent}) == 5


async def test_other_message_types_are_accepted_when_their_object_is_present() -> None:
    fake = GraphApiFake()
    template = {"name": "order_update", "language": {"code": "en_US"}}
    async with serving(fake.app) as client:
        ok = await client.post(
            SEND_PATH,
            json={
                "messaging_product": "whatsapp",
                "to": "1",
                "type": "template",
                "template": template,
            },
        )
        missing = await client.post(
            SEND_PATH, json={"messaging_product": "whatsapp", "to": "1", "type": "image"}
        )

    assert ok.status_code == 200
    assert ok.json()["messages"][0]["message_status"] == "accepted"
    assert fake.sent[0].text is None
    assert missing.status_code == 400


@pytest.mark.parametrize(
    ("payload", "detail"),
    [
        (text_message(body="x" * 4097), "at most 4096"),
        (text_message(body=""), "text['body']"),
        ({**text_message(), "messaging_product": "sms"}, "messaging_product"),
        ({k: v for k, v in text_message().items() if k != "to"}, "to is required"),
        ({k: v for k, v in text_message().items() if k != "type"}, "type is required"),
    ],
)
async def test_invalid_send_gets_meta_code_100(payload: dict[str, Any], detail: str) -> None:
    fake = GraphApiFake()
    async with serving(fake.app) as client:
        response = await client.post(SEND_PATH, json=payload)

    assert response.status_code == 400
    error = response.json()["error"]
    assert (error["code"], error["type"], error["message"]) == (
        100,
        "OAuthException",
        "(#100) Invalid parameter",
    )
    assert error["error_data"]["messaging_product"] == "whatsapp"
    assert detail in error["error_data"]["details"]
    assert error["fbtrace_id"]
    assert fake.sent == []


async def test_text_of_exactly_4096_chars_is_accepted() -> None:
    fake = GraphApiFake()
    async with serving(fake.app) as client:
        response = await client.post(SEND_PATH, json=text_message(body="x" * 4096))
    assert response.status_code == 200


async def test_queued_rate_limit_error_uses_meta_envelope_then_next_send_succeeds() -> None:
    fake = GraphApiFake()
    fake.fail_next(1, status=400, code=130429, title="Rate limit hit", retry_after=2, subcode=7)
    async with serving(fake.app) as client:
        failed = await client.post(SEND_PATH, json=text_message())
        succeeded = await client.post(SEND_PATH, json=text_message())

    assert failed.status_code == 400
    assert failed.headers["Retry-After"] == "2"
    error = failed.json()["error"]
    assert error["code"] == 130429
    assert error["message"] == "(#130429) Rate limit hit"
    assert error["type"] == "OAuthException"
    assert error["error_data"] == {"messaging_product": "whatsapp", "details": "Rate limit hit"}
    assert error["error_subcode"] == 7
    assert error["fbtrace_id"]
    assert succeeded.status_code == 200
    assert len(fake.sent) == 1
    assert fake.attempts == 2


async def test_bearer_token_is_enforced() -> None:
    fake = GraphApiFake(access_token="EAAG-good")
    async with serving(fake.app) as client:
        missing = await client.post(SEND_PATH, json=text_message())
        wrong = await client.post(
            SEND_PATH, json=text_message(), headers={"Authorization": "Bearer nope"}
        )
        right = await client.post(
            SEND_PATH, json=text_message(), headers={"Authorization": "Bearer EAAG-good"}
        )

    for response in (missing, wrong):
        assert response.status_code == 401
        error = response.json()["error"]
        assert (error["message"], error["type"], error["code"]) == (
            "Invalid OAuth access token.",
            "OAuthException",
            190,
        )
        assert error["fbtrace_id"]
    assert right.status_code == 200
    assert len(fake.sent) == 1


async def test_mark_as_read_is_recorded_apart_from_sends_and_skips_faults() -> None:
    fake = GraphApiFake()
    fake.fail_next(1, code=131000, title="Something went wrong", status=500)
    async with serving(fake.app) as client:
        read = await client.post(
            SEND_PATH,
            json={"messaging_product": "whatsapp", "status": "read", "message_id": "wamid.IN"},
        )
        send = await client.post(SEND_PATH, json=text_message())

    assert read.json() == {"success": True}
    assert [r.message_id for r in fake.read_receipts] == ["wamid.IN"]
    assert send.status_code == 500
    assert fake.sent == []


async def test_malformed_and_hung_sends_record_nothing() -> None:
    fake = GraphApiFake()
    fake.fail_next_malformed(1)
    fake.hang_next(1)
    async with serving(fake.app, client_timeout=0.3) as client:
        malformed = await client.post(SEND_PATH, json=text_message())
        with pytest.raises(httpx.ReadTimeout):
            await client.post(SEND_PATH, json=text_message())
        after = await client.post(SEND_PATH, json=text_message())

    assert malformed.status_code == 200
    with pytest.raises(json.JSONDecodeError):
        malformed.json()
    assert after.status_code == 200
    assert len(fake.sent) == 1


async def test_latency_delays_each_response() -> None:
    fake = GraphApiFake()
    fake.set_latency(0.2)
    async with serving(fake.app) as client:
        started = time.monotonic()
        await client.post(SEND_PATH, json=text_message())
    assert time.monotonic() - started >= 0.2


async def test_stopping_the_server_releases_a_hung_request_promptly() -> None:
    fake = GraphApiFake()
    fake.hang_next(1)
    srv = FakeServer(fake.app)
    await srv.start()
    async with httpx.AsyncClient(base_url=srv.url, timeout=30) as client:
        hung = asyncio.create_task(client.post(SEND_PATH, json=text_message()))
        await asyncio.sleep(0.1)
        started = time.monotonic()
        await srv.stop()
        assert time.monotonic() - started < 1.5
        response = await hung
    assert response.status_code == 503
    assert fake.sent == []


async def test_control_endpoints_show_sends_and_inject_faults() -> None:
    fake = GraphApiFake()
    async with serving(fake.app) as client:
        await client.post(SEND_PATH, json=text_message("111", "first"))
        await client.post(SEND_PATH, json=text_message("222", "second"))
        listed = (await client.get("/_fake/messages", params={"to": "222"})).json()
        configured = await client.post(
            "/_fake/faults",
            json=[
                {"action": "fail_next", "code": 130429, "title": "Rate limit hit", "status": 429},
                {"action": "fail_next_malformed"},
            ],
        )
        rejected = await client.post("/_fake/faults", json={"action": "explode"})
        rate_limited = await client.post(SEND_PATH, json=text_message())
        await client.post("/_fake/reset")
        after_reset = await client.post(SEND_PATH, json=text_message())

    assert [m["text"] for m in listed] == ["second"]
    assert configured.json()["pending_faults"] == 2
    assert rejected.status_code == 400
    assert rate_limited.status_code == 429
    assert after_reset.status_code == 200
    assert [m.text for m in fake.sent] == ["hello"]


async def test_status_webhook_is_posted_signed_with_callback_data_echoed() -> None:
    received: list[tuple[bytes, dict[str, str]]] = []

    async def webhook(request: web.Request) -> web.Response:
        received.append((await request.read(), dict(request.headers)))
        return web.Response(text="EVENT_RECEIVED")

    receiver = web.Application()
    receiver.router.add_post("/webhook", webhook)
    secret = "app-secret"
    async with FakeServer(receiver) as hook:
        fake = GraphApiFake(
            status_webhook_url=f"{hook.url}/webhook",
            app_secret=secret,
            display_phone_number="15550783881",
        )
        async with serving(fake.app) as client:
            response = await client.post(
                SEND_PATH, json=text_message("+15551234567", biz_opaque_callback_data="conv-42")
            )
            await fake.drain_webhooks()
            wamid = response.json()["messages"][0]["id"]
            failed_error = {"code": 131047, "title": "Re-engagement message"}
            assert await fake.emit_status(wamid, "failed", [failed_error]) == 200

    assert len(received) == 2
    for raw, headers in received:
        expected = hmac.new(secret.encode(), raw, hashlib.sha256).hexdigest()
        assert headers["X-Hub-Signature-256"] == f"sha256={expected}"
    sent_hook = json.loads(received[0][0])
    assert sent_hook["object"] == "whatsapp_business_account"
    [change] = sent_hook["entry"][0]["changes"]
    assert change["field"] == "messages"
    value = change["value"]
    assert value["metadata"] == {
        "display_phone_number": "15550783881",
        "phone_number_id": PHONE_ID,
    }
    [status] = value["statuses"]
    assert status["id"] == wamid
    assert status["status"] == "sent"
    assert status["recipient_id"] == "15551234567"
    assert status["biz_opaque_callback_data"] == "conv-42"
    assert int(status["timestamp"]) == pytest.approx(time.time(), abs=60)
    [failed] = json.loads(received[1][0])["entry"][0]["changes"][0]["value"]["statuses"]
    assert failed["status"] == "failed"
    assert failed["errors"] == [failed_error]


# -- OpenRouter ------------------------------------------------------------------


async def test_openrouter_echoes_last_user_message_with_usage_and_records_headers() -> None:
    fake = OpenRouterFake(api_key="sk-or-test")
    headers = {
        "Authorization": "Bearer sk-or-test",
        "HTTP-Referer": "https://example.org",
        "X-Title": "wa-support",
    }
    async with serving(fake.app, headers=headers) as client:
        response = await client.post(CHAT_PATH, json=chat(user="where is my order?"))
        await fake.wait_for(1, timeout=1)

    assert response.status_code == 200
    body = response.json()
    assert body["id"].startswith("gen-")
    assert body["object"] == "chat.completion"
    assert body["model"] == "openai/gpt-4o-mini"
    [choice] = body["choices"]
    assert choice["finish_reason"] == "stop"
    assert choice["message"] == {
        "role": "assistant",
        "content": "Echo: where is my order?",
        "refusal": None,
    }
    # Tokens are whitespace words: 5 system + 4 user in, 5 out.
    usage = body["usage"]
    assert (usage["prompt_tokens"], usage["completion_tokens"], usage["total_tokens"]) == (
        9,
        5,
        14,
    )
    assert usage["cost"] > 0
    [recorded] = fake.requests
    assert recorded.model == "openai/gpt-4o-mini"
    assert recorded.authorization == "Bearer sk-or-test"
    assert (recorded.http_referer, recorded.x_title) == ("https://example.org", "wa-support")
    assert recorded.body["max_tokens"] == 200


async def test_openrouter_responder_can_be_replaced() -> None:
    fake = OpenRouterFake()
    fake.responder = lambda body: f"{len(body['messages'])} messages seen"
    async with serving(fake.app) as client:
        response = await client.post(CHAT_PATH, json=chat())
    assert response.json()["choices"][0]["message"]["content"] == "2 messages seen"


async def test_openrouter_requires_api_key_and_model() -> None:
    fake = OpenRouterFake(api_key="sk-or-test")
    async with serving(fake.app) as client:
        anonymous = await client.post(CHAT_PATH, json=chat())
        no_model = await client.post(
            CHAT_PATH,
            json={"messages": chat()["messages"]},
            headers={"Authorization": "Bearer sk-or-test"},
        )

    assert anonymous.status_code == 401
    assert anonymous.json() == {"error": {"message": "No auth credentials found", "code": 401}}
    assert no_model.status_code == 400
    assert no_model.json()["error"]["code"] == 400
    assert fake.requests == []


async def test_openrouter_429_carries_retry_after() -> None:
    fake = OpenRouterFake()
    fake.fail_next(1, "429", retry_after=3)
    async with serving(fake.app) as client:
        limited = await client.post(CHAT_PATH, json=chat())
        ok = await client.post(CHAT_PATH, json=chat())

    assert limited.status_code == 429
    assert limited.headers["Retry-After"] == "3"
    error = limited.json()["error"]
    assert error["code"] == 429
    assert error["message"]
    assert "X-RateLimit-Reset" in error["metadata"]["headers"]
    assert ok.status_code == 200
    assert [r.fault for r in fake.requests] == ["429", None]


@pytest.mark.parametrize("kind", ["500", "502", "503", "402"])
async def test_openrouter_http_errors_use_the_documented_body(kind: str) -> None:
    fake = OpenRouterFake()
    fake.fail_next(1, kind)
    async with serving(fake.app) as client:
        response = await client.post(CHAT_PATH, json=chat())
    assert response.status_code == int(kind)
    assert response.json()["error"]["code"] == int(kind)


async def test_openrouter_malformed_kinds_are_returned_as_specified() -> None:
    fake = OpenRouterFake()
    for kind in ("malformed_json", "empty_choices", "null_content", "html", "error_in_body"):
        fake.fail_next(1, kind)
    fake.fail_next(1, "html", status=200)
    async with serving(fake.app) as client:
        responses = [await client.post(CHAT_PATH, json=chat()) for _ in range(6)]
    malformed, empty, null, html, in_body, html_200 = responses

    assert malformed.status_code == 200
    assert malformed.headers["Content-Type"].startswith("application/json")
    with pytest.raises(json.JSONDecodeError):
        malformed.json()
    assert empty.status_code == 200
    assert empty.json()["choices"] == []
    assert null.json()["choices"][0]["message"]["content"] is None
    assert html.status_code == 502
    assert html.headers["Content-Type"].startswith("text/html")
    assert html.text.lstrip().startswith("<!DOCTYPE html>")
    assert html_200.status_code == 200
    assert html_200.headers["Content-Type"].startswith("text/html")
    assert in_body.status_code == 200
    assert in_body.json()["error"]["code"] == 502
    assert "choices" not in in_body.json()


async def test_openrouter_timeout_hangs_until_the_client_gives_up() -> None:
    fake = OpenRouterFake()
    fake.fail_next(1, "timeout")
    async with serving(fake.app, client_timeout=0.3) as client:
        with pytest.raises(httpx.ReadTimeout):
            await client.post(CHAT_PATH, json=chat())
        ok = await client.post(CHAT_PATH, json=chat())
    assert ok.status_code == 200
    assert [r.fault for r in fake.requests] == ["timeout", None]


async def test_openrouter_per_model_faults_and_latency_only_hit_that_model() -> None:
    fake = OpenRouterFake()
    fake.fail_next(2, "503", model="primary/model")
    fake.set_latency(0.3, model="slow/model")
    async with serving(fake.app) as client:
        fallback = await client.post(CHAT_PATH, json=chat("fallback/model"))
        primary = await client.post(CHAT_PATH, json=chat("primary/model"))
        started = time.monotonic()
        await client.post(CHAT_PATH, json=chat("slow/model"))
        slow_elapsed = time.monotonic() - started
        started = time.monotonic()
        await client.post(CHAT_PATH, json=chat("fallback/model"))
        fast_elapsed = time.monotonic() - started

    assert fallback.status_code == 200
    assert primary.status_code == 503
    assert fake.pending_faults("primary/model") == 1
    assert slow_elapsed >= 0.3
    assert fast_elapsed < 0.3
    assert [r.model for r in fake.requests_for("primary/model")] == ["primary/model"]


async def test_openrouter_control_endpoints_mirror_the_python_api() -> None:
    fake = OpenRouterFake()
    async with serving(fake.app) as client:
        configured = await client.post(
            "/_fake/faults",
            json={"action": "fail_next", "kind": "429", "model": "a/b", "retry_after": 1},
        )
        bad_kind = await client.post("/_fake/faults", json={"action": "fail_next", "kind": "418"})
        limited = await client.post(CHAT_PATH, json=chat("a/b"))
        listed = (await client.get("/_fake/requests", params={"model": "a/b"})).json()
        await client.post("/_fake/reset")
        after_reset = (await client.get("/_fake/requests")).json()

    assert configured.json() == {"pending_faults": {"a/b": 1}}
    assert bad_kind.status_code == 400
    assert limited.headers["Retry-After"] == "1"
    assert [(r["model"], r["fault"]) for r in listed] == [("a/b", "429")]
    assert after_reset == []


# -- CLI -----------------------------------------------------------------------


@pytest.mark.parametrize("module", ["fakes.graph_api", "fakes.openrouter"])
def test_cli_modules_start_from_python_dash_m(module: str) -> None:
    result = subprocess.run(
        [sys.executable, "-W", "error", "-m", module, "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "--port" in result.stdout
