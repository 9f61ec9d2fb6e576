"""What one load-test run does: every knob, with the defaults a bare run uses."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class LoadOptions:
    customers: int = 1000
    duration: float = 60.0  # seconds of load after the ramp-up
    ramp_up: float = 10.0  # customers start spread over this many seconds
    think_mean: float = 8.0  # mean of the exponential pause between a reply and the next message
    rate: float | None = None  # open loop: messages per second in all; None for closed loop
    duplicate_share: float = 0.1  # share of webhooks delivered twice, as Meta's retries do
    statuses: bool = True  # sent, delivered and read webhooks for every reply
    llm_latency: float = 0.0  # seconds the OpenRouter fake takes per answer
    reply_timeout: float = 30.0  # a customer gives up waiting and writes again after this
    settle: float = 30.0  # after the load, how long to wait for replies still on their way
    pair_rate: bool = False  # Meta's one-message-per-6-s pair limit, off to measure capacity
    gateway_workers: int = 1  # own service: `serve --workers N`, gateways sharing the actors
    seed: int = 1

    @property
    def closed_loop(self) -> bool:
        return self.rate is None
