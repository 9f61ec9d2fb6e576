-- Operators of the dashboard and the REST API. The first user registered becomes admin.
CREATE TABLE users (
    id             bigserial PRIMARY KEY,
    email          text        NOT NULL,
    display_name   text        NOT NULL,
    password_hash  text        NOT NULL,   -- argon2id, encoded with its parameters
    role           text        NOT NULL CHECK (role IN ('admin', 'agent')),
    created_at     timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX users_email_idx ON users (lower(email));

-- Refresh tokens: only a SHA-256 of the token is kept, so a database leak cannot replay them.
CREATE TABLE refresh_tokens (
    id          bigserial PRIMARY KEY,
    user_id     bigint      NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    token_hash  text        NOT NULL UNIQUE,
    expires_at  timestamptz NOT NULL,
    revoked_at  timestamptz,
    created_at  timestamptz NOT NULL DEFAULT now()
);

-- Admin invitations, the way in once the first user exists (REGISTRATION_MODE=invite).
CREATE TABLE invites (
    id          bigserial PRIMARY KEY,
    token_hash  text        NOT NULL UNIQUE,
    email       text,
    role        text        NOT NULL CHECK (role IN ('admin', 'agent')),
    created_by  bigint      REFERENCES users(id) ON DELETE SET NULL,
    expires_at  timestamptz NOT NULL,
    used_at     timestamptz,
    created_at  timestamptz NOT NULL DEFAULT now()
);

ALTER TABLE conversations ADD COLUMN assigned_user_id bigint REFERENCES users(id) ON DELETE SET NULL;
ALTER TABLE conversations ADD COLUMN labels text[] NOT NULL DEFAULT '{}';
CREATE INDEX conversations_updated_idx ON conversations (updated_at DESC, id DESC);
CREATE INDEX conversations_labels_idx ON conversations USING gin (labels);

-- An outbound message typed by an operator carries who sent it (bot replies leave it NULL).
ALTER TABLE messages ADD COLUMN sent_by_user_id bigint REFERENCES users(id) ON DELETE SET NULL;

-- Every status an outbound message took, in order. A trigger fills it, so every writer
-- (delivery actors, status webhooks, agent replies) is covered without each one knowing.
CREATE TABLE message_statuses (
    id           bigserial PRIMARY KEY,
    message_id   bigint      NOT NULL REFERENCES messages(id) ON DELETE CASCADE,
    status       text        NOT NULL,
    error_code   integer,
    at           timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX message_statuses_message_idx ON message_statuses (message_id, id);

CREATE FUNCTION record_message_status() RETURNS trigger AS $$
BEGIN
    IF NEW.direction = 'outbound'
       AND (TG_OP = 'INSERT' OR NEW.status IS DISTINCT FROM OLD.status) THEN
        INSERT INTO message_statuses (message_id, status, error_code)
        VALUES (NEW.id, NEW.status, NEW.error_code);
    END IF;
    RETURN NULL;
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER messages_status_history
    AFTER INSERT OR UPDATE OF status ON messages
    FOR EACH ROW EXECUTE FUNCTION record_message_status();

-- Replies an operator picks from the reply box.
CREATE TABLE canned_responses (
    id          bigserial PRIMARY KEY,
    title       text        NOT NULL UNIQUE,
    body        text        NOT NULL,
    created_by  bigint      REFERENCES users(id) ON DELETE SET NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);
