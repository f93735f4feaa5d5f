"""DCGAN: the tutorial's state-dict keys, file round trips, the load spec, one-line errors."""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch

import bci.generators
from bci.generators.dcgan import DCGAN

NZ, NGF = 16, 8


def _exact(message: str) -> str:
    return f"^{re.escape(message)}$"


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def net() -> DCGAN:
    """A small DCGAN with random weights and non-trivial BatchNorm statistics."""
    torch.manual_seed(0)
    model = DCGAN(nz=NZ, ngf=NGF)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_mean.normal_()
                module.running_var.uniform_(0.5, 2.0)
                module.weight.normal_()
                module.bias.normal_()
    return model.eval()


@pytest.fixture(scope="module")
def z() -> torch.Tensor:
    return torch.randn(3, NZ, generator=torch.Generator().manual_seed(1))


def test_tutorial_layout():
    model = DCGAN()
    expected = []
    for i in (0, 3, 6, 9):  # ConvTranspose2d, BatchNorm2d, ReLU
        bn = ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")
        expected += [f"main.{i}.weight"] + [f"main.{i + 1}.{p}" for p in bn]
    assert list(model.state_dict()) == [*expected, "main.12.weight"]
    shapes = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    assert shapes["main.0.weight"] == (100, 512, 4, 4)
    assert shapes["main.1.running_mean"] == (512,)
    assert shapes["main.12.weight"] == (64, 3, 4, 4)
    assert (model.latent_dim, model.image_size) == (100, 64)
    with torch.no_grad():
        out = model.eval()(torch.randn(2, 100))
    assert out.shape == (2, 3, 64, 64) and out.abs().max() <= 1


def test_state_dict_round_trip(net, z, tmp_path):
    path = tmp_path / "netG.pth"
    torch.save(net.state_dict(), path)
    loaded = DCGAN.from_file(path)
    assert (loaded.latent_dim, loaded.training) == (NZ, False)
    with torch.no_grad():
        assert torch.equal(loaded(z), net(z))
        assert torch.equal(loaded(z[:, :, None, None]), net(z))


@pytest.mark.parametrize("wrap", ["netG", "state_dict", "module", "no_counters"])
def test_wrapped_state_dicts(net, z, tmp_path, wrap):
    state = net.state_dict()
    if wrap == "module":
        payload = {f"module.{k}": v for k, v in state.items()}
    elif wrap == "no_counters":
        payload = {k: v for k, v in state.items() if not k.endswith("num_batches_tracked")}
    else:
        payload = {wrap: state, "epoch": 3}
    path = tmp_path / "netG.pth"
    torch.save(payload, path)
    with torch.no_grad():
        assert torch.equal(DCGAN.from_file(path)(z), net(z))


def test_load_spec(net, z, tmp_path):
    path = tmp_path / "netG.pth"
    torch.save(net.state_dict(), path)
    gen = bci.generators.load(f"dcgan:{path}", device="cpu")
    images = gen.render(z.numpy())
    assert images.dtype == np.uint8 and images.shape == (3, 64, 64, 3)
    with torch.no_grad():
        np.testing.assert_array_equal(images, bci.generators.to_uint8(net(z)))


def test_errors(net, tmp_path):
    path = tmp_path / "netG.pth"
    path.write_bytes(b"not a torch file at all")
    with pytest.raises(ValueError, match=re.escape(f"{path} is not a torch checkpoint (")):
        DCGAN.from_file(path)
    state = net.state_dict()
    torch.save({k: v for k, v in state.items() if k != "main.3.weight"}, path)
    with pytest.raises(ValueError, match=_exact(f"{path}: missing tensor 'main.3.weight'")):
        DCGAN.from_file(path)
    torch.save({**state, "main.4.running_var": torch.ones(5)}, path)
    message = f"{path}: tensor 'main.4.running_var' has shape (5,), expected (32,)"
    with pytest.raises(ValueError, match=_exact(message)):
        DCGAN.from_file(path)
    torch.save({**state, "main.12.weight": torch.ones(NGF, 1, 4, 4)}, path)
    message = f"{path}: tensor 'main.12.weight' has shape (8, 1, 4, 4), expected (8, 3, 4, 4)"
    with pytest.raises(ValueError, match=_exact(message)):
        DCGAN.from_file(path)
    torch.save([1, 2], path)
    with pytest.raises(ValueError, match=_exact(f"{path}: expected a state dict, found a list")):
        DCGAN.from_file(path)


def test_wrong_latent_width(net):
    with pytest.raises(ValueError, match=_exact("latents have width 15, expected 16")):
        net(torch.zeros(2, 15))
    message = "latents must have shape (n, 16), got (2, 16, 2, 1)"
    with pytest.raises(ValueError, match=_exact(message)):
        net(torch.zeros(2, 16, 2, 1))
