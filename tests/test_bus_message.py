"""Codec of bus messages: round trips, header fields, and every way a message can be malformed."""

from __future__ import annotations

import time

import msgpack
import numpy as np
import pytest

from bci.bus.message import (
    REJECT_REASONS,
    SCHEMA_VERSION,
    BusMessageError,
    Message,
    decode,
    encode,
)

DTYPES = [
    "?", "i1", "<i2", "<i4", "<i8", "u1", "<u2", "<u4", "<u8",
    "<f2", "<f4", "<f8", "<c8", "<c16",
    ">f4", ">i8", ">c16",  # big-endian travels as is
    "<U5", "S3", "<M8[ns]", "<m8[s]",
]  # fmt: skip
SHAPES = [(), (0,), (3, 0, 2), (7,), (2, 3, 4)]


def _array(dtype: str, shape: tuple[int, ...], rng: np.random.Generator) -> np.ndarray:
    dt = np.dtype(dtype)
    n = int(np.prod(shape))
    if dt.kind in "SU":
        return np.array([f"s{i % 100}" for i in range(n)], dtype=dt).reshape(shape)
    raw = rng.integers(0, 2 if dt.kind == "b" else 256, size=n * dt.itemsize, dtype=np.uint8)
    if dt.kind in "fc":  # avoid NaN payloads, which do not compare equal
        return (
            rng.standard_normal(n * (2 if dt.kind == "c" else 1))
            .view("f8" if dt.kind == "f" else "c16")[:n]
            .astype(dt)
            .reshape(shape)
        )
    return raw.view(dt).reshape(shape)


def _roundtrip(msg: Message) -> Message:
    return decode([bytes(memoryview(f)) for f in encode(msg)])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", SHAPES)
def test_roundtrip_dtypes_and_shapes(dtype: str, shape: tuple[int, ...]) -> None:
    rng = np.random.default_rng(0)
    a = _array(dtype, shape, rng)
    out = _roundtrip(Message("t", arrays=[a]))
    (b,) = out.arrays
    assert b.dtype == a.dtype and b.dtype.str == np.dtype(dtype).str
    assert b.shape == a.shape
    np.testing.assert_array_equal(b, a)


def test_non_contiguous_inputs_are_made_contiguous() -> None:
    base = np.arange(60, dtype=np.float32).reshape(6, 10)
    inputs = [base[:, ::3], base.T, np.asfortranarray(base), base[::-1]]
    out = _roundtrip(Message("t", arrays=inputs))
    for a, b in zip(inputs, out.arrays, strict=True):
        assert b.flags.c_contiguous
        np.testing.assert_array_equal(a, b)


def test_header_fields_and_many_arrays() -> None:
    arrays = [np.ones((2, 2), np.float32), np.arange(3, dtype=np.int64), np.uint8(7)]
    msg = Message(
        "responses",
        kind="response",
        seq=41,
        lsl_time=12345.678,
        wall_time=1.7e9,
        arrays=arrays,
        meta={"trial": 3, "subject": "s01", "scale": np.float32(0.5), "tags": [1, "a"]},
        source="acquire:1:abc",
    )
    frames = encode(msg)
    assert frames[0] == b"responses"
    header = msgpack.unpackb(frames[1])
    assert header["v"] == SCHEMA_VERSION
    assert header["arrays"] == [
        {"dtype": "<f4", "shape": [2, 2]},
        {"dtype": "<i8", "shape": [3]},
        {"dtype": "|u1", "shape": []},
    ]
    out = decode(frames)
    assert (out.topic, out.kind, out.seq) == ("responses", "response", 41)
    assert out.lsl_time == 12345.678 and out.wall_time == 1.7e9
    assert out.meta == {"trial": 3, "subject": "s01", "scale": 0.5, "tags": [1, "a"]}
    assert out.source == "acquire:1:abc"
    assert len(out.arrays) == 3 and out.arrays[2].shape == ()


def test_defaults_lsl_time_none_and_wall_time_now() -> None:
    before = time.time()
    out = _roundtrip(Message("t"))
    assert out.lsl_time is None and out.arrays == [] and out.meta == {}
    assert before <= out.wall_time <= time.time()


def test_encode_is_zero_copy_for_contiguous_arrays() -> None:
    a = np.zeros(1000, np.float64)
    frames = encode(Message("t", arrays=[a]))
    assert np.shares_memory(frames[2], a)


def test_decoded_arrays_are_read_only_views_of_the_frames() -> None:
    frames = [bytes(memoryview(f)) for f in encode(Message("t", arrays=[np.ones(100)]))]
    (b,) = decode(frames).arrays
    assert not b.flags.writeable
    assert np.shares_memory(b, np.frombuffer(frames[2], np.uint8))


def test_misaligned_frame_is_copied_to_an_aligned_array() -> None:
    a = np.arange(4, dtype=np.float64)
    frames = encode(Message("t", arrays=[a]))
    backing = bytearray(33)
    backing[1:33] = a.tobytes()
    out = decode([frames[0], frames[1], memoryview(backing)[1:]])
    assert out.arrays[0].flags.aligned
    np.testing.assert_array_equal(out.arrays[0], a)


@pytest.mark.parametrize(
    "bad",
    [np.array([object()], dtype=object), np.zeros(2, dtype=[("x", "<f4"), ("y", "<i4")])],
)
def test_encode_refuses_object_and_structured_dtypes(bad: np.ndarray) -> None:
    with pytest.raises(TypeError, match="cannot travel"):
        encode(Message("t", arrays=[bad]))


def test_encode_refuses_unpackable_meta() -> None:
    with pytest.raises(TypeError, match="arrays="):
        encode(Message("t", meta={"x": np.zeros(3)}))
    with pytest.raises(TypeError, match="msgpack"):
        encode(Message("t", meta={"x": object()}))


def _good(**header_changes: object) -> list[bytes]:
    """A valid one-array message, with header keys replaced (or removed when the value is ...)."""
    frames = [bytes(memoryview(f)) for f in encode(Message("t", arrays=[np.zeros(4, "<f4")]))]
    header = msgpack.unpackb(frames[1])
    for key, value in header_changes.items():
        if value is ...:
            del header[key]
        else:
            header[key] = value
    frames[1] = msgpack.packb(header)
    return frames


def _spec(dtype: object = "<f4", shape: object = (4,)) -> list[dict]:
    return [{"dtype": dtype, "shape": list(shape) if isinstance(shape, tuple) else shape}]


MALFORMED = {
    "no_frames": ([], "frame_count"),
    "topic_only": ([b"t"], "frame_count"),
    "missing_array_frame": (_good()[:2], "frame_count"),
    "extra_frame": ([*_good(), b"\0" * 16], "frame_count"),
    "bad_topic": ([b"\xff\xfe", *_good()[1:]], "bad_topic"),
    "bad_msgpack": ([b"t", b"\xc1\xc1", b"\0" * 16], "bad_msgpack"),
    "truncated_msgpack": ([b"t", _good()[1][:-3], b"\0" * 16], "bad_msgpack"),
    "header_is_list": ([b"t", msgpack.packb([1, 2]), b"\0" * 16], "header_not_map"),
    "header_is_int": ([b"t", msgpack.packb(7)], "header_not_map"),
    "missing_seq": (_good(seq=...), "missing_field"),
    "missing_arrays": (_good(arrays=...), "missing_field"),
    "schema_version": (_good(v=SCHEMA_VERSION + 1), "schema_version"),
    "seq_is_str": (_good(seq="1"), "bad_field"),
    "seq_negative": (_good(seq=-1), "bad_field"),
    "seq_is_bool": (_good(seq=True), "bad_field"),
    "meta_is_list": (_good(meta=[1]), "bad_field"),
    "wall_time_none": (_good(wall_time=None), "bad_field"),
    "spec_not_map": (_good(arrays=["<f4"]), "bad_field"),
    "shape_negative": (_good(arrays=_spec(shape=[-4])), "bad_field"),
    "shape_float": (_good(arrays=_spec(shape=[4.0])), "bad_field"),
    "dtype_object": (_good(arrays=_spec(dtype="|O")), "bad_dtype"),
    "dtype_structured": (_good(arrays=_spec(dtype="|V4")), "bad_dtype"),
    "dtype_unknown": (_good(arrays=_spec(dtype="<q9")), "bad_dtype"),
    "dtype_not_str": (_good(arrays=_spec(dtype=4)), "bad_dtype"),
    "frame_too_short": (_good(arrays=_spec(shape=(5,))), "frame_size"),
    "frame_too_long": (_good(arrays=_spec(dtype="<f2")), "frame_size"),
}


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_malformed_messages_raise_one_error_type(case: str) -> None:
    frames, reason = MALFORMED[case]
    with pytest.raises(BusMessageError) as info:
        decode(frames)
    assert info.value.reason == reason
    assert reason in REJECT_REASONS
    assert "\n" not in str(info.value) and str(info.value).startswith(f"{reason}: ")


def test_oversized_message_and_header_are_refused() -> None:
    frames = encode(Message("t", arrays=[np.zeros(1000, np.float32)]))
    with pytest.raises(BusMessageError) as info:
        decode(frames, max_bytes=2000)
    assert info.value.reason == "oversized"
    with pytest.raises(BusMessageError) as info:
        decode(frames, max_header_bytes=8)
    assert info.value.reason == "oversized"
    assert len(decode(frames, max_bytes=5000).arrays[0]) == 1000


def test_error_detail_is_one_line() -> None:
    error = BusMessageError("bad_field", "line one\nline two")
    assert str(error) == "bad_field: line one line two"
