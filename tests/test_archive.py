"""bci.archive: atomic .npz files without pickle, and the format check every file format uses."""

from __future__ import annotations

import re

import numpy as np
import pytest

from bci.archive import check_format, json_entry, read_json_entry, read_npz, write_npz
from bci.evolve.checkpoint import load_checkpoint, save_checkpoint


def test_round_trip_leaves_no_temporary_file(tmp_path):
    path = write_npz(tmp_path / "sub" / "a.npz", {"x": np.arange(3), "doc": json_entry({"k": 1})})
    assert sorted(p.name for p in path.parent.iterdir()) == ["a.npz"]
    arrays = read_npz(path)
    np.testing.assert_array_equal(arrays["x"], [0, 1, 2])
    assert read_json_entry(arrays, "doc") == {"k": 1}
    with pytest.raises(ValueError, match="^no 'other' entry$"):
        read_json_entry(arrays, "other")


def test_a_failed_write_keeps_the_previous_file(tmp_path):
    path = write_npz(tmp_path / "a.npz", {"x": np.arange(3)})
    with pytest.raises(ValueError, match="cannot be an array"):  # fails half-way through
        write_npz(path, {"x": np.arange(5), "y": _Unsaveable()})
    np.testing.assert_array_equal(read_npz(path)["x"], [0, 1, 2])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.npz"]


class _Unsaveable:
    def __array__(self, *args, **kwargs):
        raise ValueError("cannot be an array")


def test_not_an_archive_is_refused_without_unpickling(tmp_path):
    path = tmp_path / "x.npz"
    path.write_bytes(b"\x80\x04pickle")
    with pytest.raises(ValueError, match=r"^not an \.npz archive$"):
        read_npz(path)


def test_format_check_messages():
    check_format("bci.x", 1, "bci.x", 1)
    with pytest.raises(ValueError, match=re.escape("is not a bci.x file (format 'bci.y')")):
        check_format("bci.y", 1, "bci.x", 1)
    with pytest.raises(ValueError, match="^has format version 2; this bci reads version 1$"):
        check_format("bci.x", 2, "bci.x", 1)


def test_checkpoint_is_one_file_with_its_json_inside(tmp_path):
    state = {"generation": 3, "pop": np.ones((2, 4)), "history": [{"best": float("nan")}]}
    save_checkpoint(tmp_path / "evolve" / "checkpoint", state)
    assert [p.name for p in (tmp_path / "evolve").iterdir()] == ["checkpoint.npz"]
    back = load_checkpoint(tmp_path / "evolve" / "checkpoint")
    assert back["generation"] == 3 and np.isnan(back["history"][0]["best"])
    np.testing.assert_array_equal(back["pop"], np.ones((2, 4)))
    other = write_npz(tmp_path / "other.npz", {"x": np.arange(2)})
    with pytest.raises(ValueError, match=re.escape(f"{other} is not a readable evolve checkpoint")):
        load_checkpoint(tmp_path / "other")
    with pytest.raises(FileNotFoundError, match="no evolve checkpoint at"):
        load_checkpoint(tmp_path / "missing")
