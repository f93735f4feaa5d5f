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


BIG = 10**30  # msgpack cannot send it
HOSTILE = {
    '{"event":"stimulus","trial":Infinity,"stimulus":"s"}': "marker is not JSON",
    '{"event":"stimulus","trial":NaN,"stimulus":"s"}': "marker is not JSON",
    '{"event":"stimulus","trial":1e30,"stimulus":"s"}': "marker field 'trial' is not an index",
    '{"event":"stimulus","trial":1e400,"stimulus":"s"}': "marker field 'trial' is not an index",
    f'{{"event":"stimulus","trial":{BIG},"stimulus":"s"}}': "field 'trial' is not an index",
    '{"event":"stimulus","trial":-3,"stimulus":"s"}': "marker field 'trial' is not an index",
    '{"event":"stimulus","trial":true,"stimulus":"s"}': "marker field 'trial' is not an index",
    '{"event":"stimulus","trial":1,"stimulus":"\\udcff"}': "marker field 'stimulus' is not a name",
    '{"event":"stimulus","trial":1,"phase":{"a":1}}': "marker field 'phase' is not a name",
    f'{{"event":"run","run":1,"volumes":{BIG}}}': "marker field 'volumes' is not an index",
    '{"event":"run","run":1,"tr_s":1e400}': "marker field 'tr_s' is not a number",
    "[" * 3000 + "]" * 1000: "marker is not JSON",  # deeper than json's recursion limit
    "[" * 5000: "marker of 5000 characters (at most 4096)",
}


@pytest.mark.parametrize("text", HOSTILE)
def test_hostile_markers_are_refused_with_a_reason(text):
    # Each of these, taken as a marker, killed acquire: an int too large for msgpack (the
    # response or the heartbeat could not be sent), int(inf), a lone surrogate, a RecursionError.
    with pytest.raises(ValueError, match=HOSTILE[text].replace("(", r"\(").replace(")", r"\)")):
        decode_marker(text)


def test_a_long_name_is_refused_and_a_short_unicode_one_is_taken():
    text = encode_marker("stimulus", trial=0, stimulus="x" * 2_000_000, phase="test")
    with pytest.raises(ValueError, match="marker of 2000059 characters"):
        decode_marker(text)
    with pytest.raises(ValueError, match="marker field 'stimulus' is not a name"):
        decode_marker(encode_marker("stimulus", trial=0, stimulus="x" * 257))
    marker = decode_marker(encode_marker("stimulus", trial=0, stimulus="żółw 😀", phase="test"))
    assert marker["stimulus"] == "żółw 😀"


def test_a_bridge_trigger_numbered_by_date_and_time_is_taken():
    # a console may name its volume files by date and time; the bridge sends that number
    marker = decode_marker(encode_marker("trigger", volume=20261202031500))
    assert marker["volume"] == 20261202031500
