"""Evolve at a rig: the in-silico array streams spike events or broadband voltage over LSL.

Real processes throughout (as in ``test_session_evolve``, which covers binned counts): the array
simulator streams one of the rig's forms, acquire turns it into spike counts (events binned;
broadband band-passed and threshold-crossed), and with ``unit = "best"`` a probe block picks the
site before evolution. Each session must climb, and pick the unit the simulator made most
responsive.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from session_helpers import read_summary, run_session, write_config

pytestmark = pytest.mark.slow

N_POP, N_REF, GENERATIONS = 10, 1, 10


def rig_config(tmp_path, kind: str, n_units: int, sample_format: str):
    name = tmp_path.name
    return write_config(
        tmp_path / "rig.toml",
        session={"mode": "evolve", "heartbeat_timeout_s": 10.0},
        timing={"time_scale": 1.0, "stimulus_s": 0.1, "isi_s": 0.1},
        acquire={
            "delay_s": 0.05,
            "window_s": 0.15,
            "baseline_s": 0.05,
            "streams": [{"name": f"rig-{name}", "type": "Raw", "subject": 0, "kind": kind}],
        },
        evolve={
            "generations": GENERATIONS,
            "population_size": N_POP,
            "n_reference": N_REF,
            "unit": "best",
            "probe_images": 8,
            "probe_repeats": 4,
            "seed": 1,
        },
        simulate={
            "n_units": n_units,
            "diverse": True,
            "peak_hz": 200.0,
            "baseline_hz": 5.0,
            "seed": 9,
            "sample_format": sample_format,
        },
        record={"xdf": False},
    )


@pytest.mark.parametrize(
    ("kind", "n_units", "sample_format"),
    # Broadband is the form with the most between the rig and the fitness (band-pass, threshold,
    # dead time). The other two are covered without a whole session each: binned counts end to
    # end in test_session_evolve, spike events from another program through acquire in
    # test_node_acquire_rig (and the binning in test_spikes), the probe's choice in
    # test_site_choice.
    [("broadband", 8, "int16")],
)
def test_rig_session_picks_the_most_responsive_unit_and_climbs(
    tmp_path, kind, n_units, sample_format
):
    out = tmp_path / "session"
    done = run_session(rig_config(tmp_path, kind, n_units, sample_format), out, mode="evolve")
    assert done.returncode == 0, done.stderr[-3000:]
    summary = read_summary(out)
    assert summary["reason"] == "schedule done" and summary["errors"] == []
    units = json.loads((out / "simulate" / "units.json").read_text())
    assert units["kind"] == kind
    target = summary["target"]
    assert target["unit"] == "best"
    assert target["sites"] == [units["most_responsive"]], (target, units)
    probe = target["probe"]
    assert len(probe["score"]) == len(probe["evoked_hz"]) == n_units
    assert probe["n_trials"] == probe["n_scheduled"] == 32
    mean = summary["fitness"]["mean"]
    assert summary["generations"] == GENERATIONS and summary["missing"] == 0
    assert np.mean(mean[-3:]) > 1.5 * mean[0], mean
    assert np.mean(mean[-3:]) > summary["fitness"]["reference_mean"], summary["fitness"]
    assert (out / "probe.png").stat().st_size > 1000
    assert "chosen by the probe block" in done.stdout
    # The simulator's ground truth is in the session folder.
    with np.load(out / "simulate" / "ground_truth.npz") as truth:
        truth_size = truth["times"].size
        assert truth_size > 100
        assert set(np.unique(truth["units"])) <= set(range(n_units))
    counters = summary["nodes"]["acquire"]["counters"]
    assert counters["bad_trials"] == 0
    if kind != "counts":  # acquire found (broadband) or binned (events) about every spike
        assert counters["spikes"] == pytest.approx(truth_size, rel=0.05)
