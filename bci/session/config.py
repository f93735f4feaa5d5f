"""Session configs from files: read a TOML file, resume a session's config, replay, write TOML.

The tables, their keys, defaults and bounds are :mod:`bci.config.tables`; this module reads them
from a file (paths in a config are relative to the config file's folder, so a config works from
any working directory), from a session folder's ``session.json`` (validated the same way), and
writes them as TOML. Every problem is reported as one line naming the file, the table and the key.
"""

from __future__ import annotations

import dataclasses
import json
import math
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import tomli_w

from bci.config.schema import ConfigError
from bci.config.tables import FILE_TABLES, MODES, NODES, Replay, SessionConfig, Timing

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

__all__ = [
    "MODES",
    "NODES",
    "ConfigError",
    "SessionConfig",
    "config_to_toml",
    "load_config",
    "resumed_config",
    "validate_config",
    "with_replay",
]


def load_config(path: str | Path) -> SessionConfig:
    """Read and validate a session config.

    Parameters
    ----------
    path : str | Path
        A TOML file.

    Returns
    -------
    SessionConfig
        Every table with every key present; ``config.source`` is the file path.
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as err:
        raise ConfigError(f"{path}: not valid TOML ({err})") from None
    except RecursionError:
        raise ConfigError(f"{path}: not valid TOML (nested too deeply)") from None
    except OSError as err:
        raise ConfigError(f"{path}: cannot read the config ({err.strerror or err})") from None
    return validate_config(raw, source=str(path), base=path.parent)


def validate_config(
    raw: Mapping[str, Any], source: str = "<config>", base: Path = Path()
) -> SessionConfig:
    """Validate an already-parsed config file (see :func:`load_config`)."""
    known = sorted(n for n in FILE_TABLES if n != "runs")
    unknown = sorted(set(raw) - set(FILE_TABLES))
    if unknown:
        raise ConfigError(f"{source}: unknown table [{unknown[0]}] (known: {', '.join(known)})")
    return SessionConfig.from_dict(raw, source=source, base=base)


def resumed_config(folder: str | Path) -> SessionConfig:
    """The validated config of the session in ``folder`` (from its ``session.json``).

    Raises
    ------
    ConfigError
        The folder holds no readable session file, or its config is not valid.
    """
    path = Path(folder) / "session.json"
    try:
        config = json.loads(path.read_text())["config"]
    except (OSError, ValueError, KeyError, TypeError, RecursionError) as err:
        raise ConfigError(f"cannot resume {folder}: no readable session.json ({err})") from None
    return SessionConfig.from_dict(config, source=str(path))


def with_replay(config: SessionConfig, recording: Path, speed: float) -> SessionConfig:
    """``config`` set up to replay ``recording`` at ``speed`` instead of running live.

    The recording's streams stand in for the live sources (the supervisor starts the replay node
    instead of the simulator and the display). At ``speed`` X the replayed time stamps run X
    times faster, so the session's time scale is multiplied by X; at speed 0 (as fast as
    possible) the stamps keep the recorded spacing and the time scale is unchanged.

    Raises
    ------
    ConfigError
        The speed would take ``[timing] time_scale`` past its bound.
    """
    folder = recording.parent
    replay = Replay(
        path=str(recording),
        speed=float(speed),
        source_session=str(folder) if (folder / "session.json").is_file() else "",
    )
    timing = config.timing
    if speed > 0:
        timing = dataclasses.replace(timing, time_scale=timing.time_scale * speed)
    try:
        at = Timing.from_dict(timing.to_dict(), "[timing]", config.source)
    except ConfigError as err:
        raise ConfigError(f"--speed {speed:g}: {err}") from None
    return dataclasses.replace(config, replay=replay, timing=at)


def _toml_ready(value: Any, where: str) -> Any:
    """``value`` as TOML data: None keys left out, nan and inf refused."""
    if isinstance(value, Mapping):
        return {k: _toml_ready(v, f"{where}.{k}") for k, v in value.items() if v is not None}
    if isinstance(value, list | tuple):
        return [_toml_ready(v, where) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        raise ConfigError(f"{where.lstrip('.')} = {value!r}: TOML configs hold finite numbers")
    return value


def config_to_toml(raw: Mapping[str, Any]) -> str:
    """Write a config (a dict as :func:`load_config` reads it, or a :class:`SessionConfig`) as TOML.

    ``[acquire] streams`` and ``runs`` become arrays of tables. None values are left out; nan and
    inf are refused (TOML would hold them, the config does not). Scripts and tests that build
    sessions use it; :func:`load_config` reads the result back.
    """
    if isinstance(raw, SessionConfig):
        raw = {k: v for k, v in raw.to_dict().items() if k in FILE_TABLES}
    return tomli_w.dumps(_toml_ready(raw, ""))
