"""Locust users for teams that load-test with Locust (`pip install locust`).

    locust -f tests/load/locustfile.py --host http://127.0.0.1:8080 -u 1000 -r 50

Each user is one customer of a service in sandbox mode: it posts a signed Cloud API
webhook, polls the sandbox's record until its reply is there, thinks, and writes again.
The webhook and the wait are reported as separate requests. `wa-support loadtest` does the
same and also checks every reply against the database; use it for correctness.
Set WHATSAPP_APP_SECRET and LOADTEST_BUSINESS_NUMBER as the service has them.
"""

from __future__ import annotations

import itertools
import os
import random
import secrets
import time

from locust import FastHttpUser, between, task

from loadtest.webhooks import WEBHOOK_PATH, signed_headers, text_webhook

SECRET = os.environ.get("WHATSAPP_APP_SECRET", "dev-app-secret")
BUSINESS_NUMBER = os.environ.get("LOADTEST_BUSINESS_NUMBER", "123456789")
REPLY_TIMEOUT = float(os.environ.get("LOADTEST_REPLY_TIMEOUT", "30"))
_numbers = itertools.count(1)
_run = secrets.token_hex(3)


class Customer(FastHttpUser):
    wait_time = between(1, 15)

    def on_start(self) -> None:
        self.phone = f"98{random.randrange(10**9):09d}{next(_numbers) % 10}"
        self.seq = 0
        self.replies = 0

    @task
    def write_and_wait(self) -> None:
        self.seq += 1
        raw = text_webhook(
            business_number=BUSINESS_NUMBER,
            phone=self.phone,
            wamid=f"wamid.LOCUST{_run}.{self.phone}.{self.seq}",
            text=f"locust customer {self.phone} message #{self.seq}",
        )
        with self.client.post(
            WEBHOOK_PATH, data=raw, headers=signed_headers(raw, SECRET), catch_response=True
        ) as response:
            if response.status_code != 200:
                response.failure(f"HTTP {response.status_code}")
                return
        started = time.monotonic()
        while time.monotonic() - started < REPLY_TIMEOUT:
            sent = self.client.get(
                f"/sandbox/_fake/messages?to={self.phone}", name="/sandbox/_fake/messages"
            ).json()
            if len(sent) > self.replies:
                self.replies = len(sent)
                self.environment.events.request.fire(
                    request_type="REPLY", name="reply", response_time=(time.monotonic() - started)
                    * 1000, response_length=0, exception=None, context={},
                )  # fmt: skip
                return
            time.sleep(0.25)
        self.environment.events.request.fire(
            request_type="REPLY", name="reply", response_time=REPLY_TIMEOUT * 1000,
            response_length=0, exception=TimeoutError("no reply"), context={},
        )  # fmt: skip
