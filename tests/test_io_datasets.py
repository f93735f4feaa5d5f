"""The npz dataset format: round trip, validation, corrupt files."""

from __future__ import annotations

import json

import numpy as np
import pytest

from bci.io import FORMAT_VERSION, DecodingDataset, load_dataset, save_dataset


def _arrays(n=10):
    rng = np.random.default_rng(0)
    responses = [rng.standard_normal((n, 7)), rng.standard_normal((n, 5)).astype(np.float32)]
    latents = rng.standard_normal((n, 4))
    return responses, latents


def test_round_trip_with_mask(tmp_path):
    responses, latents = _arrays()
    mask = np.arange(10) >= 3
    meta = {"subjects": ["s1", "s2"], "tr": 1.5, "source": "HYPER"}
    path = save_dataset(tmp_path / "faces.ds", responses, latents, mask, meta)
    assert path == tmp_path / "faces.ds" and path.exists()  # no ".npz" appended
    ds = load_dataset(path)
    assert isinstance(ds, DecodingDataset) and ds.version == FORMAT_VERSION == 1
    assert ds.n_subjects == 2 and ds.meta == meta
    for got, want in zip(ds.responses, responses, strict=True):
        assert got.dtype == np.float32
        np.testing.assert_array_equal(got, want.astype(np.float32))
    np.testing.assert_array_equal(ds.latents, latents.astype(np.float32))
    np.testing.assert_array_equal(ds.train_mask, mask)
    np.testing.assert_array_equal(ds.test_mask, ~mask)
    train_resp, train_lat = ds.subset("train")
    assert train_resp[1].shape == (7, 5) and train_lat.shape == (7, 4)


def test_round_trip_with_labels(tmp_path):
    responses, latents = _arrays(4)
    labels = ["train", "test", "validation", "train"]
    ds = load_dataset(save_dataset(tmp_path / "d.npz", responses[0], latents, labels))
    assert ds.n_subjects == 1 and ds.meta == {}
    assert ds.split.tolist() == labels
    np.testing.assert_array_equal(ds.train_mask, [True, False, False, True])


def test_save_validation(tmp_path):
    responses, latents = _arrays()
    path = tmp_path / "d.npz"
    with pytest.raises(ValueError, match=r"^responses\[1\] must have shape \(10, n_voxels\), got"):
        save_dataset(path, [responses[0], responses[1][:9]], latents, np.ones(10, bool))
    with pytest.raises(ValueError, match=r"^split must have shape \(10,\), got \(9,\)$"):
        save_dataset(path, responses, latents, np.ones(9, bool))
    with pytest.raises(ValueError, match=r"^split must be a boolean train mask or string labels"):
        save_dataset(path, responses, latents, np.ones(10))
    with pytest.raises(ValueError, match=r"^meta must be JSON-serialisable: "):
        save_dataset(path, responses, latents, np.ones(10, bool), {"x": object()})
    with pytest.raises(ValueError, match=r"^meta must be a dict, got list$"):
        save_dataset(path, responses, latents, np.ones(10, bool), [1])
    with pytest.raises(ValueError, match=r"^latents must be 2-D \(n_trials, latent_dim\)"):
        save_dataset(path, responses, latents[:, 0], np.ones(10, bool))
    assert not path.exists() and list(tmp_path.iterdir()) == []


def _valid_arrays():
    return {
        "format": np.array("bci-dataset"),
        "version": np.array(1),
        "n_subjects": np.array(1),
        "responses_0": np.zeros((3, 2), np.float32),
        "latents": np.zeros((3, 4), np.float32),
        "split": np.array(["train", "train", "test"]),
        "meta": np.array(json.dumps({})),
    }


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"latents": None}, r"is missing key 'latents'$"),
        ({"responses_0": None}, r"is missing key 'responses_0'$"),
        ({"version": np.array(99)}, r"has format version 99; this bci reads version 1$"),
        ({"format": np.array("other")}, r"is not a bci dataset file$"),
        ({"latents": np.zeros((2, 4))}, r"responses\[0\] must have shape \(2, n_voxels\)"),
        ({"meta": np.array("[1]")}, r"'meta' is not a JSON object$"),
        ({"meta": np.array("{oops")}, r"Expecting property name"),
    ],
)
def test_bad_files(tmp_path, change, message):
    arrays = _valid_arrays()
    for key, value in change.items():
        if value is None:
            del arrays[key]
        else:
            arrays[key] = value
    path = tmp_path / "bad.npz"
    np.savez(path, **arrays)
    with pytest.raises(ValueError, match=message) as info:
        load_dataset(path)
    assert str(path) in str(info.value) and "\n" not in str(info.value)


def test_corrupt_and_pickled_files(tmp_path):
    junk = tmp_path / "junk.npz"
    junk.write_bytes(b"PK\x03\x04 definitely not a zip archive")
    with pytest.raises(ValueError, match=rf"^corrupt dataset file {junk}: "):
        load_dataset(junk)
    arrays = _valid_arrays()
    arrays["latents"] = np.array([None, 1], dtype=object)  # would need pickle to read
    pickled = tmp_path / "pickled.npz"
    np.savez(pickled, **arrays)
    with pytest.raises(ValueError, match=rf"^corrupt dataset file {pickled}: .*allow_pickle"):
        load_dataset(pickled)
    with pytest.raises(FileNotFoundError):
        load_dataset(tmp_path / "missing.npz")
