"""The shipped default face generator: loads, is deterministic, renders distinct faces."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from bci.faces import ATTRIBUTES, latents_to_attributes, render_latents
from bci.generators import load
from bci.generators.default import (
    WEIGHTS_PATH,
    FaceDecoder,
    load_default_module,
    save_default_module,
)


@pytest.fixture(scope="module")
def gen():
    return load("default", device="cpu")


def test_interface(gen):
    assert gen.latent_dim == 32
    assert gen.image_size == 64
    assert isinstance(gen.module, torch.nn.Module)
    images = gen.render(gen.sample_latents(3, seed=0))
    assert images.shape == (3, 64, 64, 3) and images.dtype == np.uint8


def test_shipped_weights_are_small():
    assert WEIGHTS_PATH.stat().st_size <= 10 * 1024 * 1024


def test_deterministic_for_a_given_latent(gen):
    z = gen.sample_latents(4, seed=1)
    np.testing.assert_array_equal(gen.render(z), gen.render(z))
    np.testing.assert_array_equal(gen.render(z)[2], gen.render(z[2])[0])


def test_different_latents_give_visibly_different_faces(gen):
    rng = np.random.default_rng(2)
    z = gen.sample_latents(40, seed=2)
    near = z + 0.05 * rng.standard_normal(z.shape).astype(np.float32)
    a, b = gen.render(z).astype(float), gen.render(near).astype(float)
    between = np.mean([np.abs(a[i] - a[j]).mean() for i in range(20) for j in range(20, 40)])
    within = np.abs(a - b).mean()
    assert between > 25.0  # grey levels out of 255
    assert between > 8 * within


def test_generator_reproduces_the_procedural_faces(gen):
    z = gen.sample_latents(64, seed=3)
    target = render_latents(z).permute(0, 2, 3, 1).numpy() * 255.0
    out = gen.render(z).astype(float)
    l1 = np.abs(out - target).mean()
    chance = np.abs(out - np.roll(target, 1, axis=0)).mean()
    assert l1 < 12.0
    assert l1 < chance / 3


def test_face_attributes_are_readable_from_the_images(gen):
    """A linear read-out of pixels predicts the renderer's attributes on held-out faces."""
    z = gen.sample_latents(700, seed=4)
    pixels = gen.render(z)[:, ::2, ::2].reshape(700, -1).astype(np.float64) / 255.0
    truth = latents_to_attributes(z).numpy().astype(np.float64)
    train, test = slice(0, 500), slice(500, 700)
    mean_x, mean_y = pixels[train].mean(0), truth[train].mean(0)
    x, y = pixels[train] - mean_x, truth[train] - mean_y
    w = np.linalg.solve(x.T @ x + 30.0 * np.eye(x.shape[1]), x.T @ y)
    pred = (pixels[test] - mean_x) @ w + mean_y
    r = np.array([np.corrcoef(pred[:, k], truth[test, k])[0, 1] for k in range(len(ATTRIBUTES))])
    named = {
        name: r[ATTRIBUTES.index(name)]
        for name in (
            "skin_lightness",
            "hair_lightness",
            "background_lightness",
            "face_width",
            "glasses",
        )
    }
    assert all(v > 0.5 for v in named.values()), named
    # With 200 held-out faces, chance correlations stay within about +-0.2; half the
    # attributes (the ones a linear read-out of pixels can see at all) clear 0.45.
    assert np.sum(r > 0.45) >= len(ATTRIBUTES) // 2, dict(zip(ATTRIBUTES, r.round(2), strict=True))


def test_save_and_load_round_trip(tmp_path):
    module = FaceDecoder(latent_dim=8, channels=(16, 8, 4), hidden=16)
    path = tmp_path / "small.pt"
    save_default_module(module, path, {"note": "test"})
    loaded = load_default_module(path)
    assert loaded.image_size == 16 and loaded.meta == {"note": "test"}
    z = torch.randn(2, 8)
    half = {k: v.half().float() for k, v in module.state_dict().items()}
    module.load_state_dict(half)
    torch.testing.assert_close(loaded(z), module.eval()(z))


def test_corrupt_and_foreign_weight_files(tmp_path):
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"\x00garbage" * 10)
    with pytest.raises(
        ValueError, match=r"bad.pt is not a readable default generator weights file"
    ):
        load_default_module(bad)
    foreign = tmp_path / "foreign.pt"
    torch.save({"weights": torch.zeros(2)}, foreign)
    with pytest.raises(
        ValueError,
        match=r"foreign.pt is not a default generator weights file "
        r"\(no 'bci-default-faces' header\)",
    ):
        load_default_module(foreign)
    with pytest.raises(FileNotFoundError, match="default generator weights not found at"):
        load_default_module(tmp_path / "absent.pt")


def test_mis_shaped_tensor_is_named(tmp_path):
    module = FaceDecoder(latent_dim=8, channels=(16, 8, 4), hidden=16)
    path = tmp_path / "w.pt"
    save_default_module(module, path)
    payload = torch.load(path, weights_only=True)
    payload["state_dict"]["to_rgb.weight"] = torch.zeros(3, 5, 3, 3, dtype=torch.float16)
    torch.save(payload, path)
    with pytest.raises(
        ValueError,
        match=r"tensor 'to_rgb.weight' has shape \(3, 5, 3, 3\), "
        r"expected \(3, 4, 3, 3\)",
    ):
        load_default_module(path)


def test_wrong_latent_width_on_the_module():
    with pytest.raises(
        ValueError, match="latent width 31 does not match the generator's latent_dim 32"
    ):
        FaceDecoder()(torch.zeros(1, 31))
