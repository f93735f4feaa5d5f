"""The validation layer of session configs: typed tables, one default each, bounds, one-line errors.

A table is a frozen dataclass that derives from :class:`Table`. Each key is one line: its type
(the annotation), its default and its bounds, e.g. ::

    tr_s: float = Key(2.0, positive, at_most(60.0))

:meth:`Table.from_dict` checks a parsed table against those lines: unknown keys, types (an
integer is accepted as a number; nan and inf are not), bounds, missing required keys. Tables of
tables are typed too: a ``list[Stream]`` key is read from ``[[name.key]]`` tables, a
``dict[str, Node]`` key from ``[name.key.NAME]`` tables. Every problem is one line naming the
file, the table and the key. A table reads as attributes (``config.timing.tr_s``) and, read-only,
as the nested dict it replaces (``config["timing"]["tr_s"]``, ``.get``); :meth:`Table.to_dict`
gives that plain dict (the session file, the bus), and ``from_dict`` reads it back.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from collections.abc import Callable, Iterator, Mapping
from typing import Any

Check = Callable[[Any], "str | None"]


class ConfigError(ValueError):
    """A session config is invalid; the message names the file, the key and the problem."""


REQUIRED: Any = dataclasses.MISSING
"""The default of a key a table must give (``path: str = Key(REQUIRED)``)."""


def Key(default: Any = REQUIRED, *checks: Check, internal: bool = False) -> Any:  # noqa: N802
    """Declare one key of a :class:`Table`: its default (or :data:`REQUIRED`) and its checks.

    Parameters
    ----------
    default : Any
        The value when the key is absent (a list or dict is copied for every table);
        :data:`REQUIRED` for a key without a default, which a table must give.
    *checks : callable
        Each returns a complaint (``"must be > 0, got -1.0"``) or None.
    internal : bool
        Set by the session itself, never by a config file (e.g. the replay of ``--replay``).
    """
    metadata = {"checks": checks, "internal": internal}
    if default is REQUIRED:
        return dataclasses.field(metadata=metadata)
    if isinstance(default, list | dict):
        return dataclasses.field(default_factory=lambda: type(default)(default), metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


# -- checks ------------------------------------------------------------------------------------
def positive(v: Any) -> str | None:
    return None if v > 0 else f"must be > 0, got {v!r}"


def non_negative(v: Any) -> str | None:
    return None if v >= 0 else f"must be >= 0, got {v!r}"


def at_most(limit: float) -> Check:
    """A bound above which a value would break the session's timing or memory."""
    shown = str(limit) if isinstance(limit, int) else f"{limit:g}"

    def check(v: Any) -> str | None:
        return None if v <= limit else f"must be <= {shown}, got {v!r}"

    return check


def one_of(*choices: str) -> Check:
    def check(v: Any) -> str | None:
        return (
            None if v in choices else f"must be one of {', '.join(map(repr, choices))}, got {v!r}"
        )

    return check


# -- the tables --------------------------------------------------------------------------------
class Table(Mapping):
    """Base of every config table: typed attributes, read-only mapping access, dict round trip.

    The mapping holds the keys whose value is not None, as the dict it replaces did.
    """

    def __getitem__(self, name: str) -> Any:
        value = getattr(self, name, None) if name in _field_names(type(self)) else None
        if value is None:
            raise KeyError(name)
        return value

    def __iter__(self) -> Iterator[str]:
        return (n for n in _field_names(type(self)) if getattr(self, n) is not None)

    def __len__(self) -> int:
        return sum(1 for _ in self)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({', '.join(f'{k}={v!r}' for k, v in self.items())})"

    def to_dict(self) -> dict[str, Any]:
        """The table as plain data (dicts, lists, scalars); None values are left out."""
        return {k: _plain(v) for k, v in self.items()}

    @classmethod
    def from_dict(cls, data: Any, where: str = "", source: str = "<config>") -> Any:
        """Check ``data`` (a parsed table) against the declaration; return the typed table.

        Parameters
        ----------
        data : Any
            A mapping, or None for an absent table (every key then takes its default).
        where : str
            The table as a user writes it (``"[timing]"``, ``"[[acquire.streams]] #2"``);
            by default the class name (``"[timing]"`` for ``Timing``).
        source : str
            The config file's name, for the message.

        Raises
        ------
        ConfigError
            One line naming the file, the table and the key.
        """
        return build(cls, data, where or f"[{cls.__name__.lower()}]", source)


def build(cls: type, data: Any, where: str, source: str) -> Any:
    """``data`` checked against the :class:`Table` class ``cls`` (see :meth:`Table.from_dict`)."""
    return _build(cls, data, where, _dotted(where), source)


def _field_names(cls: type) -> tuple[str, ...]:
    return tuple(f.name for f in dataclasses.fields(cls))


def _plain(value: Any) -> Any:
    if isinstance(value, Table):
        return value.to_dict()
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


def _dotted(where: str) -> str:
    """``"[[acquire.streams]] #2"`` -> ``"acquire.streams"``; ``"[timing]"`` -> ``"timing"``."""
    return where.split(" #")[0].strip("[]")


def _hints(cls: type) -> dict[str, Any]:
    cached = cls.__dict__.get("_hints_cache")
    if cached is None:
        cached = typing.get_type_hints(cls)
        type.__setattr__(cls, "_hints_cache", cached)
    return cached


def _is_table(hint: Any) -> bool:
    return isinstance(hint, type) and issubclass(hint, Table)


def _build(cls: type, data: Any, where: str, dotted: str, source: str) -> Any:
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        raise ConfigError(f"{source}: {where} must be a table, got {type(data).__name__}")
    keys = _field_names(cls)
    unknown = sorted(set(data) - set(keys))
    if unknown:
        raise ConfigError(
            f"{source}: unknown key {unknown[0]!r} in {where} (known: {', '.join(sorted(keys))})"
        )
    hints = _hints(cls)
    values = {}
    for f in dataclasses.fields(cls):
        hint = hints[f.name]
        child = f"{dotted}.{f.name}" if dotted else f.name
        if f.name not in data:
            if _is_table(hint):  # an absent table: its keys' defaults (and required keys)
                values[f.name] = _build(hint, None, f"[{child}]", child, source)
            elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                raise ConfigError(f"{source}: {where} needs key {f.name!r}")
            continue
        label = f"{where} {f.name}" if where else f"[{f.name}]"
        value = _convert(data[f.name], hint, label, child, source)
        for check in f.metadata.get("checks", ()):
            problem = check(value)
            if problem:
                raise ConfigError(f"{source}: {label} {problem}")
        values[f.name] = value
    return cls(**values)


_NAMES = {
    bool: "true or false",
    int: "an integer",
    float: "a number",
    str: "a string",
}
_PLURALS = {bool: "booleans", int: "integers", float: "numbers", str: "strings"}


def _type_name(hint: Any) -> str:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_type_name(a) for a in args if a is not type(None))
    if origin is list:
        return f"a list of {_PLURALS.get(args[0], 'tables')}" if args else "a list"
    if origin is dict or _is_table(hint):
        return "a table"
    return _NAMES.get(hint, getattr(hint, "__name__", str(hint)))


def _scalar(value: Any, kind: type) -> tuple[bool, Any]:
    """Whether ``value`` is a ``kind`` (an integer counts as a number), and the value as one."""
    if isinstance(value, bool) and kind is not bool:
        return False, value
    if kind is float and isinstance(value, int | float):
        return True, float(value)
    return isinstance(value, kind), value


def _convert(value: Any, hint: Any, label: str, dotted: str, source: str) -> Any:
    """``value`` checked against the annotation ``hint`` (scalars, lists, unions, tables)."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    wrong = ConfigError(f"{source}: {label} must be {_type_name(hint)}, got {value!r}")
    if _is_table(hint):
        return _build(hint, value, f"[{dotted}]", dotted, source)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        members = [a for a in args if a is not type(None)]
        if len(members) == 1:  # an optional key: its own message
            return _convert(value, members[0], label, dotted, source)
        for arg in members:
            try:
                return _convert(value, arg, label, dotted, source)
            except ConfigError:
                continue
        raise wrong
    if origin is list:
        if not isinstance(value, list):
            raise wrong
        (item,) = args
        if _is_table(item):
            return [
                _build(item, v, f"[[{dotted}]] #{i}", dotted, source)
                for i, v in enumerate(value, start=1)
            ]
        out = []
        for v in value:
            ok, v = _scalar(v, item)
            if not ok:
                raise wrong
            if isinstance(v, float) and not math.isfinite(v):
                raise ConfigError(f"{source}: {label} must hold finite numbers, got {value!r}")
            out.append(v)
        return out
    if origin is dict:
        if not isinstance(value, Mapping):
            raise wrong
        _, item = args
        return {
            str(k): _build(item, v, f"[{dotted}.{k}]", f"{dotted}.{k}", source)
            for k, v in value.items()
        }
    ok, value = _scalar(value, hint)
    if not ok:
        raise wrong
    if isinstance(value, float) and not math.isfinite(value):
        raise ConfigError(f"{source}: {label} must be a finite number, got {value!r}")
    return value


def table(cls: type) -> type:
    """Make ``cls`` a config table: a frozen, keyword-only dataclass (see the module docstring)."""
    return dataclasses.dataclass(frozen=True, kw_only=True, eq=False, repr=False)(cls)
