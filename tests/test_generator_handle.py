"""The Generator handle and the spec loader: validation, batching, uint8 conversion, errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from bci.generators import Generator, load, to_uint8
from bci.generators.device import cpu_has_fast_bf16, pick_device


class Ramp(torch.nn.Module):
    """A tiny generator: each image is a constant equal to the latent's mean, per channel."""

    latent_dim = 4
    image_size = 8

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return z.mean(dim=1)[:, None, None, None].expand(-1, 3, 8, 8)


def test_to_uint8_follows_the_seed_mapping():
    x = torch.tensor([-1.5, -1.0, -0.5, 0.0, 0.002, 0.5, 1.0, 2.0]).reshape(1, 1, 1, 8)
    out = to_uint8(x.expand(1, 3, 1, 8))
    expected = np.clip(np.rint(127.5 * x.numpy().ravel() + 127.5), 0, 255).astype(np.uint8)
    assert out.shape == (1, 1, 8, 3) and out.dtype == np.uint8
    np.testing.assert_array_equal(out[0, 0, :, 0], expected)


def test_render_batches_and_matches_unbatched():
    gen = Generator(Ramp(), batch_size=3, device="cpu")
    z = gen.sample_latents(10, seed=0)
    images = gen.render(z)
    assert images.shape == (10, 8, 8, 3) and images.dtype == np.uint8
    one_by_one = np.concatenate([gen.render(row) for row in z])
    np.testing.assert_array_equal(images, one_by_one)
    assert gen.render(np.zeros((0, 4))).shape == (0, 8, 8, 3)


def test_sample_latents_is_seeded():
    gen = Generator(Ramp(), device="cpu")
    a, b = gen.sample_latents(5, seed=7), gen.sample_latents(5, seed=7)
    assert a.dtype == np.float32 and a.shape == (5, 4)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, gen.sample_latents(5, seed=8))


def test_wrong_latent_width_and_nan_are_refused():
    gen = Generator(Ramp(), name="ramp", device="cpu")
    with pytest.raises(
        ValueError,
        match=r"latents must have shape \(n, 4\) for generator 'ramp', "
        r"got \(2, 5\)",
    ):
        gen.render(np.zeros((2, 5)))
    z = np.zeros((3, 4))
    z[1, 2] = np.nan
    with pytest.raises(ValueError, match=r"latents contain NaN or Inf \(1 values\)"):
        gen.render(z)


def test_cpu_is_chosen_without_cuda():
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert pick_device(None).type == expected
    assert pick_device("cpu").type == "cpu"
    if not torch.cuda.is_available():
        with pytest.raises(
            RuntimeError, match="device 'cuda' was asked for but torch sees no CUDA"
        ):
            pick_device("cuda")


def test_precision_choice():
    assert Generator(Ramp(), device="cpu").dtype == torch.float32
    assert Generator(Ramp(), device="cpu", precision="bf16").dtype == torch.bfloat16
    auto = torch.bfloat16 if cpu_has_fast_bf16() else torch.float32
    assert Generator(Ramp(), device="cpu", precision="auto").dtype == auto
    with pytest.raises(ValueError, match="precision 'fp16' runs on CUDA only; use 'bf16'"):
        Generator(Ramp(), device="cpu", precision="fp16")
    with pytest.raises(ValueError, match="unknown precision 'half'; expected one of 'auto'"):
        Generator(Ramp(), device="cpu", precision="half")


def test_bf16_renders_the_default_faces_within_a_few_grey_levels():
    z = load("default", device="cpu").sample_latents(8, seed=5)
    fp32 = load("default", device="cpu").render(z).astype(int)
    bf16 = load("default", device="cpu", precision="bf16").render(z).astype(int)
    assert np.abs(fp32 - bf16).mean() < 1.0 and np.abs(fp32 - bf16).max() <= 8


def test_unknown_and_incomplete_specs(tmp_path):
    with pytest.raises(
        ValueError,
        match=r"unknown generator spec 'stylegan:x.pt'; expected "
        r"\"default\", \"pggan-mxnet:PATH\"",
    ):
        load("stylegan:x.pt")
    with pytest.raises(ValueError, match="unknown generator spec 'pggan'"):
        load("pggan")
    with pytest.raises(ValueError, match="generator spec 'dcgan:' names no file after 'dcgan:'"):
        load("dcgan:")
    missing = tmp_path / "nope.params"
    with pytest.raises(FileNotFoundError, match="generator weights file not found: .*nope.params"):
        load(f"pggan-mxnet:{missing}")
