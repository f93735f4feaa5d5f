"""The config's validation layer lives in :mod:`bci.config.schema` (below the nodes, which read
the config too); its names are re-exported here for the session's callers."""

from bci.config.schema import (
    REQUIRED,
    ConfigError,
    Key,
    Table,
    at_most,
    non_negative,
    one_of,
    positive,
)

__all__ = [
    "REQUIRED",
    "ConfigError",
    "Key",
    "Table",
    "at_most",
    "non_negative",
    "one_of",
    "positive",
]
