"""Ray actors and the Ray boundary: conversation shards, the LLM pool and delivery."""
