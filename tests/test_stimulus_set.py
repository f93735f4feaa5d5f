"""Stimulus set folders: round trip, the shipped demo set, and clear errors for broken folders."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from bci.stimulus_set import load_stimulus_set, make_stimulus_set, save_stimulus_set

DEMO = Path(__file__).resolve().parents[1] / "stimuli" / "demo-faces"


def test_round_trip(tmp_path):
    s = make_stimulus_set(5, 3, seed=1, prefix="x")
    loaded = load_stimulus_set(save_stimulus_set(s, tmp_path / "set"))
    np.testing.assert_array_equal(loaded.latents, s.latents)
    assert loaded.ids == ("x-0000", "x-0001", "x-0002", "x-0003", "x-0004")
    assert loaded.generator == "default" and loaded.meta == {"seed": 1}
    assert loaded.index_of("x-0003") == 3
    with pytest.raises(KeyError, match="stimulus id 'y' is not in this stimulus set"):
        loaded.index_of("y")


def test_shipped_demo_set_is_reproducible():
    demo = load_stimulus_set(DEMO)
    again = make_stimulus_set(len(demo), demo.latent_dim, seed=demo.meta["seed"])
    np.testing.assert_array_equal(demo.latents, again.latents)
    assert demo.latent_dim == 32 and len(demo) == 200


def test_broken_folders(tmp_path):
    folder = save_stimulus_set(make_stimulus_set(4, 2, seed=0), tmp_path / "s")
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest["ids"] = manifest["ids"][:3]
    (folder / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ValueError, match="manifest lists 3 ids for 4 latents"):
        load_stimulus_set(folder)
    (folder / "manifest.json").write_text("{not json")
    with pytest.raises(ValueError, match="manifest.json is not valid JSON"):
        load_stimulus_set(folder)
    bad = np.zeros((4, 2), np.float32)
    bad[0, 0] = np.nan
    np.save(folder / "latents.npy", bad)
    manifest["ids"] = ["a", "b", "c", "d"]
    (folder / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ValueError, match="latents contain NaN or Inf"):
        load_stimulus_set(folder)
    with pytest.raises(FileNotFoundError, match="has no latents.npy"):
        load_stimulus_set(tmp_path)
