"""The default face generator that ships with bci.

A convolutional decoder trained (by ``tools/train_default_generator.py``) to reproduce the
procedural faces of :mod:`bci.faces` from their latents: a 32-d latent drawn from N(0, I) gives a
64x64 face, and nearby latents give similar faces. The weights are small enough to live in the
repository, so nothing is downloaded at run time.
"""

from __future__ import annotations

import re
from pathlib import Path

import torch
from torch import nn

from bci.faces.attributes import N_ATTRIBUTES

WEIGHTS_PATH = Path(__file__).parent / "weights" / "default_faces.pt"
FORMAT = "bci-default-faces"
FORMAT_VERSION = 1


class FaceDecoder(nn.Module):
    """Latent → face image decoder: an MLP, then transposed-convolution upsampling 4→64 px.

    Parameters
    ----------
    latent_dim : int
        Width of the latent.
    channels : tuple of int
        Feature channels at 4, 8, 16, 32 and 64 px (one more entry per doubling).
    hidden : int
        Width of the MLP that maps the latent before the convolutions.
    """

    def __init__(
        self,
        latent_dim: int = N_ATTRIBUTES,
        channels: tuple[int, ...] = (384, 256, 128, 64, 32),
        hidden: int = 256,
    ) -> None:
        super().__init__()
        self.latent_dim = int(latent_dim)
        self.channels = tuple(int(c) for c in channels)
        self.hidden = int(hidden)
        self.image_size = 4 * 2 ** (len(self.channels) - 1)
        self.mapping = nn.Sequential(
            nn.Linear(latent_dim, hidden),
            nn.LeakyReLU(0.2),
            nn.Linear(hidden, hidden),
            nn.LeakyReLU(0.2),
            nn.Linear(hidden, self.channels[0] * 16),
            nn.LeakyReLU(0.2),
        )
        layers: list[nn.Module] = []
        for c_in, c_out in zip(self.channels[:-1], self.channels[1:], strict=True):
            layers += [nn.ConvTranspose2d(c_in, c_out, 4, stride=2, padding=1), nn.LeakyReLU(0.2)]
        self.upsample = nn.Sequential(*layers)
        self.to_rgb = nn.Conv2d(self.channels[-1], 3, 3, padding=1)

    def config(self) -> dict:
        """Constructor arguments, as saved beside the weights."""
        return {
            "latent_dim": self.latent_dim,
            "channels": list(self.channels),
            "hidden": self.hidden,
        }

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """Map latents (n, latent_dim) to images (n, 3, H, W), nominally in [-1, 1]."""
        if z.ndim != 2 or z.shape[1] != self.latent_dim:
            raise ValueError(
                f"latent width {z.shape[-1] if z.ndim else 0} does not match the generator's "
                f"latent_dim {self.latent_dim}"
            )
        x = self.mapping(z).view(-1, self.channels[0], 4, 4)
        return self.to_rgb(self.upsample(x))


def save_default_module(module: FaceDecoder, path: str | Path, meta: dict | None = None) -> None:
    """Save a :class:`FaceDecoder` in half precision with its config and training metadata."""
    state = {k: v.detach().to("cpu", torch.float16) for k, v in module.state_dict().items()}
    payload = {
        "format": FORMAT,
        "version": FORMAT_VERSION,
        "config": module.config(),
        "meta": dict(meta or {}),
        "state_dict": state,
    }
    torch.save(payload, Path(path))


def load_default_module(path: str | Path = WEIGHTS_PATH) -> FaceDecoder:
    """Load the shipped default generator (or a file written by :func:`save_default_module`).

    Parameters
    ----------
    path : str | Path
        Weights file; defaults to the one shipped inside the package.

    Returns
    -------
    FaceDecoder
        In eval mode, float32, on the CPU.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"default generator weights not found at {path}; "
            "create them with: python tools/train_default_generator.py"
        )
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises many types for a damaged file
        text = re.sub(r"\x1b\[[0-9;]*m", "", str(err)).strip()
        first = text.splitlines()[0].split(". ")[0] if text else type(err).__name__
        raise ValueError(
            f"{path} is not a readable default generator weights file ({first})"
        ) from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise ValueError(f"{path} is not a default generator weights file (no '{FORMAT}' header)")
    if payload.get("version") != FORMAT_VERSION:
        raise ValueError(
            f"{path} has default generator format version {payload.get('version')}, "
            f"this bci reads version {FORMAT_VERSION}"
        )
    module = FaceDecoder(**payload["config"])
    expected = module.state_dict()
    state = payload["state_dict"]
    for name, tensor in expected.items():
        if name not in state:
            raise ValueError(f"{path}: missing tensor {name!r}")
        if tuple(state[name].shape) != tuple(tensor.shape):
            raise ValueError(
                f"{path}: tensor {name!r} has shape {tuple(state[name].shape)}, "
                f"expected {tuple(tensor.shape)}"
            )
    module.load_state_dict({k: v.float() for k, v in state.items()})
    module.meta = payload.get("meta", {})
    return module.eval()
