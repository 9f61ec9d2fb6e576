"""Scripted conversation flows declared in YAML (triggers and actions), and business hours."""
