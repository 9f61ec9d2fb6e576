"""WhatsApp Cloud API webhook payloads: typed models and their mapping to our records."""

from gateway.whatsapp.models import WebhookPayload
from gateway.whatsapp.normalize import ParsedWebhook, parse_webhook

__all__ = ["ParsedWebhook", "WebhookPayload", "parse_webhook"]
