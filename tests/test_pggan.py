"""PGGAN: architecture, a numpy reference forward, MXNet weights in both key styles, errors."""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch

import bci.generators
from bci.generators.mxnet_params import read_params, write_params
from bci.generators.pggan import PGGAN

LATENT, CHANNELS = 16, (32, 32, 16, 8)  # 3 blocks: 4x4 -> 32x32


def _exact(message: str) -> str:
    return f"^{re.escape(message)}$"


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def net() -> PGGAN:
    torch.manual_seed(0)
    model = PGGAN(LATENT, CHANNELS).eval()
    with torch.no_grad():  # a non-zero, per-channel bias so MXNet export keeps it exactly
        model.bias.copy_(torch.randn(CHANNELS[0])[:, None, None].expand(-1, 4, 4))
    return model


@pytest.fixture(scope="module")
def z() -> torch.Tensor:
    return torch.randn(3, LATENT, generator=torch.Generator().manual_seed(1))


# ---------------------------------------------------------------- numpy reference


def _np_pixel_norm(x):
    return x / np.sqrt(np.mean(x**2, axis=1, keepdims=True) + 1e-8)


def _np_leaky(x):
    return np.where(x >= 0, x, 0.2 * x)


def _np_conv(x, w, b):
    """Cross-correlation with zero padding k // 2, (n, ci, h, w) * (co, ci, k, k)."""
    k = w.shape[-1]
    pad = k // 2
    xp = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    windows = np.lib.stride_tricks.sliding_window_view(xp, (k, k), axis=(2, 3))
    return np.einsum("nchwij,ocij->nohw", windows, w) + b[None, :, None, None]


def _np_forward(p: dict[str, np.ndarray], z: np.ndarray, layer: int) -> np.ndarray:
    """The seed's generator in float64 numpy, written from the notebook's layer list."""
    c0 = p["bias"].shape[0]
    x = _np_pixel_norm(z) @ p["dense.weight"].T
    x = _np_pixel_norm(_np_leaky(x.reshape(-1, c0, 4, 4) + p["bias"]))
    x = _np_pixel_norm(_np_leaky(_np_conv(x, p["conv0.weight"], p["conv0.bias"])))
    n_blocks = sum(1 for k in p if k.endswith("conv1.weight"))
    for i in range(min(layer, n_blocks)):
        x = x.repeat(2, axis=2).repeat(2, axis=3)
        for conv in ("conv1", "conv2"):
            w, b = p[f"blocks.{i}.{conv}.weight"], p[f"blocks.{i}.{conv}.bias"]
            x = _np_pixel_norm(_np_leaky(_np_conv(x, w, b)))
    if layer <= n_blocks:
        return x
    return _np_conv(x, p["to_rgb.weight"], p["to_rgb.bias"])


@pytest.mark.parametrize("layer", [0, 2, 4])
def test_matches_numpy_reference(net, z, layer):
    params = {k: v.double().numpy() for k, v in net.state_dict().items()}
    expected = _np_forward(params, z.double().numpy(), layer)
    with torch.no_grad():
        got = net(z, layer).numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5)


# ---------------------------------------------------------------- architecture


def test_every_layer_shape(net, z):
    expected = {0: (32, 4), 1: (32, 8), 2: (16, 16), 3: (8, 32), 4: (3, 32)}
    with torch.no_grad():
        for layer, (c, s) in expected.items():
            assert net(z, layer).shape == (3, c, s, s)
        assert torch.equal(net(z), net(z, 4))
    assert (net.latent_dim, net.image_size, net.n_blocks) == (16, 32, 3)


def test_full_size_architecture_on_meta_device():
    with torch.device("meta"):
        full = PGGAN()
        image = full(torch.empty(2, 512))
        features = full(torch.empty(2, 512), layer=6)
    assert (full.latent_dim, full.image_size, full.n_blocks) == (512, 1024, 8)
    assert image.shape == (2, 3, 1024, 1024) and features.shape == (2, 64, 256, 256)
    shapes = {k: tuple(v.shape) for k, v in full.state_dict().items()}
    assert shapes["dense.weight"] == (8192, 512)
    assert shapes["bias"] == (512, 4, 4)
    assert shapes["conv0.weight"] == (512, 512, 3, 3)
    assert shapes["blocks.0.conv1.weight"] == (512, 512, 3, 3)
    assert shapes["blocks.3.conv1.weight"] == (256, 512, 3, 3)
    assert shapes["blocks.7.conv1.weight"] == (16, 32, 3, 3)
    assert shapes["blocks.7.conv2.bias"] == (16,)
    assert shapes["to_rgb.weight"] == (3, 16, 1, 1)
    chans = (512, 512, 512, 512, 256, 128, 64, 32, 16)  # the seed: C0, then 8 Blocks
    convs = sum(9 * (a * b + b * b) + 2 * b for a, b in zip(chans[:-1], chans[1:], strict=True))
    expected = 512 * 8192 + 512 * 16 + 9 * 512 * 512 + 512 + convs + 3 * 16 + 3
    assert sum(v.numel() for v in full.parameters()) == expected


def test_bad_layer_and_bad_latent_width(net, z):
    for layer in (-1, 5, "3", 2.0):
        message = f"layer must be an int in 0..4 (4 = image), got {layer!r}"
        with pytest.raises(ValueError, match=_exact(message)):
            net(z, layer)
    with pytest.raises(ValueError, match=_exact("latents have width 15, expected 16")):
        net(torch.zeros(3, 15))
    with pytest.raises(ValueError, match=_exact("latents must have shape (n, 16), got (16,)")):
        net(torch.zeros(16))


# ---------------------------------------------------------------- MXNet weights

INDEX_KEYS = ["1.weight", "2.b", "5.weight", "5.bias"]
INDEX_KEYS += [f"{8 + i}.{c}.{p}" for i in range(3) for c in (0, 3) for p in ("weight", "bias")]
INDEX_KEYS += ["11.weight", "11.bias"]
PREFIXED_KEYS = [
    "generator0_dense0_weight",
    "generator0_bias0_b",
    "generator0_conv0_weight",
    "generator0_conv0_bias",
]
PREFIXED_KEYS += [
    f"generator0_block{i}_conv{c}_{p}" for i in range(3) for c in (0, 1) for p in ("weight", "bias")
]
PREFIXED_KEYS += ["generator0_conv1_weight", "generator0_conv1_bias"]


@pytest.mark.parametrize(("style", "keys"), [("index", INDEX_KEYS), ("prefixed", PREFIXED_KEYS)])
def test_mxnet_round_trip_is_bit_identical(net, z, tmp_path, style, keys):
    path = tmp_path / "generator.params"
    net.to_mxnet(path, style=style)
    arrays = read_params(path)
    assert list(arrays) == keys
    assert arrays[keys[0]].shape == (16 * 32, 16) and arrays[keys[1]].shape == (32,)
    loaded = PGGAN.from_mxnet(path).eval()
    assert (loaded.latent_dim, loaded.channels) == (LATENT, CHANNELS)
    with torch.no_grad():
        assert torch.equal(loaded(z), net(z))
        assert torch.equal(loaded(z, 1), net(z, 1))


def test_mxnet_any_prefix_and_arg_names(net, z, tmp_path):
    path = tmp_path / "generator.params"
    net.to_mxnet(path, style="prefixed")
    renamed = {
        "arg:" + k.replace("generator0_", "hybridsequential3_"): v
        for k, v in read_params(path).items()
    }
    write_params(path, renamed)
    with torch.no_grad():
        assert torch.equal(PGGAN.from_mxnet(path)(z), net(z))


def test_mxnet_bias_is_per_channel(net, tmp_path):
    path = tmp_path / "generator.params"
    net.to_mxnet(path)
    arrays = read_params(path)
    arrays["2.b"] = np.arange(32, dtype=np.float32)
    write_params(path, arrays)
    bias = PGGAN.from_mxnet(path).bias.detach()
    assert torch.equal(bias, torch.arange(32.0)[:, None, None].expand(32, 4, 4))


def test_mxnet_missing_and_misshaped_tensors(net, tmp_path):
    path = tmp_path / "generator.params"
    net.to_mxnet(path)
    arrays = read_params(path)
    write_params(path, {k: v for k, v in arrays.items() if k != "8.3.weight"})
    with pytest.raises(ValueError, match=_exact(f"{path}: missing tensor '8.3.weight'")):
        PGGAN.from_mxnet(path)
    write_params(path, {**arrays, "5.weight": np.zeros((32, 32, 1, 1), np.float32)})
    message = f"{path}: tensor '5.weight' has shape (32, 32, 1, 1), expected (32, 32, 3, 3)"
    with pytest.raises(ValueError, match=_exact(message)):
        PGGAN.from_mxnet(path)
    write_params(path, {**arrays, "9.0.weight": np.zeros((16, 8, 3, 3), np.float32)})
    message = f"{path}: tensor '9.0.weight' has shape (16, 8, 3, 3), expected (16, 32, 3, 3)"
    with pytest.raises(ValueError, match=_exact(message)):
        PGGAN.from_mxnet(path)
    write_params(path, {k: v for k, v in arrays.items() if k != "1.weight"})
    with pytest.raises(ValueError, match=_exact(f"{path}: missing tensor '1.weight'")):
        PGGAN.from_mxnet(path)


def test_to_mxnet_refuses_spatial_bias(tmp_path):
    model = PGGAN(LATENT, CHANNELS)
    with torch.no_grad():
        model.bias.normal_()
    message = "the 4x4 bias varies over space; MXNet's Bias stores one per channel"
    with pytest.raises(ValueError, match=_exact(message)):
        model.to_mxnet(tmp_path / "g.params")


def test_load_spec_renders_uint8(net, z, tmp_path):
    path = tmp_path / "generator.params"
    net.to_mxnet(path)
    gen = bci.generators.load(f"pggan-mxnet:{path}", device="cpu")
    images = gen.render(z.numpy())
    assert images.dtype == np.uint8 and images.shape == (3, 32, 32, 3)
    with torch.no_grad():
        expected = bci.generators.to_uint8(net(z))
    np.testing.assert_array_equal(images, expected)


# Pixel values computed by MXNet 1.9.1 gluon itself: the seed's Generator (full layer list:
# Pixelnorm, Dense, Bias, LeakyReLU, Pixelnorm, Conv, LeakyReLU, Pixelnorm, Blocks, Conv) built
# with latent 4 and channels (4, 2), every parameter k (in save_parameters order) set to
# sin(0.7 * arange(size) + k) / 2, run on the two latents below.
MXNET_Z = [[0.5, -1.0, 2.0, 0.25], [-1.5, 0.75, 0.0, 1.0]]
MXNET_IMAGE_Y3_X5 = [[0.9908787, -0.4882894, -1.3185287], [1.0206585, -0.4553912, -1.3371252]]
MXNET_IMAGE_Y0_X7 = [[-0.6324627, 0.1294624, 0.5148078], [-0.6247914, 0.1539896, 0.5154742]]
MXNET_LAYER0_Y1_X2 = [
    [1.2310108, 0.9461435, 0.8145525, 0.9622518],
    [1.0996951, 0.9995974, 0.9391242, 0.9536886],
]


def test_matches_values_computed_by_mxnet_gluon(tmp_path):
    shapes = {
        "1.weight": (64, 4),
        "2.b": (4,),
        "5.weight": (4, 4, 3, 3),
        "5.bias": (4,),
        "8.0.weight": (2, 4, 3, 3),
        "8.0.bias": (2,),
        "8.3.weight": (2, 2, 3, 3),
        "8.3.bias": (2,),
        "9.weight": (3, 2, 1, 1),
        "9.bias": (3,),
    }
    arrays = {
        key: (np.sin(np.arange(np.prod(shape)) * 0.7 + k) * 0.5).astype(np.float32).reshape(shape)
        for k, (key, shape) in enumerate(shapes.items())
    }
    write_params(tmp_path / "generator.params", arrays)
    model = PGGAN.from_mxnet(tmp_path / "generator.params")
    z = torch.tensor(MXNET_Z)
    with torch.no_grad():
        image, features = model(z), model(z, 0)
    assert image.shape == (2, 3, 8, 8)
    torch.testing.assert_close(
        image[:, :, 3, 5], torch.tensor(MXNET_IMAGE_Y3_X5), atol=1e-5, rtol=0
    )
    torch.testing.assert_close(
        image[:, :, 0, 7], torch.tensor(MXNET_IMAGE_Y0_X7), atol=1e-5, rtol=0
    )
    torch.testing.assert_close(
        features[:, :, 1, 2], torch.tensor(MXNET_LAYER0_Y1_X2), atol=1e-5, rtol=0
    )
