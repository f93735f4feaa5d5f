"""The procedural face renderer: shapes, determinism, and that each attribute does what it says."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from bci.faces import (
    ATTRIBUTES,
    N_ATTRIBUTES,
    attribute_index,
    latents_to_attributes,
    render_attributes,
    render_latents,
)


def neutral(n: int = 1) -> torch.Tensor:
    """Attribute rows at the middle of every range, with beard and glasses off."""
    a = torch.full((n, N_ATTRIBUTES), 0.5)
    a[:, attribute_index("beard")] = 0.0
    a[:, attribute_index("glasses")] = 0.0
    return a


def with_value(name: str, values: list[float]) -> torch.Tensor:
    a = neutral(len(values))
    a[:, attribute_index(name)] = torch.tensor(values)
    return a


def test_shapes_range_and_determinism():
    z = torch.randn(5, N_ATTRIBUTES, generator=torch.Generator().manual_seed(1))
    a = render_latents(z, size=48)
    b = render_latents(z.numpy(), size=48)
    assert a.shape == (5, 3, 48, 48) and a.dtype == torch.float32
    assert float(a.min()) >= 0.0 and float(a.max()) <= 1.0
    assert torch.equal(a, b)


def test_latents_map_through_normal_cdf():
    z = torch.tensor([[0.0] * N_ATTRIBUTES, [1.959964] * N_ATTRIBUTES])
    u = latents_to_attributes(z)
    np.testing.assert_allclose(u[0].numpy(), 0.5, atol=1e-7)
    np.testing.assert_allclose(u[1].numpy(), 0.975, atol=1e-6)


def test_attribute_names_are_unique_and_indexable():
    assert len(set(ATTRIBUTES)) == N_ATTRIBUTES == 32
    assert attribute_index("smile") == ATTRIBUTES.index("smile")
    with pytest.raises(ValueError, match="unknown face attribute 'moustache'"):
        attribute_index("moustache")


def test_wrong_shapes_are_refused():
    with pytest.raises(
        ValueError,
        match=r"latents must have shape \(n, 32\) for the face renderer, "
        r"got \(2, 31\)",
    ):
        render_latents(torch.zeros(2, 31))
    with pytest.raises(ValueError, match=r"attributes must have shape \(n, 32\), got \(32,\)"):
        render_attributes(torch.zeros(32))


def region_mean(images: torch.Tensor, rows: slice, cols: slice) -> np.ndarray:
    return images[:, :, rows, cols].mean(dim=(1, 2, 3)).numpy()


def test_skin_lightness_brightens_the_cheeks():
    img = render_attributes(with_value("skin_lightness", [0.0, 0.5, 1.0]), size=64)
    cheeks = region_mean(img, slice(30, 34), slice(18, 22))
    assert cheeks[0] < cheeks[1] < cheeks[2]
    assert cheeks[2] - cheeks[0] > 0.25


def test_hair_lightness_brightens_the_crown():
    img = render_attributes(with_value("hair_lightness", [0.0, 1.0]), size=64)
    crown = region_mean(img, slice(6, 9), slice(28, 36))
    assert crown[1] - crown[0] > 0.4


def test_glasses_and_beard_switch_on():
    glasses = render_attributes(with_value("glasses", [0.0, 1.0]), size=64)
    beard = render_attributes(with_value("beard", [0.0, 1.0]), size=64)
    assert float((glasses[0] - glasses[1]).abs().max()) > 0.3
    assert float((beard[0] - beard[1]).abs().max()) > 0.1
    # Below the switching threshold the attribute has no effect at all.
    low = render_attributes(with_value("glasses", [0.0, 0.6]), size=64)
    assert torch.equal(low[0], low[1])


@pytest.mark.parametrize("name", ATTRIBUTES)
def test_every_attribute_changes_the_image(name):
    # Hues are circular: compare values half a turn apart, not the two ends.
    a = with_value(name, [0.05, 0.55] if name.endswith("hue") else [0.05, 0.95])
    if name in ("beard", "glasses"):
        a[:, attribute_index(name)] = torch.tensor([0.0, 1.0])
    if name == "ear_size":
        a[:, attribute_index("hair_length")] = 0.1  # long hair hides the ears
    img = render_attributes(a, size=64)
    assert float((img[0] - img[1]).abs().max()) > 0.03, name


def test_small_latent_steps_give_small_image_changes():
    rng = torch.Generator().manual_seed(3)
    z = torch.randn(20, N_ATTRIBUTES, generator=rng)
    near = z + 0.02 * torch.randn(20, N_ATTRIBUTES, generator=rng)
    other = torch.randn(20, N_ATTRIBUTES, generator=rng)
    base, step, far = render_latents(z), render_latents(near), render_latents(other)
    assert float((base - step).abs().mean()) * 10 < float((base - far).abs().mean())
