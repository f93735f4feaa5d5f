"""pytorch_GAN_zoo PGAN checkpoints: written here with GNet's key names, checked against the zoo's
equations (progressive_conv_net.GNet.forward, custom_layers.ConstrainedLayer / Upscale2d)."""

from __future__ import annotations

import math
import re
import sys
import types

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import bci.generators
from bci.generators.gan_zoo import load_gan_zoo

LATENT, DEPTHS = 8, (16, 16, 8)  # depthScale0, then depthOtherScales: 16x16 images


def _exact(message: str) -> str:
    return f"^{re.escape(message)}$"


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _gnet_state(seed: int) -> dict[str, torch.Tensor]:
    """A GNet state dict: N(0, 1) weights as ConstrainedLayer initialises them, random biases."""
    g = torch.Generator().manual_seed(seed)
    shapes = {
        "formatLayer": (16 * DEPTHS[0], LATENT),
        "groupScale0.0": (DEPTHS[0], DEPTHS[0], 3, 3),
    }
    for i, (c_in, c_out) in enumerate(zip(DEPTHS[:-1], DEPTHS[1:], strict=True)):
        shapes[f"scaleLayers.{i}.0"] = (c_out, c_in, 3, 3)
        shapes[f"scaleLayers.{i}.1"] = (c_out, c_out, 3, 3)
    for i, c in enumerate(DEPTHS):
        shapes[f"toRGBLayers.{i}"] = (3, c, 1, 1)
    state = {}
    for name, shape in shapes.items():
        state[f"{name}.module.weight"] = torch.randn(shape, generator=g)
        state[f"{name}.module.bias"] = 0.1 * torch.randn(shape[0], generator=g)
    return state


def _zoo_forward(state, z, slope=0.2, equalized=True, tanh=False):
    """GNet.forward (alpha = 0) in float64, from the zoo's equations."""
    s = {k: v.double() for k, v in state.items()}

    def layer(name, x, conv):
        w, b = s[f"{name}.module.weight"], s[f"{name}.module.bias"]
        y = F.conv2d(x, w, b, padding=w.shape[-1] // 2) if conv else F.linear(x, w, b)
        return y * math.sqrt(2.0 / np.prod(w.shape[1:])) if equalized else y

    def norm(x):
        return x * ((x**2).mean(dim=1, keepdim=True) + 1e-8).rsqrt()

    def upscale(x):
        n, c, h, w = x.shape
        return x.view(n, c, h, 1, w, 1).expand(n, c, h, 2, w, 2).reshape(n, c, 2 * h, 2 * w)

    x = F.leaky_relu(layer("formatLayer", norm(z.double()), conv=False), slope)
    x = norm(x.view(x.shape[0], -1, 4, 4))
    x = norm(F.leaky_relu(layer("groupScale0.0", x, conv=True), slope))
    for i in range(len(DEPTHS) - 1):
        x = upscale(x)
        for j in range(2):
            x = norm(F.leaky_relu(layer(f"scaleLayers.{i}.{j}", x, conv=True), slope))
    x = layer(f"toRGBLayers.{len(DEPTHS) - 1}", x, conv=True)
    return torch.tanh(x) if tanh else x


@pytest.fixture(scope="module")
def z() -> torch.Tensor:
    return torch.randn(4, LATENT, generator=torch.Generator().manual_seed(7))


def _render(path, z):
    model = load_gan_zoo(path).eval()
    with torch.no_grad():
        return model(z).double()


def _config(**extra):
    base = {"depthScale0": DEPTHS[0], "depthOtherScales": list(DEPTHS[1:])}
    return {**base, "latentVectorDim": LATENT, "lossCriterion": "WGANGP", **extra}


def test_netg_checkpoint_matches_zoo_forward(tmp_path, z):
    state = _gnet_state(0)
    path = tmp_path / "pgan.pth"
    torch.save({"config": _config(), "netG": state, "netD": {}}, path)
    model = load_gan_zoo(path)
    assert (model.latent_dim, model.channels, model.image_size) == (LATENT, DEPTHS, 16)
    torch.testing.assert_close(_render(path, z), _zoo_forward(state, z), rtol=1e-4, atol=1e-5)


def test_avgg_is_preferred_and_module_prefix_stripped(tmp_path, z):
    net_g, avg_g = _gnet_state(0), _gnet_state(1)
    path = tmp_path / "pgan.pth"
    wrapped = {f"module.{k}": v for k, v in avg_g.items()}
    torch.save({"config": _config(), "netG": net_g, "avgG": wrapped}, path)
    torch.testing.assert_close(_render(path, z), _zoo_forward(avg_g, z), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize(
    ("extra", "kwargs"),
    [
        ({"lossCriterion": "DCGAN"}, {"tanh": True}),
        ({"equalizedlR": False}, {"equalized": False}),
        ({"leakyReluLeak": 0.1}, {"slope": 0.1}),
    ],
)
def test_config_options(tmp_path, z, extra, kwargs):
    state = _gnet_state(2)
    path = tmp_path / "pgan.pth"
    torch.save({"config": _config(**extra), "netG": state}, path)
    expected = _zoo_forward(state, z, **kwargs)
    torch.testing.assert_close(_render(path, z), expected, rtol=1e-4, atol=1e-5)


def test_pickled_base_config_loads_without_zoo_code(tmp_path, z, monkeypatch):
    """The zoo pickles ``models.utils.config.BaseConfig``; it must load with weights_only."""
    modules = {name: types.ModuleType(name) for name in ("models", "models.utils")}
    config_module = types.ModuleType("models.utils.config")
    base_config = type("BaseConfig", (), {"__module__": "models.utils.config"})
    config_module.BaseConfig = base_config
    modules["models.utils.config"] = config_module
    for name, module in modules.items():
        monkeypatch.setitem(sys.modules, name, module)
    config = base_config()
    config.__dict__.update(_config(leakyReluLeak=0.3))
    state = _gnet_state(3)
    path = tmp_path / "pgan.pth"
    torch.save({"config": config, "netG": state}, path)
    for name in modules:
        monkeypatch.delitem(sys.modules, name)
    expected = _zoo_forward(state, z, slope=0.3)
    torch.testing.assert_close(_render(path, z), expected, rtol=1e-4, atol=1e-5)


def test_errors(tmp_path):
    path = tmp_path / "pgan.pth"
    path.write_bytes(b"certainly not a checkpoint")
    with pytest.raises(ValueError, match=re.escape(f"{path} is not a torch checkpoint (")):
        load_gan_zoo(path)
    torch.save({"weights": {}}, path)
    message = f"{path} is not a pytorch_GAN_zoo checkpoint (no 'netG' or 'avgG')"
    with pytest.raises(ValueError, match=_exact(message)):
        load_gan_zoo(path)
    state = _gnet_state(0)
    del state["scaleLayers.1.1.module.weight"]
    torch.save({"netG": state}, path)
    message = f"{path}: missing tensor 'scaleLayers.1.1.module.weight'"
    with pytest.raises(ValueError, match=_exact(message)):
        load_gan_zoo(path)
    state = _gnet_state(0)
    state["toRGBLayers.2.module.weight"] = torch.zeros(1, 8, 1, 1)
    torch.save({"netG": state}, path)
    message = f"{path}: tensor 'toRGBLayers.2.module.weight' has shape (1, 8, 1, 1), "
    message += "expected (3, 8, 1, 1)"
    with pytest.raises(ValueError, match=_exact(message)):
        load_gan_zoo(path)


def test_unsupported_config(tmp_path, z):
    path = tmp_path / "pgan.pth"
    state = _gnet_state(0)
    torch.save({"config": _config(perChannelNormalization=False), "netG": state}, path)
    message = f"{path}: perChannelNormalization=False is not supported "
    message += "(the zoo's own GNet.forward needs the normalization layer)"
    with pytest.raises(ValueError, match=_exact(message)):
        load_gan_zoo(path)
    torch.save({"config": _config(alpha=0.5), "netG": state}, path)
    with pytest.warns(UserWarning, match=re.escape("alpha=0.5 ignored; rendering the last scale")):
        torch.testing.assert_close(_render(path, z), _zoo_forward(state, z), rtol=1e-4, atol=1e-5)


def test_unsafe_pickles_are_refused(tmp_path):
    path = tmp_path / "pgan.pth"
    torch.save({"netG": _gnet_state(0), "config": np.dtype("float32")}, path)
    with pytest.raises(ValueError, match=re.escape(f"{path}: checkpoint pickles ")):
        load_gan_zoo(path)


def test_load_spec(tmp_path, z):
    path = tmp_path / "pgan.pth"
    torch.save({"config": _config(), "netG": _gnet_state(0)}, path)
    images = bci.generators.load(f"pggan-zoo:{path}", device="cpu").render(z.numpy())
    assert images.dtype == np.uint8 and images.shape == (4, 16, 16, 3)
