-- Conversations: one per customer phone per business number.
CREATE TABLE conversations (
    id                        bigserial PRIMARY KEY,
    business_number           text        NOT NULL,  -- Meta phone_number_id that was written to
    customer_phone            text        NOT NULL,  -- the customer's wa_id
    customer_name             text,
    state                     text        NOT NULL DEFAULT 'bot'
                              CHECK (state IN ('bot', 'human', 'closed')),
    last_customer_message_at  timestamptz,
    created_at                timestamptz NOT NULL DEFAULT now(),
    updated_at                timestamptz NOT NULL DEFAULT now(),
    UNIQUE (business_number, customer_phone)
);

-- Inbound and outbound messages. An inbound row with processed_at NULL is in the inbox.
CREATE TABLE messages (
    id                   bigserial PRIMARY KEY,
    conversation_id      bigint      NOT NULL REFERENCES conversations(id) ON DELETE CASCADE,
    direction            text        NOT NULL CHECK (direction IN ('inbound', 'outbound')),
    provider             text        NOT NULL DEFAULT 'whatsapp_cloud',
    provider_message_id  text        UNIQUE,   -- wamid; NULL for an outbound row not yet accepted
    type                 text        NOT NULL,
    text                 text,
    payload              jsonb       NOT NULL DEFAULT '{}'::jsonb,
    status               text        NOT NULL,
    -- The inbound message an outbound reply answers: unique, so a replay never makes two replies.
    reply_to_id          bigint      UNIQUE REFERENCES messages(id) ON DELETE CASCADE,
    model                text,
    prompt_tokens        integer,
    completion_tokens    integer,
    llm_cost             numeric(12, 6),
    error_code           integer,
    error_title          text,
    provider_timestamp   timestamptz,
    processed_at         timestamptz,
    created_at           timestamptz NOT NULL DEFAULT now(),
    updated_at           timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX messages_conversation_idx ON messages (conversation_id, id);
CREATE INDEX messages_inbox_idx ON messages (id)
    WHERE direction = 'inbound' AND processed_at IS NULL;

-- Every webhook delivery, whatever its outcome, for the operators' webhook log.
CREATE TABLE webhook_events (
    id             bigserial PRIMARY KEY,
    received_at    timestamptz NOT NULL DEFAULT now(),
    source         text        NOT NULL,   -- whatsapp_cloud, msg91
    kind           text        NOT NULL,   -- messages, statuses, verification, unknown
    outcome        text        NOT NULL,   -- stored, duplicate, bad_signature, malformed, rejected
    http_status    integer     NOT NULL,
    latency_ms     real,
    message_count  integer     NOT NULL DEFAULT 0,
    status_count   integer     NOT NULL DEFAULT 0,
    detail         text
);

CREATE INDEX webhook_events_received_idx ON webhook_events (received_at DESC);
