"""How a replayed session compares with the live session it replays (``summary["replay"]``)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from bci.config import SessionConfig
from bci.evolve.checkpoint import CHECKPOINT, load_checkpoint

DECODED = "decoded_latents.npz"


def _decoded(folder: Path) -> dict[int, np.ndarray]:
    with np.load(folder / DECODED) as f:
        return {int(t): z for t, z in zip(f["trial"], f["decoded"], strict=True)}


def _generations(folder: Path) -> list[dict]:
    return load_checkpoint(folder / CHECKPOINT)["history"]


def replay_report(out: str | Path, config: SessionConfig) -> dict:
    """Compare the replay's results in ``out`` with those of the recorded session.

    Parameters
    ----------
    out : str | Path
        The replay's session folder.
    config : SessionConfig
        Its config (``config.replay`` names the recording and its session folder).

    Returns
    -------
    dict
        ``recording``, ``speed``, ``source_session`` and, when the source session's results
        are there, the comparison: decode mode ``trials_compared``, ``trials_missing`` and
        ``max_latent_difference`` (max |replayed - live| over the trials both decoded); evolve
        mode ``generations_compared`` and ``max_fitness_difference``.
    """
    out = Path(out)
    replay = config.replay
    report = {
        "recording": replay.path,
        "speed": replay.speed,
        "source_session": replay.source_session or None,
    }
    source = Path(replay.source_session) if replay.source_session else None
    if source is None:
        return report
    try:
        if config.session.mode == "decode":
            live, replayed = _decoded(source), _decoded(out)
            both = sorted(set(live) & set(replayed))
            diff = max((float(np.max(np.abs(live[t] - replayed[t]))) for t in both), default=None)
            report.update(
                trials_compared=len(both),
                trials_missing=len(set(live) - set(replayed)),
                max_latent_difference=diff,
            )
        else:
            live, replayed = _generations(source), _generations(out)
            n = min(len(live), len(replayed))
            diffs = [
                float(np.nanmax(np.abs(np.asarray(a["fitness"]) - np.asarray(b["fitness"]))))
                for a, b in zip(live[:n], replayed[:n], strict=True)
                if np.isfinite(a["fitness"]).any()
            ]
            report.update(
                generations_compared=n,
                max_fitness_difference=max(diffs, default=None),
            )
    except (OSError, KeyError, ValueError) as err:
        report["comparison_error"] = f"{type(err).__name__}: {err}"
    return report
