"""Persistence: SQL on Postgres (the source of truth) and state snapshots in Redis.

Nothing in this package calls Ray or answers HTTP.
"""
