"""The decode report reads a session's bus log: malformed latents are counted, not fatal."""

from __future__ import annotations

import numpy as np
from session_helpers import REPO

from bci.bus.log import BusLogWriter
from bci.bus.message import Message
from bci.session.config import validate_config
from bci.session.decode_report import decode_report
from bci.stimulus_set import load_stimulus_set

STIMULI = REPO / "stimuli" / "demo-faces"


def test_latents_without_trial_or_stimulus_are_skipped_and_the_rest_scored(tmp_path) -> None:
    """A ``latents`` message without ``stimulus`` once left a summary with no metrics, exit 0."""
    stimuli = load_stimulus_set(STIMULI)
    config = validate_config({"stimuli": {"path": str(STIMULI)}})
    writer = BusLogWriter(tmp_path / "bus")
    rng = np.random.default_rng(0)
    for trial in range(4):
        latent = stimuli.latents[trial] + 0.1 * rng.standard_normal(stimuli.latent_dim)
        meta = {"trial": trial, "stimulus": stimuli.ids[trial]}
        writer.write(Message("latents", "latent", meta=meta, arrays=[latent.astype(np.float32)]))
    bad = [{"trial": 9}, {"stimulus": stimuli.ids[5]}, {"trial": "9", "stimulus": stimuli.ids[5]}]
    for meta in bad:
        writer.write(
            Message("latents", "latent", meta=meta, arrays=[np.zeros(stimuli.latent_dim, "f4")])
        )
    writer.close()
    report = decode_report(tmp_path, config)
    assert report["skipped_latents"] == 3
    assert report["trials"]["test"] == 4
    assert report["decoding"]["n"] == 4 and report["decoding"]["latent_correlation"] > 0.9
