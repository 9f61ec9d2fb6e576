"""Declarative configuration: settings from the environment and shipped data files."""

from config.settings import ProductionConfigError, Settings, load_settings

__all__ = ["ProductionConfigError", "Settings", "load_settings"]
