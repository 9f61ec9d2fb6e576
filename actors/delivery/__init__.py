"""Delivery: the actor that sends stored replies, its window policy, pacing and providers."""

from actors.delivery.actor import DeliveryActor

__all__ = ["DeliveryActor"]
