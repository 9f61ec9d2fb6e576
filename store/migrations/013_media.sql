-- Media customers send (image, audio, video, document, sticker), downloaded through the
-- Graph API media endpoint up to a size cap. Meta keeps media for a limited time only.
CREATE TABLE media (
    message_id   bigint PRIMARY KEY REFERENCES messages(id) ON DELETE CASCADE,
    media_id     text        NOT NULL,
    mime_type    text,
    size_bytes   bigint,
    sha256       text,
    content      bytea,       -- NULL when over MEDIA_MAX_BYTES or the download failed
    error        text,
    fetched_at   timestamptz NOT NULL DEFAULT now()
);
