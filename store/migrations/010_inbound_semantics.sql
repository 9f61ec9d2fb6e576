-- WhatsApp semantics of inbound updates that change earlier messages (reaction, edit, revoke).
-- The customer's current reaction to a message (NULL when none or removed).
ALTER TABLE messages ADD COLUMN reaction text;
ALTER TABLE messages ADD COLUMN edited_at timestamptz;
ALTER TABLE messages ADD COLUMN deleted_at timestamptz;
-- Media of an inbound message: Meta's media id and mime type; the caption is in `text`.
ALTER TABLE messages ADD COLUMN media_id text;
ALTER TABLE messages ADD COLUMN media_mime_type text;

-- When the conversation was handed to a person: it returns to the bot after an idle time.
ALTER TABLE conversations ADD COLUMN handoff_at timestamptz;
