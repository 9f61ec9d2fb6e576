-- Refresh-token families (OAuth 2.0 Security BCP §4.14): every token a login's rotations
-- produce shares the login's family. A token presented again after it was rotated is a
-- replay, by a thief or by the operator whose token was stolen: the whole family is revoked.
ALTER TABLE refresh_tokens ADD COLUMN family uuid NOT NULL DEFAULT gen_random_uuid();
-- Set when the token was traded for its successor (revoked_at is set too); a logout
-- sets revoked_at alone.
ALTER TABLE refresh_tokens ADD COLUMN rotated_at timestamptz;
CREATE INDEX refresh_tokens_family_idx ON refresh_tokens (family);
