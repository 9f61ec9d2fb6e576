-- The request id of the webhook delivery that brought an inbound message, so the logs of
-- the gateway, the shard, the LLM pool and delivery can be followed for one message, also
-- after a replay.
ALTER TABLE messages ADD COLUMN request_id text;
