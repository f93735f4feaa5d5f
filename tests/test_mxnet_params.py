"""MXNet NDArray list files: round trips, every on-disk version, and one-line errors."""

from __future__ import annotations

import re
import struct

import numpy as np
import pytest

from bci.generators.mxnet_params import read_params, write_params

DTYPES = [
    np.float32,
    np.float64,
    np.float16,
    np.uint8,
    np.int32,
    np.int8,
    np.int64,
    np.bool_,
    np.int16,
    np.uint16,
    np.uint32,
    np.uint64,
]
SHAPES = [(1,), (0,), (3, 5, 7), (2, 0, 3), (1, 1, 1, 1, 1, 1, 7), (4, 1)]


def _file(arrays: list[bytes], names: list[str]) -> bytes:
    """An NDArray list file around already-encoded arrays (the layout, written independently)."""
    out = struct.pack("<QQQ", 0x112, 0, len(arrays)) + b"".join(arrays)
    out += struct.pack("<Q", len(names))
    for name in names:
        out += struct.pack("<Q", len(name)) + name.encode()
    return out


def _v2(shape: tuple[int, ...], flag: int, data: bytes, magic: int = 0xF993FAC9, stype: int = 0):
    head = struct.pack("<Ii", magic, stype) + struct.pack(f"<i{len(shape)}q", len(shape), *shape)
    return head + struct.pack("<iii", 1, 0, flag) + data


def test_round_trip_every_dtype_and_odd_shapes(tmp_path):
    rng = np.random.default_rng(0)
    arrays = {}
    for i, dtype in enumerate(DTYPES):
        for j, shape in enumerate(SHAPES):
            values = rng.integers(0, 100, size=shape) if dtype != np.bool_ else rng.random(shape)
            arrays[f"a{i}_{j}"] = (values > 50 if dtype == np.bool_ else values).astype(dtype)
    arrays["floats"] = rng.standard_normal((3, 2)).astype(np.float64)
    write_params(tmp_path / "x.params", arrays)
    back = read_params(tmp_path / "x.params")
    assert list(back) == list(arrays)
    for key, a in arrays.items():
        assert back[key].dtype == a.dtype and back[key].shape == a.shape, key
        np.testing.assert_array_equal(back[key], a)


def test_writer_layout_is_v2_dense_cpu(tmp_path):
    a = np.arange(6, dtype=np.float32).reshape(2, 3)
    write_params(tmp_path / "x.params", {"w": a})
    raw = (tmp_path / "x.params").read_bytes()
    assert struct.unpack_from("<QQQ", raw) == (0x112, 0, 1)
    assert struct.unpack_from("<IiI2q", raw, 24) == (0xF993FAC9, 0, 2, 2, 3)
    assert struct.unpack_from("<iii", raw, 52) == (1, 0, 0)  # cpu, device 0, float32
    assert raw[64:88] == a.tobytes()
    assert raw[88:] == struct.pack("<Q", 1) + struct.pack("<Q", 1) + b"w"


def test_big_endian_input_is_written_little_endian(tmp_path):
    a = np.arange(5, dtype=">i4")
    write_params(tmp_path / "x.params", {"a": a})
    np.testing.assert_array_equal(read_params(tmp_path / "x.params")["a"], np.arange(5))


def test_reads_v1_v3_and_legacy_layouts(tmp_path):
    data = np.arange(6, dtype=np.float32)
    v1 = struct.pack("<Ii2q", 0xF993FAC8, 2, 2, 3) + struct.pack("<iii", 1, 0, 0) + data.tobytes()
    v3 = _v2((3, 2), 0, data.tobytes(), magic=0xF993FACA)
    v3_scalar = _v2((), 4, struct.pack("<i", 7), magic=0xF993FACA)
    legacy = struct.pack("<I2I", 2, 1, 6) + struct.pack("<iii", 2, 1, 0) + data.tobytes()
    raw = _file([v1, v3, v3_scalar, legacy], ["arg:v1", "aux:v3", "scalar", "legacy"])
    (tmp_path / "x.params").write_bytes(raw)
    back = read_params(tmp_path / "x.params")
    assert list(back) == ["v1", "v3", "scalar", "legacy"]
    np.testing.assert_array_equal(back["v1"], data.reshape(2, 3))
    np.testing.assert_array_equal(back["v3"], data.reshape(3, 2))
    assert back["scalar"].shape == () and back["scalar"] == 7
    np.testing.assert_array_equal(back["legacy"], data.reshape(1, 6))


def test_none_arrays_unnamed_files_and_bfloat16(tmp_path):
    none_v2 = struct.pack("<IiI", 0xF993FAC9, 0, 0)
    none_v3 = struct.pack("<Iii", 0xF993FACA, 0, -1)
    values = np.array([1.0, -2.5, 0.15625], dtype=np.float32)
    bf16 = (values.view(np.uint32) >> 16).astype("<u2").tobytes()
    (tmp_path / "x.params").write_bytes(_file([none_v2, none_v3, _v2((3,), 12, bf16)], []))
    back = read_params(tmp_path / "x.params")
    assert list(back) == ["0", "1", "2"]
    assert back["0"].shape == (0,) and back["1"].shape == (0,)
    np.testing.assert_array_equal(back["2"], values)


def _exact(message: str) -> str:
    return f"^{re.escape(message)}$"


def test_not_mxnet_file(tmp_path):
    path = tmp_path / "model.pt"
    path.write_bytes(b"PK\x03\x04" + bytes(60))
    message = f"{path} is not an MXNet .params file (bad magic 0x4034b50)"
    with pytest.raises(ValueError, match=_exact(message)):
        read_params(path)
    path.write_bytes(b"\x12\x01")
    with pytest.raises(ValueError, match=_exact(f"{path} is not an MXNet .params file (2 bytes)")):
        read_params(path)


def test_truncated_file(tmp_path):
    path = tmp_path / "x.params"
    write_params(path, {"w": np.ones((4, 4), np.float32), "b": np.ones(4, np.float32)})
    raw = path.read_bytes()
    for cut in (8, 20, 30, 70, len(raw) - 1):
        path.write_bytes(raw[:cut])
        with pytest.raises(ValueError, match=re.escape(f"{path} is truncated: ")):
            read_params(path)
    path.write_bytes(raw[:24])
    message = f"{path} is truncated: array #0 magic needs 4 bytes at offset 24, the file has 0 left"
    with pytest.raises(ValueError, match=_exact(message)):
        read_params(path)


def test_sparse_and_unknown_dtype_are_refused(tmp_path):
    path = tmp_path / "x.params"
    path.write_bytes(_file([_v2((2,), 0, bytes(8), stype=2)], ["s"]))
    message = f"{path}: array #0 has storage type 2 (csr); only dense arrays are supported"
    with pytest.raises(ValueError, match=_exact(message)):
        read_params(path)
    path.write_bytes(_file([_v2((2,), 99, bytes(8))], ["s"]))
    with pytest.raises(
        ValueError, match=_exact(f"{path}: array #0 has an unsupported type flag 99")
    ):
        read_params(path)


def test_writer_refuses_what_mxnet_cannot_store(tmp_path):
    message = "array 'c' has dtype complex64, which MXNet cannot store"
    with pytest.raises(ValueError, match=_exact(message)):
        write_params(tmp_path / "x.params", {"c": np.zeros(2, np.complex64)})
    message = "array 's' is 0-d; MXNet V2 cannot store scalars, reshape to (1,)"
    with pytest.raises(ValueError, match=_exact(message)):
        write_params(tmp_path / "x.params", {"s": np.float32(1.0)})
