"""The typed session config: its tables and their one validation layer."""

from bci.config.schema import ConfigError, Table
from bci.config.tables import MODES, NODES, SessionConfig

__all__ = ["MODES", "NODES", "ConfigError", "SessionConfig", "Table"]
