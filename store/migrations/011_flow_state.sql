-- Scripted flows: the variables a conversation collected (order number, ...) and the
-- question it is waiting on, if any ({"flow", "step", "field"}).
ALTER TABLE conversations ADD COLUMN variables jsonb NOT NULL DEFAULT '{}'::jsonb;
ALTER TABLE conversations ADD COLUMN flow_state jsonb;
