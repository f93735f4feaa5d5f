"""Marker strings round-trip and foreign markers are refused with a one-line reason."""

from __future__ import annotations

import pytest

from bci.lsl.markers import decode_marker, encode_marker


def test_round_trip():
    text = encode_marker("stimulus", trial=3, stimulus="face-0012", phase="train")
    assert text == '{"event":"stimulus","phase":"train","stimulus":"face-0012","trial":3}'
    assert decode_marker(text) == {
        "event": "stimulus",
        "trial": 3,
        "stimulus": "face-0012",
        "phase": "train",
    }


def test_foreign_markers():
    with pytest.raises(ValueError, match="marker is not JSON: 'S  1'"):
        decode_marker("S  1")
    with pytest.raises(ValueError, match="marker has no known 'event'"):
        decode_marker('{"trial": 1}')
    with pytest.raises(ValueError, match="unknown marker event 'flip'"):
        encode_marker("flip")
