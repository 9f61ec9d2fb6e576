-- Delivery reports that arrived before the send they report on was recorded. MSG91 echoes
-- only its own request id, and may report on a message before its answer to our send
-- reaches us: such a report is kept here and applied when the send is recorded, instead of
-- matching no row and being dropped.
CREATE TABLE held_statuses (
    id                   bigserial   PRIMARY KEY,
    provider_message_id  text        NOT NULL,
    status               text        NOT NULL,
    error_code           bigint,
    error_title          text,
    status_at            timestamptz NOT NULL,
    received_at          timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX held_statuses_message_idx ON held_statuses (provider_message_id);
CREATE INDEX held_statuses_received_idx ON held_statuses (received_at);
