"""What `serve` prints once it is up: one line per part it runs, and where to look."""

from __future__ import annotations

from cli.servers import Servers
from config import Settings
from config.vocabulary import ProviderName

SANDBOX_PATH = "/sandbox"


def parts(settings: Settings, servers: Servers) -> list[tuple[str, str]]:
    """(part, how it runs): embedded or external with the address, the provider, the responder."""
    rows = servers.describe()
    ray = f"external cluster at {settings.ray_address}" if settings.ray_address else "local"
    rows.append(("ray", f"{ray}, namespace {settings.ray_namespace}"))
    rows.append(("delivery", delivery(settings)))
    rows.append(("responder", responder(settings)))
    return rows


def delivery(settings: Settings) -> str:
    match settings.delivery_provider:
        case ProviderName.MSG91:
            return f"MSG91, number {settings.msg91_sender_id}, via {settings.msg91_base_url}"
        case ProviderName.WHATSAPP_CLOUD:
            return (
                f"WhatsApp Cloud API, phone number id {settings.whatsapp_phone_number_id}, "
                f"via {settings.whatsapp_graph_base_url}"
            )
        case ProviderName.SANDBOX:
            return f"sandbox (nothing leaves this machine; sent messages at {SANDBOX_PATH})"


def responder(settings: Settings) -> str:
    if settings.uses_offline_responder:
        return "offline FAQ responder (no OPENROUTER_API_KEY)"
    fallbacks = ", ".join(settings.openrouter_fallback_model) or "none"
    return (
        f"LLM {settings.openrouter_primary_model} (fallbacks: {fallbacks}) "
        f"via {settings.openrouter_base_url}"
    )


def lines(settings: Settings, servers: Servers, base: str) -> list[str]:
    out = [f"wa-support listening on http://{settings.host}:{settings.port}"]
    out += [f"  {part + ':':<11}{how}" for part, how in parts(settings, servers)]
    out.append(f"  {'webhook:':<11}{base}/api/webhooks/whatsapp-business")
    first = f"first to register at {base}/register is admin"
    out.append(f"  {'dashboard:':<11}{base}/dashboard   ({first})")
    out.append(f"  {'api docs:':<11}{base}/docs   spec: {base}/api/openapi.json")
    if settings.uses_sandbox_delivery:
        out.append(f"  {'sandbox:':<11}{base}{SANDBOX_PATH}/_fake/messages")
    out.append("Press Ctrl-C to stop.")
    return out
