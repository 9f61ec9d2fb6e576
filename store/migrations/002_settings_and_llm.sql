-- Operator-edited settings (system prompt, models, FAQ, ...): they replace the environment's
-- defaults without a restart. One row per key; the value's shape is validated by the app.
CREATE TABLE app_settings (
    key         text PRIMARY KEY,
    value       jsonb       NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT now(),
    updated_by  text
);

-- LLM accounting per reply: attempts (models tried) and latency, beside model and tokens.
ALTER TABLE messages ADD COLUMN llm_attempts integer;
ALTER TABLE messages ADD COLUMN llm_latency_ms real;

-- Conversations the bot handed to a person (LLM pool gave up, keyword, flow, operator).
ALTER TABLE conversations ADD COLUMN needs_human boolean NOT NULL DEFAULT false;
ALTER TABLE conversations ADD COLUMN handoff_reason text;
