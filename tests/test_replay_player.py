"""ReplayPlayer: recordings re-published on LSL, received with real inlets on loopback."""

from __future__ import annotations

import time
import uuid

import numpy as np
import pylsl
import pytest
from xdf_writer import XdfStream, write_xdf

from bci.io import read_recording
from bci.replay import ReplayPlayer
from bci.replay.__main__ import main

PULL_DEADLINE_S = 20.0  # only so that a broken replay fails instead of hanging


def _streams(tag: str) -> list[XdfStream]:
    t_a = 50.0 + np.arange(24) / 20  # 20 Hz, 1.15 s
    t_b = 50.013 + np.arange(6) / 5  # 5 Hz
    a = (np.arange(72, dtype=np.float32).reshape(24, 3) - 30.5) / 7
    b = np.arange(12, dtype=np.int16).reshape(6, 2) * -3
    return [
        XdfStream(f"a-{tag}", "EEG", "float32", 20.0, t_a, a, "src-a", labels=["x", "y", "z"]),
        XdfStream(f"b-{tag}", "misc", "int16", 5.0, t_b, b, "src-b"),
        XdfStream(
            f"m-{tag}",
            "Markers",
            "string",
            0.0,
            np.array([50.2, 50.7, 50.7, 51.1]),
            [["one"], ["two"], ["two again"], ['{"event": "x"}']],
            "src-m",
        ),
    ]


@pytest.fixture
def recording(tmp_path):
    tag = uuid.uuid4().hex[:8]
    return read_recording(write_xdf(tmp_path / f"rec-{tag}.xdf", _streams(tag)))


def _unique(recording) -> dict[str, str]:
    suffix = uuid.uuid4().hex[:8]
    return {name: f"{name}-replay-{suffix}" for name in recording.names}


def _inlets(names: list[str]) -> list[pylsl.StreamInlet]:
    inlets = []
    for name in names:
        infos = pylsl.resolve_bypred(f"name='{name}'", 1, 10.0)
        assert len(infos) == 1, f"stream {name} not found"
        inlet = pylsl.StreamInlet(infos[0], processing_flags=pylsl.proc_none)
        inlet.open_stream(10.0)
        inlets.append(inlet)
    return inlets


def _pull(inlet: pylsl.StreamInlet, n: int) -> tuple[list, np.ndarray]:
    samples, stamps = [], []
    deadline = time.monotonic() + PULL_DEADLINE_S
    while len(stamps) < n and time.monotonic() < deadline:
        data, times = inlet.pull_chunk(timeout=0.2)
        samples.extend(data)
        stamps.extend(times)
    return samples, np.asarray(stamps)


def _check_received(player: ReplayPlayer, inlets, speed: float) -> None:
    scale = 1.0 if speed == 0 else speed
    for stream, inlet in zip(player.streams, inlets, strict=True):
        samples, stamps = _pull(inlet, stream.n_samples)
        assert len(stamps) == stream.n_samples, stream.name
        if stream.is_numeric:
            np.testing.assert_array_equal(np.asarray(samples, dtype=stream.data.dtype), stream.data)
        else:
            assert samples == stream.data
        expected = (stream.time_stamps - player.t_first) / scale
        np.testing.assert_allclose(stamps - player.t_start, expected, rtol=0, atol=1e-6)


def test_outlets_look_like_the_recorded_streams(recording):
    rename = _unique(recording)
    with ReplayPlayer(recording, rename=rename) as player:
        inlets = _inlets([rename[n] for n in recording.names])
        for stream, inlet in zip(player.streams, inlets, strict=True):
            info = inlet.info(5.0)
            assert info.name() == rename[stream.name]
            assert info.type() == stream.type and info.source_id() == stream.source_id
            assert info.channel_count() == stream.n_channels
            assert info.nominal_srate() == stream.nominal_srate
            fmt = {pylsl.cf_float32: "float32", pylsl.cf_int16: "int16", pylsl.cf_string: "string"}
            assert fmt[info.channel_format()] == stream.channel_format
        labels = []
        ch = inlets[0].info(5.0).desc().child("channels").child("channel")
        while not ch.empty():
            labels.append(ch.child_value("label"))
            ch = ch.next_sibling()
        assert labels == ["x", "y", "z"]


def test_speed_zero_pushes_everything_at_once(recording):
    rename = _unique(recording)
    with ReplayPlayer(recording, speed=0, rename=rename) as player:
        inlets = _inlets([rename[n] for n in recording.names])
        assert player.duration_s == 0.0 and not player.done
        player.start()
        assert player.push_due() == 24 + 6 + 4 == player.n_samples
        assert player.done and player.next_due is None
        assert player.push_due() == 0
        _check_received(player, inlets, speed=0)


def test_real_time_replay_keeps_the_scaled_timing(recording):
    rename = _unique(recording)
    with ReplayPlayer(recording, speed=4.0, rename=rename) as player:
        inlets = _inlets([rename[n] for n in recording.names])
        assert player.duration_s == pytest.approx((51.15 - 50.0) / 4)
        pushes = []
        assert player.play(on_push=pushes.append) == player.n_samples
        assert player.done and sum(pushes) == player.n_samples
        _check_received(player, inlets, speed=4.0)


def test_push_due_pushes_exactly_what_is_due(recording):
    with ReplayPlayer(recording, speed=2.0, rename=_unique(recording)) as player:
        player.start(t_start=1000.0)
        times = np.concatenate([s.time_stamps for s in player.streams])
        due = 1000.0 + (times - 50.0) / 2.0
        assert player.next_due == pytest.approx(1000.0)
        assert player.push_due(now=999.0) == 0
        assert player.push_due(now=1000.25) == np.count_nonzero(due <= 1000.25)
        assert player.push_due(now=1000.25) == 0
        later = sorted(due[due > 1000.25])
        assert player.next_due == pytest.approx(later[0])
        assert player.push_due(now=1000.4) == np.count_nonzero((due > 1000.25) & (due <= 1000.4))
        assert player.n_pushed == np.count_nonzero(due <= 1000.4) and not player.done
        assert player.push_due(now=1e9) == np.count_nonzero(due > 1000.4)
        assert player.done
        assert player.replay_time(51.0) == pytest.approx(1000.5)


def test_replay_of_the_reference_minimal_file(shared_dir):
    path = shared_dir / "xdf-examples" / "minimal.xdf"
    if not path.is_file():
        pytest.skip("shared/xdf-examples is not present")
    recording = read_recording(path)
    rename = _unique(recording)
    with ReplayPlayer(recording, speed=0, rename=rename) as player:
        inlets = _inlets([rename[n] for n in recording.names])
        player.start()
        assert player.push_due() == 18
        _check_received(player, inlets, speed=0)


def test_selected_streams_only(recording):
    a_name = recording.names[0]
    rename = {a_name: f"{a_name}-only-{uuid.uuid4().hex[:8]}"}
    with ReplayPlayer(recording, speed=0, streams=[a_name], rename=rename) as player:
        assert [s.name for s in player.streams] == [a_name] and player.n_samples == 24
        assert player.names == [rename[a_name]]


def test_invalid_use(recording):
    with pytest.raises(ValueError, match="speed must be a finite number >= 0"):
        ReplayPlayer(recording, speed=-1)
    with pytest.raises(ValueError, match="speed must be a finite number >= 0"):
        ReplayPlayer(recording, speed=float("nan"))
    with pytest.raises(KeyError, match="no stream 'nope'"):
        ReplayPlayer(recording, streams=["nope"])
    with pytest.raises(ValueError, match="rename names streams that are not replayed: 'nope'"):
        ReplayPlayer(recording, rename={"nope": "x"})
    with ReplayPlayer(recording, rename=_unique(recording)) as player:
        with pytest.raises(RuntimeError, match="call start"):
            player.push_due()
        player.start()
        with pytest.raises(RuntimeError, match="already started"):
            player.start()
        player.close()
        with pytest.raises(RuntimeError, match="closed"):
            player.push_due()


def test_close_withdraws_the_outlets(recording):
    rename = _unique(recording)
    name = next(iter(rename.values()))
    player = ReplayPlayer(recording, rename=rename)
    assert len(pylsl.resolve_bypred(f"name='{name}'", 1, 10.0)) == 1
    player.close()
    assert pylsl.resolve_bypred(f"name='{name}'", 1, 1.0) == []


def test_cli_lists_streams_and_skipped_ones(tmp_path, capsys):
    streams = _streams("cli")
    streams.append(XdfStream("empty", "EEG", "float32", 10.0, np.zeros(0), np.zeros((0, 1))))
    path = write_xdf(tmp_path / "list.xdf", streams)
    assert main([str(path), "--list"]) == 0
    out = capsys.readouterr().out
    assert "list.xdf: 3 streams" in out
    assert "a-cli  EEG      3 x float32  20 Hz      24       1.150 s" in out
    assert "m-cli  Markers  1 x string   irregular  4" in out
    assert "'empty' (xdf stream 4, type 'EEG', float32): it has no samples" in out


def test_cli_replays_at_speed_zero(tmp_path, capsys):
    tag = uuid.uuid4().hex[:8]
    path = write_xdf(tmp_path / "cli.xdf", _streams(f"cli-{tag}"))
    assert main([str(path), "--speed", "0", "--stream", f"m-cli-{tag}"]) == 0
    assert "replaying 1 streams of cli.xdf" in capsys.readouterr().err
    assert main([str(tmp_path / "missing.xdf")]) == 2
    assert "error: no recording file" in capsys.readouterr().err


@pytest.mark.parametrize(("speed", "factor"), [(4.0, 4.0), (0.0, 1.0)])
def test_nominal_rate_follows_the_replay_speed(recording, speed, factor):
    regular = next(s for s in recording.streams if s.nominal_srate > 0)
    rename = {regular.name: _unique(recording)[regular.name]}
    with ReplayPlayer(recording, speed=speed, rename=rename, streams=[regular.name]):
        (inlet,) = _inlets([rename[regular.name]])
        assert inlet.info(5.0).nominal_srate() == pytest.approx(regular.nominal_srate * factor)


def test_speed_zero_paces_a_long_slow_stream_for_a_default_buffer(tmp_path):
    """LabRecorder's inlets keep liblsl's default buffer (360 s: 180 volumes at TR 2 s); a run
    of more volumes pushed at once lost the oldest (262 of 444 in a replayed session's file)."""
    tag = uuid.uuid4().hex[:8]
    n, tr = 200, 2.0
    volumes = np.random.default_rng(2).standard_normal((n, 4)).astype(np.float32)
    stamps = 300.0 + tr * np.arange(n)
    markers = [["a"], ["b"]]
    streams = [
        XdfStream(f"bold-{tag}", "fMRI", "float32", 1 / tr, stamps, volumes, "src-bold"),
        XdfStream(f"mk-{tag}", "Markers", "string", 0.0, stamps[[10, 150]], markers, "src-mk"),
    ]
    recording = read_recording(write_xdf(tmp_path / "long.xdf", streams))
    with ReplayPlayer(recording, speed=0) as player:
        # a quarter of the 180-volume buffer a second; the markers wait for the volumes
        assert player.duration_s == pytest.approx((n - 1) / 45)
        infos = pylsl.resolve_bypred(f"name='bold-{tag}'", 1, 10.0)
        inlet = pylsl.StreamInlet(infos[0], processing_flags=pylsl.proc_none)  # default buffer
        inlet.open_stream(10.0)
        marker_inlet = _inlets([f"mk-{tag}"])[0]
        player.start()
        got, deadline = [], time.monotonic() + PULL_DEADLINE_S
        while len(got) < n and time.monotonic() < deadline:
            player.push_due()
            time.sleep(0.5)  # as LabRecorder, which pulls twice a second
            got.extend(inlet.pull_chunk(timeout=0.0, max_samples=1024)[0])
        np.testing.assert_array_equal(np.asarray(got, dtype=np.float32), volumes)
        _, marker_stamps = _pull(marker_inlet, 2)
        np.testing.assert_allclose(marker_stamps - player.t_start, [20.0, 300.0], atol=1e-6)
