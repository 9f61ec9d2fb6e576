-- The send ledger (DESIGN.md §3): one row per part of every outbound message. A part's
-- state only moves forward: pending -> claimed (one owner, with a lease) -> sent / failed /
-- unknown; unknown -> sent by a status webhook carrying our id, or -> pending after the
-- unknown-outcome wait (the one case where a part is sent again). The messages row keeps
-- the aggregate status the dashboard and the API show.
CREATE TABLE send_parts (
    id                   bigserial PRIMARY KEY,
    message_id           bigint      NOT NULL REFERENCES messages(id) ON DELETE CASCADE,
    conversation_id      bigint      NOT NULL REFERENCES conversations(id) ON DELETE CASCADE,
    part                 integer     NOT NULL,
    content              jsonb       NOT NULL,
    state                text        NOT NULL DEFAULT 'pending'
                         CHECK (state IN ('pending', 'claimed', 'sent', 'failed', 'unknown')),
    owner                text,
    lease_until          timestamptz,
    unknown_since        timestamptz,
    attempts             integer     NOT NULL DEFAULT 0,
    provider_message_id  text        UNIQUE,
    error_code           bigint,
    error_title          text,
    created_at           timestamptz NOT NULL DEFAULT now(),
    updated_at           timestamptz NOT NULL DEFAULT now(),
    UNIQUE (message_id, part)
);
-- The send-order gate looks for earlier open parts of a conversation.
CREATE INDEX send_parts_open_idx ON send_parts (conversation_id, message_id, part)
    WHERE state IN ('pending', 'claimed');
-- The delivery actor's sweep turns expired leases into unknown outcomes.
CREATE INDEX send_parts_lease_idx ON send_parts (lease_until) WHERE state = 'claimed';
