-- Dead letters: an inbound message is tried a bounded number of times, counted here so
-- restarts, replays and sweeps all count; past the limit it is `dead` (and processed, so
-- nothing replays it) with its last error, until an operator retries it.
ALTER TABLE messages ADD COLUMN attempts integer NOT NULL DEFAULT 0;
ALTER TABLE messages ADD COLUMN last_error text;

-- The order gate asks for the earliest open inbound message of one conversation.
CREATE INDEX messages_open_inbound_idx ON messages (conversation_id, id)
    WHERE direction = 'inbound' AND processed_at IS NULL;
