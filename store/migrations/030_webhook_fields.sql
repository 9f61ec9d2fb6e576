-- Parts of webhook bodies that failed validation, kept raw with their error (issue 11 §1):
-- the body is still answered 200 and its other messages stored as usual.
CREATE TABLE webhook_unparsed (
    id           bigserial PRIMARY KEY,
    received_at  timestamptz NOT NULL DEFAULT now(),
    source       text        NOT NULL,
    field        text        NOT NULL,   -- the change's field, or messages.message / .status
    error        text        NOT NULL,
    raw          text        NOT NULL    -- JSON text: JSONB would refuse some of what arrives
);

CREATE INDEX webhook_unparsed_received_idx ON webhook_unparsed (id DESC);

-- Non-message fields an operator acts on: template status and quality, account and number
-- quality, a customer who stopped marketing messages. One row per event, shown on the
-- dashboard; a retry of the same change by Meta is stored once (digest).
CREATE TABLE account_events (
    id           bigserial PRIMARY KEY,
    received_at  timestamptz NOT NULL DEFAULT now(),
    field        text        NOT NULL,
    account_id   text,                   -- the WhatsApp Business Account (entry id)
    subject      text,                   -- the template, number or customer it is about
    event        text,                   -- APPROVED, YELLOW, FLAGGED, marketing_messages/stop
    detail       jsonb       NOT NULL,
    digest       text        NOT NULL UNIQUE
);

CREATE INDEX account_events_field_idx ON account_events (field, id DESC);
