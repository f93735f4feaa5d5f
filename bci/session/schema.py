"""A small declarative schema for TOML session configs: types, defaults, bounds, one-line errors."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


class ConfigError(ValueError):
    """A session config is invalid; the message names the file, the key and the problem."""


@dataclass(frozen=True)
class Key:
    """One config key: its type, default, and an optional check returning a complaint or None."""

    kind: type | tuple[type, ...]
    default: Any = None
    check: Callable[[Any], str | None] | None = None
    required: bool = False


def positive(v: Any) -> str | None:
    return None if v > 0 else f"must be > 0, got {v!r}"


def non_negative(v: Any) -> str | None:
    return None if v >= 0 else f"must be >= 0, got {v!r}"


def one_of(*choices: str) -> Callable[[Any], str | None]:
    def check(v: Any) -> str | None:
        return (
            None if v in choices else f"must be one of {', '.join(map(repr, choices))}, got {v!r}"
        )

    return check


def _type_name(kind: type | tuple[type, ...]) -> str:
    kinds = kind if isinstance(kind, tuple) else (kind,)
    names = {
        bool: "true or false",
        int: "an integer",
        float: "a number",
        str: "a string",
        list: "a list",
        dict: "a table",
    }
    return " or ".join(names.get(k, k.__name__) for k in kinds)


def _matches(value: Any, kind: type | tuple[type, ...]) -> bool:
    kinds = kind if isinstance(kind, tuple) else (kind,)
    if isinstance(value, bool) and bool not in kinds:
        return False
    if float in kinds and isinstance(value, int) and not isinstance(value, bool):
        return True
    return isinstance(value, kinds)


def validate_table(where: str, table: Any, keys: dict[str, Key], source: str) -> dict[str, Any]:
    """Check one TOML table against ``keys``; return it with defaults filled in.

    Parameters
    ----------
    where : str
        The table's name as a user writes it, e.g. ``"[timing]"`` or ``"[[acquire.streams]] #2"``.
    table : Any
        The parsed table (a dict), or None when absent.
    keys : dict
        The schema of the table.
    source : str
        The config file's name, for the message.
    """
    if table is None:
        table = {}
    if not isinstance(table, dict):
        raise ConfigError(f"{source}: {where} must be a table, got {type(table).__name__}")
    unknown = sorted(set(table) - set(keys))
    if unknown:
        raise ConfigError(
            f"{source}: unknown key {unknown[0]!r} in {where} (known: {', '.join(sorted(keys))})"
        )
    out = {}
    for name, key in keys.items():
        if name not in table:
            if key.required:
                raise ConfigError(f"{source}: {where} needs key {name!r}")
            out[name] = key.default
            continue
        value = table[name]
        if not _matches(value, key.kind):
            raise ConfigError(
                f"{source}: {where} {name} must be {_type_name(key.kind)}, got {value!r}"
            )
        if isinstance(value, int) and not isinstance(value, bool) and key.kind is float:
            value = float(value)
        if key.check is not None:
            problem = key.check(value)
            if problem:
                raise ConfigError(f"{source}: {where} {name} {problem}")
        out[name] = value
    return out
