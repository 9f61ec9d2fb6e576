-- Retention (WEBHOOK_LOG_RETENTION_DAYS, STATUS_HISTORY_RETENTION_DAYS,
-- MEDIA_RETENTION_DAYS): the background sweep finds the oldest rows by these.
CREATE INDEX message_statuses_at_idx ON message_statuses (at);
CREATE INDEX media_kept_idx ON media (fetched_at) WHERE content IS NOT NULL;
