"""Signed Cloud API webhooks as Meta sends them, for simulated customers."""

from __future__ import annotations

import time

import orjson

from gateway.signature import HEADER, sign

WEBHOOK_PATH = "/api/webhooks/whatsapp-business"


def customer_phone(run: str, index: int) -> str:
    """A number per customer and run, so runs against one database never share a customer."""
    return f"99{int(run, 16) % 10_000:04d}{index:06d}"


def message_wamid(run: str, index: int, seq: int) -> str:
    return f"wamid.LT{run}.{index}.{seq}"


def message_text(run: str, index: int, seq: int) -> str:
    # The sequence number travels in the text, so an echoing LLM's reply names its question.
    return f"load test {run} customer {index} message #{seq}"


def text_webhook(
    *, business_number: str, phone: str, wamid: str, text: str, name: str = "Load Tester"
) -> bytes:
    body = {
        "object": "whatsapp_business_account",
        "entry": [
            {
                "id": "880000000000",
                "changes": [
                    {
                        "field": "messages",
                        "value": {
                            "messaging_product": "whatsapp",
                            "metadata": {
                                "display_phone_number": "15550009999",
                                "phone_number_id": business_number,
                            },
                            "contacts": [{"profile": {"name": name}, "wa_id": phone}],
                            "messages": [
                                {
                                    "from": phone,
                                    "id": wamid,
                                    "timestamp": str(int(time.time())),
                                    "type": "text",
                                    "text": {"body": text},
                                }
                            ],
                        },
                    }
                ],
            }
        ],
    }
    return orjson.dumps(body)


def signed_headers(raw: bytes, secret: str) -> dict[str, str]:
    return {"Content-Type": "application/json", HEADER: sign(raw, secret)}
