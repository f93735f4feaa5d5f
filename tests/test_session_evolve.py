"""bci-session --mode evolve end to end: the optimiser drives an in-silico neuron over LSL.

Real processes throughout: render (torch), display (pygame, dummy driver) pushing LSL markers,
in-silico units streaming 1 kHz spike counts over LSL, acquire counting spikes after each onset,
the evolve node breeding the next generation, all on a real ZeroMQ bus.
"""

from __future__ import annotations

import os
import signal
import time

import numpy as np
import pytest
from harness import NodeProcess
from session_helpers import (
    REPO,
    node_name,
    node_processes,
    outputs_not_in_readme,
    read_summary,
    run_session,
    start_session,
    write_config,
)

from bci.bus import Publisher
from bci.bus.log import read_bus_log
from bci.evolve import from_state_dict
from bci.evolve.checkpoint import load_checkpoint
from bci.session.config import validate_config

pytestmark = pytest.mark.slow

N_POP, N_REF = 10, 1


def evolve_config(tmp_path, generations: int, **tables):
    """A short evolve session: 10 latents + 1 reference per generation, 100 ms on / 100 ms off."""
    name = tmp_path.name
    base = {
        "session": {"mode": "evolve", "heartbeat_timeout_s": 10.0},
        "timing": {"time_scale": 1.0, "stimulus_s": 0.1, "isi_s": 0.1},
        "acquire": {
            "delay_s": 0.05,
            "window_s": 0.15,
            "baseline_s": 0.05,
            "streams": [{"name": f"units-{name}", "type": "Spikes", "subject": 0}],
        },
        "evolve": {
            "generations": generations,
            "population_size": N_POP,
            "n_reference": N_REF,
            "seed": 1,
        },
        "simulate": {"n_units": 2, "peak_hz": 200.0, "baseline_hz": 5.0, "seed": 3},
    }
    for key, table in tables.items():
        base[key] = {**base.get(key, {}), **table}
    return write_config(tmp_path / "evolve.toml", **base)


@pytest.fixture(scope="module")
def finished_session(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("evolve")
    out = tmp / "session"
    done = run_session(evolve_config(tmp, generations=10), out, mode="evolve")
    return done, out


def test_evolve_session_drives_the_unit_harder(finished_session):
    done, out = finished_session
    assert done.returncode == 0, done.stderr[-3000:]
    summary = read_summary(out)
    assert summary["mode"] == "evolve" and summary["reason"] == "schedule done"
    assert summary["generations"] == 10
    assert summary["evaluations"] == 10 * (N_POP + N_REF)
    assert summary["missing"] == 0
    mean, best = summary["fitness"]["mean"], summary["fitness"]["max"]
    assert len(mean) == len(best) == 10
    # The population climbs: its last generations respond clearly more than the first (random
    # latents) and than the reference images, which are shown all along but not optimised.
    assert np.mean(mean[-3:]) > 1.5 * mean[0], mean
    assert np.mean(mean[-3:]) > 1.5 * summary["fitness"]["reference_mean"], summary["fitness"]
    assert summary["fitness"]["best"] == max(best)
    assert summary["fitness"]["reference_mean"] is not None
    assert summary["dropped"] == {} and summary["errors"] == []
    assert {n: f["exit_code"] for n, f in summary["nodes"].items()} == {
        n: 0 for n in ("record", "simulate", "render", "display", "acquire", "evolve")
    }
    assert "generations: 10, evaluations 110, missing responses 0" in done.stdout
    # The recording holds every sample every stream sent, the last generation's too.
    recording = summary["recording"]
    assert recording["file"] == "recording.xdf" and recording["samples_lost"] == 0
    streams = recording["streams"]
    assert {"bci-fitness", "bci-latents", "bci-pipeline", "bci-responses-00"} <= set(streams)
    assert all(c["sent"] == c["recorded"] > 0 for c in streams.values()), streams
    assert streams["bci-fitness"]["recorded"] == 10 * (N_POP + N_REF)


def test_evolve_session_folder_has_figures_checkpoint_and_no_orphans(finished_session):
    _, out = finished_session
    for name in ("fitness.png", "best.png", "evolve/checkpoint.npz"):
        assert (out / name).stat().st_size > 1000, name
    history = load_checkpoint(out / "evolve" / "checkpoint")["history"]
    assert [h["generation"] for h in history] == list(range(10))
    # Every image of every generation was shown, marked and answered exactly once.
    responses = read_bus_log(out / "bus", topics=("responses",))
    ids = [m.meta["stimulus"] for m in responses]
    assert len(ids) == len(set(ids)) == 10 * (N_POP + N_REF)
    assert outputs_not_in_readme(out) == []  # the README's table names every file written
    assert node_processes(str(out)) == []


def test_a_finished_session_is_not_resumed(finished_session):
    """Issue 12: ``--resume`` of a finished session restarted every node and overwrote the
    summary. It is refused with one line, and the folder is left as it was."""
    _, out = finished_session
    before = {p: p.read_bytes() for p in (out / "summary.json", out / "logs" / "evolve.log")}
    refused = run_session(None, out, mode="evolve", resume=True, timeout=60)
    assert refused.returncode == 2
    assert refused.stderr == (
        f"bci-session: cannot resume {out}: the session is finished (10 of 10 generations "
        "done); start a new one with --config\n"
    )
    assert {p: p.read_bytes() for p in before} == before


def test_resumed_session_continues_from_the_saved_generation(tmp_path):
    config = evolve_config(tmp_path, generations=6)
    out = tmp_path / "session"
    first = start_session(config, out, mode="evolve")
    checkpoint = out / "evolve" / "checkpoint.npz"
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and first.poll() is None:
            if checkpoint.is_file() and len(load_checkpoint(checkpoint)["history"]) >= 2:
                break
            time.sleep(0.05)
        first.send_signal(signal.SIGINT)
        _, stderr = first.communicate(timeout=30)
    finally:
        if first.poll() is None:
            first.kill()
    assert first.returncode == 130, stderr[-2000:]
    saved = load_checkpoint(out / "evolve" / "checkpoint")
    done_before = len(saved["history"])
    assert 2 <= done_before < 6
    expected = from_state_dict(saved["optimizer"]).ask()

    resumed = run_session(config, out, mode="evolve", resume=True)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    summary = read_summary(out)
    assert summary["generations"] == 6 and summary["reason"] == "schedule done"
    history = load_checkpoint(out / "evolve" / "checkpoint")["history"]
    assert [h["generation"] for h in history] == list(range(6))
    for before, after in zip(saved["history"], history, strict=False):
        np.testing.assert_array_equal(before["latents"], after["latents"])
    # The first generation of the resumed run is what the saved optimiser asks next.
    generations = read_bus_log(out / "bus", topics=("generations",))
    message = next(m for m in generations if m.meta["generation"] == done_before)
    rows = [
        (sid, z)
        for sid, z, ref in zip(
            message.meta["ids"], message.arrays[0], message.meta["reference"], strict=True
        )
        if not ref
    ]
    population = np.stack([z for _, z in sorted(rows, key=lambda r: r[0])])
    np.testing.assert_array_equal(population, expected)
    assert (out / "recording-2.xdf").is_file()  # the continuation's recording
    assert outputs_not_in_readme(out) == []
    assert node_processes(str(out)) == []


def test_missing_responses_become_nan_and_the_generation_completes(tmp_path):
    """The evolve node alone: the test plays render, display and acquire on a real bus."""
    raw = {
        "session": {"mode": "evolve"},
        "stimuli": {"path": str(REPO / "stimuli" / "demo-faces")},
        "evolve": {
            "generations": 2,
            "population_size": 4,
            "n_reference": 1,
            "response_timeout_s": 0.5,
        },
    }
    config = validate_config(raw)
    peer = Publisher(name="acquire")
    node = NodeProcess(
        "evolve", config, tmp_path, topics=["generations", "fitness"], peers={"acq": peer.endpoint}
    )
    try:
        assert node.wait_state("ready", 30.0), node.log()
        node.send("start")
        gen0 = node.recv(10.0, topic="generations")
        assert gen0 is not None, node.log()
        ids = gen0.meta["ids"]
        assert len(ids) == 5 and sum(gen0.meta["reference"]) == 1
        assert gen0.arrays[0].shape == (5, 32)
        assert peer.wait_for_subscribers("responses", timeout_ms=10_000)
        answered = {ids[0]: 12.0, ids[2]: 30.0}
        for sid, value in answered.items():
            peer.publish(
                "responses",
                [np.array([value / 1000.0, 0.0], np.float32)],
                kind="response",
                meta={"trial": 0, "stimulus": sid, "subject": 0, "rate_hz": 1000.0, "bad": None},
            )
        peer.publish(
            "responses",
            [np.zeros(2, np.float32)],
            kind="response",
            meta={"stimulus": ids[1], "subject": 0, "rate_hz": 1000.0, "bad": "stream stalled"},
        )
        peer.publish("events", kind="block_done", meta={"generation": 0, "node": "display"})
        fitness = node.recv(10.0, topic="fitness")
        assert fitness is not None, node.log()
        values = dict(zip(ids, [None] * 5, strict=True))
        population = [s for s in ids if "ref" not in s]
        by_id = dict(zip(sorted(population), fitness.arrays[0], strict=True))
        by_id.update(zip([s for s in ids if "ref" in s], fitness.arrays[1], strict=True))
        for sid in values:
            if sid in answered:
                assert by_id[sid] == pytest.approx(answered[sid], rel=1e-5)
            else:
                assert np.isnan(by_id[sid]), (sid, by_id)
        assert fitness.meta["missing"] == 3
        assert "3 of 5 responses missing after 0.5 s; NaN" in node.log()
        assert "is bad (stream stalled); NaN" in node.log()
        # The optimiser took the generation (NaN left out) and asks the next one.
        gen1 = node.recv(10.0, topic="generations")
        assert gen1 is not None and gen1.meta["generation"] == 1, node.log()
    finally:
        assert node.stop() == 0, node.log()
        peer.close()


def test_killed_unit_source_stops_the_session_with_its_name(tmp_path):
    config = evolve_config(tmp_path, generations=30)
    out = tmp_path / "session"
    proc = start_session(config, out, mode="evolve")
    try:
        checkpoint = out / "evolve" / "checkpoint.npz"
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not checkpoint.is_file():
            time.sleep(0.05)
        pids = [p for p in node_processes(str(out)) if node_name(p) == "simulate"]
        assert len(pids) == 1
        os.kill(pids[0], signal.SIGKILL)
        _, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 1
    summary = read_summary(out)
    assert summary["errors"][0].startswith("node 'simulate' died (exit code -9)"), summary
    assert summary["nodes"]["simulate"]["exit_code"] == -9
    assert summary["generations"] >= 1  # what was done before is kept and reported
    assert (out / "fitness.png").is_file()
    assert node_processes(str(out)) == []
