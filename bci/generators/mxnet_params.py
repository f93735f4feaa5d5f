"""Read and write MXNet's NDArray list files (``.params``) without importing mxnet.

This is the file ``mx.nd.save``, gluon ``save_parameters`` and the older ``save_params`` write.
Layout (all little-endian)::

    uint64 0x112 (list magic), uint64 0 (reserved)
    uint64 count, then ``count`` NDArrays
    uint64 name count (0 or ``count``), then each name as uint64 length + UTF-8 bytes

One dense NDArray, by version:

* V2 (magic 0xF993FAC9, what :func:`write_params` writes): uint32 magic, int32 storage type
  (0 = dense), shape (uint32 ndim + ndim int64 dims); if ndim > 0: int32 dev_type, int32 dev_id,
  int32 type flag, raw data. ndim == 0 means "no array".
* V3 (0xF993FACA): V2 with numpy shape semantics: ndim == 0 is a scalar, ndim == -1 or a
  negative dim means "no array".
* V1 (0xF993FAC8): V2 without the storage type field.
* legacy (no magic): the first uint32 is ndim, followed by ndim uint32 dims, then as V1.

Arrays MXNet stores as "none" (no shape) are returned as empty float32 arrays of shape (0,).
"""

from __future__ import annotations

import struct
from os import PathLike
from pathlib import Path

import numpy as np

LIST_MAGIC = 0x112
V1_MAGIC = 0xF993FAC8
V2_MAGIC = 0xF993FAC9
V3_MAGIC = 0xF993FACA

# mshadow type flags (mshadow/base.h TypeFlag); 12 is bfloat16, read-only (widened to float32).
TYPE_FLAGS: dict[int, np.dtype] = {
    0: np.dtype("<f4"),
    1: np.dtype("<f8"),
    2: np.dtype("<f2"),
    3: np.dtype("u1"),
    4: np.dtype("<i4"),
    5: np.dtype("i1"),
    6: np.dtype("<i8"),
    7: np.dtype("?"),
    8: np.dtype("<i2"),
    9: np.dtype("<u2"),
    10: np.dtype("<u4"),
    11: np.dtype("<u8"),
}
BFLOAT16_FLAG = 12
_FLAG_OF_DTYPE = {dtype.newbyteorder("<"): flag for flag, dtype in TYPE_FLAGS.items()}
_STORAGE_NAMES = {1: "row_sparse", 2: "csr"}
_CPU_DEVICE = 1
_MAX_LEGACY_NDIM = 32  # a legacy array starts with its ndim; anything larger is not MXNet


class _Reader:
    """Cursor over the file's bytes that turns short reads into one-line errors."""

    def __init__(self, data: bytes, path: str) -> None:
        self.data = data
        self.path = path
        self.pos = 0

    def take(self, n: int, what: str) -> bytes:
        if n < 0 or self.pos + n > len(self.data):
            raise ValueError(
                f"{self.path} is truncated: {what} needs {n} bytes at offset {self.pos}, "
                f"the file has {len(self.data) - self.pos} left"
            )
        chunk = self.data[self.pos : self.pos + n]
        self.pos += n
        return chunk

    def unpack(self, fmt: str, what: str) -> tuple:
        return struct.unpack("<" + fmt, self.take(struct.calcsize("<" + fmt), what))

    def one(self, fmt: str, what: str) -> int:
        return self.unpack(fmt, what)[0]


def _read_shape(r: _Reader, magic: int, what: str) -> tuple[int, ...] | None:
    """Read a shape; ``None`` means MXNet's "no array" (nothing else follows)."""
    if magic in (V1_MAGIC, V2_MAGIC, V3_MAGIC):
        ndim = r.one("i", what + " ndim")
        if ndim < 0:
            return None
        dims = r.unpack(f"{ndim}q", what + " dims")
    else:  # legacy: the 'magic' already read is ndim, dims are uint32
        ndim = magic
        dims = r.unpack(f"{ndim}I", what + " dims")
    if magic == V3_MAGIC:
        return None if any(d < 0 for d in dims) else tuple(dims)
    if ndim == 0:
        return None
    if any(d < 0 for d in dims):
        raise ValueError(f"{r.path}: {what} has a negative dimension {tuple(dims)}")
    return tuple(dims)


def _read_array(r: _Reader, index: int) -> np.ndarray:
    what = f"array #{index}"
    magic = r.one("I", what + " magic")
    if magic in (V2_MAGIC, V3_MAGIC):
        stype = r.one("i", what + " storage type")
        if stype != 0:
            kind = _STORAGE_NAMES.get(stype, "unknown")
            raise ValueError(
                f"{r.path}: {what} has storage type {stype} ({kind}); "
                "only dense arrays are supported"
            )
    elif magic != V1_MAGIC and magic > _MAX_LEGACY_NDIM:
        raise ValueError(f"{r.path}: {what} has an unknown NDArray magic 0x{magic:x}")
    shape = _read_shape(r, magic, what)
    if shape is None:
        return np.empty((0,), dtype=np.float32)
    r.unpack("ii", what + " context")
    flag = r.one("i", what + " type flag")
    if flag == BFLOAT16_FLAG:
        raw = np.frombuffer(r.take(2 * _size(shape), what + " data"), dtype="<u2")
        return (raw.astype(np.uint32) << 16).view(np.float32).reshape(shape)
    if flag not in TYPE_FLAGS:
        raise ValueError(f"{r.path}: {what} has an unsupported type flag {flag}")
    dtype = TYPE_FLAGS[flag]
    raw = r.take(dtype.itemsize * _size(shape), what + " data")
    return np.frombuffer(raw, dtype=dtype).reshape(shape).astype(dtype.newbyteorder("="))


def _size(shape: tuple[int, ...]) -> int:
    return int(np.prod(shape, dtype=np.int64))


def read_params(path: str | PathLike[str]) -> dict[str, np.ndarray]:
    """Read an MXNet NDArray list file.

    Parameters
    ----------
    path : str | PathLike
        The ``.params`` file.

    Returns
    -------
    dict[str, np.ndarray]
        Arrays by name, in file order, with ``arg:`` / ``aux:`` prefixes stripped. A file saved
        without names gives the keys ``"0"``, ``"1"``, ...

    Raises
    ------
    ValueError
        The file is not an NDArray list, is truncated, or holds sparse or unknown arrays.
    """
    data = Path(path).read_bytes()
    if len(data) < 8:
        raise ValueError(f"{path} is not an MXNet .params file ({len(data)} bytes)")
    magic = struct.unpack_from("<Q", data)[0]
    if magic != LIST_MAGIC:
        raise ValueError(f"{path} is not an MXNet .params file (bad magic 0x{magic:x})")
    r = _Reader(data, str(path))
    r.pos = 8
    r.one("Q", "header")
    count = r.one("Q", "array count")
    arrays = [_read_array(r, i) for i in range(count)]
    n_names = r.one("Q", "name count")
    if n_names not in (0, count):
        raise ValueError(f"{path}: {n_names} names for {count} arrays")
    names = []
    for i in range(n_names):
        length = r.one("Q", f"name #{i} length")
        names.append(r.take(length, f"name #{i}").decode("utf-8", errors="replace"))
    if not names:
        names = [str(i) for i in range(count)]
    out: dict[str, np.ndarray] = {}
    for name, array in zip(names, arrays, strict=True):
        key = name[4:] if name.startswith(("arg:", "aux:")) else name
        if key in out:
            raise ValueError(f"{path}: name {key!r} appears twice")
        out[key] = array
    return out


def _encode_array(name: str, array: np.ndarray) -> bytes:
    a = np.asarray(array)
    if a.ndim == 0:
        raise ValueError(f"array {name!r} is 0-d; MXNet V2 cannot store scalars, reshape to (1,)")
    dtype = a.dtype.newbyteorder("<") if a.dtype.byteorder in "=><" else a.dtype
    flag = _FLAG_OF_DTYPE.get(dtype)
    if flag is None:
        raise ValueError(f"array {name!r} has dtype {a.dtype}, which MXNet cannot store")
    head = struct.pack("<Iii", V2_MAGIC, 0, a.ndim) + struct.pack(f"<{a.ndim}q", *a.shape)
    tail = struct.pack("<iii", _CPU_DEVICE, 0, flag)
    return head + tail + np.ascontiguousarray(a, dtype=dtype).tobytes()


def write_params(path: str | PathLike[str], arrays: dict[str, np.ndarray]) -> None:
    """Write arrays as an MXNet NDArray list file (V2 dense arrays, CPU context).

    Parameters
    ----------
    path : str | PathLike
        Destination file.
    arrays : dict[str, np.ndarray]
        Arrays by name. Names are written as given (no ``arg:`` prefix is added).

    Raises
    ------
    ValueError
        An array is 0-d or has a dtype MXNet has no type flag for.
    """
    parts = [struct.pack("<QQQ", LIST_MAGIC, 0, len(arrays))]
    parts += [_encode_array(name, a) for name, a in arrays.items()]
    parts.append(struct.pack("<Q", len(arrays)))
    for name in arrays:
        encoded = name.encode("utf-8")
        parts.append(struct.pack("<Q", len(encoded)) + encoded)
    Path(path).write_bytes(b"".join(parts))
