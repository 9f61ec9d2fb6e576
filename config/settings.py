"""Settings from environment variables (pydantic-settings).

Every variable is listed with its meaning in `.env.example`. With nothing set the
service runs on embedded defaults (DESIGN.md §4): embedded Postgres and Redis, a
local Ray, the sandbox delivery provider and the offline responder.
"""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from config.vocabulary import ProviderName

# Used only outside production, so that a newcomer can sign a test webhook.
DEV_APP_SECRET = "dev-app-secret"
DEV_VERIFY_TOKEN = "dev-verify-token"
DEV_JWT_SECRET = "dev-jwt-secret-change-me"

DEFAULT_FAQ = Path(__file__).with_name("faq.yaml")
DEFAULT_FLOWS = Path(__file__).with_name("flows.yaml")


class ProductionConfigError(RuntimeError):
    """Raised when production mode lacks a secret it must not default."""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_file=".env", extra="ignore", frozen=True, env_ignore_empty=True
    )

    app_env: Literal["development", "production"] = "development"
    host: str = "127.0.0.1"
    port: int = 8080
    data_dir: Path = Path(".wa-support")
    log_level: str = "INFO"

    database_url: str | None = None
    db_pool_min: int = 2
    db_pool_max: int = 10
    redis_url: str | None = None
    redis_key_prefix: str = "wa:"
    snapshot_ttl_seconds: int = 3600

    ray_address: str | None = None
    ray_namespace: str = "wa-support"
    ray_num_cpus: int | None = None
    ray_object_store_mb: int = 150
    # Ray's own variables, read here so that production can insist on them. Unset mode:
    # `token` in production, `disabled` otherwise. The token (the same on every node and
    # gateway) comes from RAY_AUTH_TOKEN or the file RAY_AUTH_TOKEN_PATH names.
    ray_auth_mode: Literal["token", "disabled"] | None = None
    ray_auth_token: SecretStr | None = None
    ray_auth_token_path: Path | None = None
    shard_count: int = 2
    llm_actor_count: int = 1
    delivery_actor_count: int = 1
    # Gateway → shard micro-batches: flush after this many messages or milliseconds.
    batch_max_messages: int = 100
    batch_max_delay_ms: float = 5.0
    router_queue_limit: int = 10_000
    conversation_idle_seconds: float = 300.0
    history_turns: int = 20
    inbox_sweep_seconds: float = 30.0
    inbox_replay_after_seconds: float = 60.0
    # Tries of one inbound message (counted in Postgres, across restarts and sweeps) before
    # it is a dead letter; then the customer gets one holding reply, or a person is flagged.
    message_max_attempts: int = Field(default=5, ge=1)
    message_retry_base_seconds: float = 0.5
    # A message waiting out an outage (Postgres, Redis, an actor, Meta) tries again at
    # most this far apart; it spends none of its MESSAGE_MAX_ATTEMPTS meanwhile.
    outage_retry_max_seconds: float = Field(default=5.0, gt=0)
    dead_letter_action: Literal["holding_reply", "flag"] = "holding_reply"
    # Back-pressure and shutdown (DESIGN.md §3). A shard holds at most this many messages,
    # waiting or in hand, across its conversations; the rest waits in the router or the inbox.
    shard_max_queued: int = Field(default=2000, ge=1)
    # Inbox rows a shard's replay (and the sweeper) reads at a time.
    replay_page_size: int = Field(default=500, ge=1)
    # Media downloads a delivery actor runs at once, and how many a shard sends per call.
    media_fetch_concurrency: int = Field(default=4, ge=1)
    media_fetch_batch: int = Field(default=50, ge=1)
    # On SIGTERM or Ctrl-C, `serve` answers webhooks 503 and waits this long at most for
    # the messages in hand to finish before it stops the actors.
    shutdown_drain_seconds: float = Field(default=20.0, ge=0)

    # Per-phone abuse limit: messages a customer may send per window before the bot stops
    # answering them (stored all the same) and says, once, to slow down.
    abuse_messages_per_window: int = 10
    abuse_window_seconds: int = 60
    # Words that hand the conversation to a person (whole words, any case).
    handoff_keywords: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: ["agent", "human", "person", "representative", "operator"]
    )
    # Scripted flows (YAML); "none" turns them off. Operator-edited flows replace the file.
    flows_path: Path | None = DEFAULT_FLOWS
    # A conversation handed to a person goes back to the bot after this long without
    # an operator's reply (0 = never by itself).
    human_idle_return_seconds: float = 3600.0

    # Peers (addresses or CIDR blocks, comma-separated) whose X-Forwarded-For/-Proto/-Host
    # are believed: the TLS proxy in front of the service. Empty: nobody's.
    trusted_proxies: Annotated[list[str], NoDecode] = Field(default_factory=list)
    # Who may read /metrics and the detail of /api/health without a token.
    observability_networks: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: ["127.0.0.0/8", "::1/128"]
    )
    # A Bearer token that also opens /metrics and the health detail (for a remote scraper).
    metrics_token: SecretStr | None = None

    # Retention, pruned in the background (0 = kept for ever): the webhook log, the history
    # of outbound statuses, downloaded media files (the row stays), and MSG91 reports held
    # for a send that was never recorded.
    webhook_log_retention_days: float = Field(default=30, ge=0)
    status_history_retention_days: float = Field(default=90, ge=0)
    media_retention_days: float = Field(default=90, ge=0)
    held_status_max_age_seconds: float = Field(default=86400, ge=0)
    # How often each gateway sweeps (0 = never), rows per statement, statements per kind
    # per sweep.
    retention_sweep_seconds: float = Field(default=3600, ge=0)
    retention_batch_size: int = Field(default=1000, ge=1)
    retention_max_batches: int = Field(default=100, ge=1)

    webhook_max_body_bytes: int = 1024 * 1024
    # GET /api/webhooks/health answers 503 once the oldest unanswered message is this old.
    webhook_backlog_max_age_seconds: float = 300.0
    # Serial group-commit writers, each owning a share of the phones: commits overlap.
    inbox_writers: int = 4

    whatsapp_access_token: SecretStr | None = None
    whatsapp_phone_number_id: str | None = None
    whatsapp_app_secret: SecretStr | None = None
    whatsapp_verify_token: SecretStr | None = None
    whatsapp_graph_base_url: str = "https://graph.facebook.com"
    whatsapp_api_version: str = "v21.0"
    delivery_timeout_seconds: float = 15.0
    # Outside services (Graph API, MSG91, OpenRouter) share one HTTP stack: connections each
    # delivery actor keeps to its provider, each LLM actor to OpenRouter, and how long an
    # idle one is kept open.
    http_pool_connections: int = Field(default=200, ge=1)
    llm_http_pool_connections: int = Field(default=1000, ge=1)
    http_keepalive_seconds: float = Field(default=60.0, ge=0)
    # A send a crash left without an answer waits this long for Meta's status webhook
    # (which echoes our id) before it is sent again (DESIGN.md §3).
    unknown_send_wait_seconds: float = 30.0
    # While status webhooks reach us late (store.webhook_lag), that wait grows to twice
    # their lag, up to this bound: a late webhook must not let a taken send go twice.
    unknown_send_wait_max_seconds: float = Field(default=600.0, ge=0)
    # Mark inbound messages as read (blue ticks) through the Cloud API.
    whatsapp_mark_read: bool = True
    # Download customers' media through the Cloud API into Postgres, up to this size each.
    media_download: bool = True
    media_max_bytes: int = 16 * 1024 * 1024
    # Meta's throughput per business number (80/s by default, up to 1000 after an upgrade).
    delivery_messages_per_second: float = Field(default=80.0, gt=0, le=1000)
    # Meta's pair rate: about one message per 6 s to one user, after a burst.
    pair_interval_seconds: float = 6.0
    pair_burst: int = 10
    # A send waits this long for its pacing turn before it is retried later.
    pacing_max_wait_seconds: float = 120.0
    # The approved template sent when the 24-hour window is closed (none: such sends fail).
    window_template_name: str | None = None
    window_template_language: str = "en"

    openrouter_api_key: SecretStr | None = None
    openrouter_base_url: str = "https://openrouter.ai"
    openrouter_primary_model: str = "openai/gpt-4o-mini"
    openrouter_fallback_model: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: ["anthropic/claude-3.5-haiku"]
    )
    llm_timeout_seconds: float = 30.0
    # A reply gives up (polite fallback, human flag) when all models took this long.
    llm_reply_deadline_seconds: float = 60.0
    llm_attempts_per_model: int = 2
    # A 429's Retry-After is honoured up to this long; past it the next model is tried.
    llm_retry_after_max_seconds: float = 10.0
    llm_max_tokens: int = 512
    llm_temperature: float = 0.3
    # Per-model circuit breaker: open after this many consecutive failures, or when the
    # failure rate over the last `window` calls (at least `window / 2` of them) reaches it.
    llm_breaker_failures: int = 5
    llm_breaker_failure_rate: float = 0.5
    llm_breaker_window: int = 20
    llm_breaker_cooldown_seconds: float = 30.0
    # Per-model limits shared by every LLM actor in the cluster (Redis); 0 = no limit.
    llm_requests_per_minute: int = 0
    llm_tokens_per_minute: int = 0
    # How much of a minute's allowance may be spent at once.
    llm_rate_burst_seconds: float = 10.0
    # A request over the limit waits this long for its turn, then counts as a failure.
    llm_rate_max_wait_seconds: float = 5.0
    # Models that take no system message: the system prompt is folded into the first user turn.
    llm_no_system_models: Annotated[list[str], NoDecode] = Field(default_factory=list)
    # Tokens of conversation history (estimated) sent with each request; oldest turns go first.
    llm_context_token_budget: int = 3000
    # How often an LLM actor checks for operator-edited settings.
    settings_refresh_seconds: float = 1.0
    system_prompt: str = (
        "You are a friendly, concise customer-support assistant for our business on WhatsApp. "
        "Answer in the customer's language. If you do not know, say a person will follow up."
    )
    faq_path: Path = DEFAULT_FAQ

    msg91_auth_key: SecretStr | None = None
    msg91_webhook_secret: SecretStr | None = None
    msg91_sender_id: str | None = None  # the integrated number, country code first, no "+"
    msg91_base_url: str = "https://control.msg91.com"
    # MSG91's documented limit; sends are paced to it (and a 429 is retried with backoff).
    msg91_requests_per_minute: int = 100

    jwt_secret: SecretStr | None = None
    # Operator sessions: short access tokens (JWT) renewed by longer refresh tokens.
    jwt_access_ttl_seconds: int = 900
    jwt_refresh_ttl_seconds: int = 14 * 24 * 3600
    # After the first user (who becomes admin): "invite" (an admin invites) or "closed".
    registration_mode: Literal["invite", "closed"] = "invite"
    invite_ttl_seconds: int = 7 * 24 * 3600
    # Failed logins allowed per account and per client IP within the window, then 429.
    login_max_failures_per_account: int = 5
    login_max_failures_per_ip: int = 20
    login_failure_window_seconds: int = 900
    # Registrations (each an argon2 hash, 64 MiB) allowed per client IP within the window.
    register_max_per_ip: int = Field(default=10, ge=1)
    register_window_seconds: int = Field(default=3600, ge=1)
    # Production: the first operator (the admin) registers with this secret, or is made with
    # `wa-support user create --admin`. Unset: only the command can make the first admin.
    admin_bootstrap_secret: SecretStr | None = None
    # Send the session cookies only over HTTPS; unset: on in production, off otherwise.
    cookie_secure: bool | None = None

    @field_validator(
        "openrouter_fallback_model",
        "llm_no_system_models",
        "handoff_keywords",
        "trusted_proxies",
        "observability_networks",
        mode="before",
    )
    @classmethod
    def _split_models(cls, value: object) -> object:
        if isinstance(value, str):
            return [m.strip() for m in value.split(",") if m.strip()]
        return value

    @field_validator("trusted_proxies", "observability_networks")
    @classmethod
    def _networks(cls, value: list[str]) -> list[str]:
        for spec in value:
            ipaddress.ip_network(spec, strict=False)  # ValueError names the bad one
        return value

    @field_validator("flows_path", mode="before")
    @classmethod
    def _no_flows(cls, value: object) -> object:
        return None if isinstance(value, str) and value.strip().lower() == "none" else value

    @property
    def is_production(self) -> bool:
        return self.app_env == "production"

    @property
    def secure_cookies(self) -> bool:
        return self.is_production if self.cookie_secure is None else self.cookie_secure

    @property
    def models(self) -> list[str]:
        """The primary model followed by the fallbacks, in order."""
        return [self.openrouter_primary_model, *self.openrouter_fallback_model]

    @property
    def uses_msg91(self) -> bool:
        """MSG91 delivers when it is configured and the Cloud API is not."""
        cloud = self.whatsapp_access_token is not None and self.whatsapp_phone_number_id is not None
        return not cloud and self.msg91_auth_key is not None and bool(self.msg91_sender_id)

    @property
    def uses_sandbox_delivery(self) -> bool:
        cloud = self.whatsapp_access_token is not None and self.whatsapp_phone_number_id is not None
        return not cloud and not self.uses_msg91

    @property
    def delivery_provider(self) -> ProviderName:
        """Who sends the replies: what health, diagnostics, `serve` and the outbound rows say."""
        if self.uses_msg91:
            return ProviderName.MSG91
        if self.uses_sandbox_delivery:
            return ProviderName.SANDBOX
        return ProviderName.WHATSAPP_CLOUD

    @property
    def uses_offline_responder(self) -> bool:
        return self.openrouter_api_key is None

    @property
    def cloud_api_webhook_enabled(self) -> bool:
        """Whether the Cloud API webhook is mounted at all.

        Only with Meta's own app secret (and, in production, its verify token). The
        development secrets, which are in the source, sign webhooks only outside production
        while the sandbox delivers: an MSG91 deployment must not accept bodies anyone can sign.
        """
        if _reveal(self.whatsapp_app_secret):
            return not self.is_production or _reveal(self.whatsapp_verify_token) is not None
        return not self.is_production and self.uses_sandbox_delivery

    @property
    def msg91_webhook_enabled(self) -> bool:
        return _reveal(self.msg91_webhook_secret) is not None

    def app_secret(self) -> str:
        secret = _reveal(self.whatsapp_app_secret)
        if secret is None and not self.cloud_api_webhook_enabled:
            raise ProductionConfigError("the Cloud API webhook is off: WHATSAPP_APP_SECRET unset")
        return secret or DEV_APP_SECRET

    def verify_token(self) -> str:
        token = _reveal(self.whatsapp_verify_token)
        if token is None and (self.is_production or not self.cloud_api_webhook_enabled):
            raise ProductionConfigError("the Cloud API webhook is off: WHATSAPP_VERIFY_TOKEN unset")
        return token or DEV_VERIFY_TOKEN

    @property
    def effective_ray_auth_mode(self) -> Literal["token", "disabled"]:
        if self.ray_auth_mode is not None:
            return self.ray_auth_mode
        return "token" if self.is_production else "disabled"

    def ray_auth_problem(self) -> str | None:
        """Why production Ray cannot start as configured: token mode, no token to share.
        (Elsewhere Ray finds or makes one itself: ~/.ray/auth_token.)"""
        if not self.is_production or self.effective_ray_auth_mode != "token":
            return None
        if _present(self.ray_auth_token) or self.ray_auth_token_path is not None:
            return None
        default = "" if self.ray_auth_mode else ", the default in production"
        return (
            f"RAY_AUTH_MODE=token{default}, needs the cluster's token: set RAY_AUTH_TOKEN "
            "(or RAY_AUTH_TOKEN_PATH, a file holding it) to the same value on every Ray node "
            "and gateway, or turn Ray's authentication off explicitly with RAY_AUTH_MODE=disabled"
        )

    def check_production(self) -> None:
        """Refuse to run production on defaults: each missing secret is named."""
        if not self.is_production:
            return
        required = {
            "DATABASE_URL": self.database_url,
            "REDIS_URL": self.redis_url,
            # An MSG91 number needs its own secrets instead of Meta's.
            **(
                {
                    "MSG91_AUTH_KEY": self.msg91_auth_key,
                    "MSG91_SENDER_ID": self.msg91_sender_id,
                    "MSG91_WEBHOOK_SECRET": self.msg91_webhook_secret,
                }
                # Meta's app secret turns the Cloud API webhook on, which needs both.
                | (
                    {"WHATSAPP_VERIFY_TOKEN": self.whatsapp_verify_token}
                    if _present(self.whatsapp_app_secret)
                    else {}
                )
                if self.uses_msg91
                else {
                    "WHATSAPP_ACCESS_TOKEN": self.whatsapp_access_token,
                    "WHATSAPP_PHONE_NUMBER_ID": self.whatsapp_phone_number_id,
                    "WHATSAPP_APP_SECRET": self.whatsapp_app_secret,
                    "WHATSAPP_VERIFY_TOKEN": self.whatsapp_verify_token,
                }
            ),
            "OPENROUTER_API_KEY": self.openrouter_api_key,
            "JWT_SECRET": self.jwt_secret,
        }
        missing = [name for name, value in required.items() if not _present(value)]
        problems = []
        if missing:
            problems.append("requires these variables to be set: " + ", ".join(missing))
        if (ray := self.ray_auth_problem()) is not None:
            problems.append(ray)
        if problems:
            raise ProductionConfigError("APP_ENV=production " + "; ".join(problems))


def _reveal(value: SecretStr | None) -> str | None:
    return value.get_secret_value() if value is not None and value.get_secret_value() else None


def _present(value: object) -> bool:
    if isinstance(value, SecretStr):
        return bool(value.get_secret_value())
    return bool(value)


def load_settings(**overrides: object) -> Settings:
    return Settings(**overrides)  # type: ignore[arg-type]
