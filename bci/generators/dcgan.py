"""The lecture's DCGAN generator (seed ``003``): the PyTorch DCGAN tutorial's ``Generator``.

``self.main`` keeps the tutorial's ``nn.Sequential`` indices, so its state dicts
(``main.0.weight``, ``main.1.running_mean``, ...) load unchanged.
"""

from __future__ import annotations

from collections.abc import Mapping
from os import PathLike
from typing import Any

import torch
from torch import nn

_OPTIONAL = ("num_batches_tracked",)  # BatchNorm counters, absent from old state dicts


class DCGAN(nn.Module):
    """DCGAN generator: ``(n, nz)`` latents to ``(n, nc, 64, 64)`` images in [-1, 1].

    Parameters
    ----------
    nz : int
        Latent width (100 in the tutorial).
    ngf : int
        Feature maps of the last hidden layer (64); the first has ``8 * ngf``.
    nc : int
        Output channels (3).
    """

    def __init__(self, nz: int = 100, ngf: int = 64, nc: int = 3) -> None:
        super().__init__()
        self.latent_dim = int(nz)
        self.image_size = 64
        widths = [ngf * 8, ngf * 4, ngf * 2, ngf]
        layers: list[nn.Module] = []
        for i, (c_in, c_out) in enumerate(zip([nz, *widths[:-1]], widths, strict=True)):
            stride, pad = (1, 0) if i == 0 else (2, 1)
            layers += [
                nn.ConvTranspose2d(c_in, c_out, 4, stride, pad, bias=False),
                nn.BatchNorm2d(c_out),
                nn.ReLU(True),
            ]
        layers += [nn.ConvTranspose2d(ngf, nc, 4, 2, 1, bias=False), nn.Tanh()]
        self.main = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """Render ``(n, nz)`` (or the tutorial's ``(n, nz, 1, 1)``) latents to images.

        Parameters
        ----------
        z : torch.Tensor
            Latents.

        Returns
        -------
        torch.Tensor, shape (n, nc, 64, 64)
        """
        flat = z.reshape(z.shape[0], -1) if z.ndim == 4 and z.shape[2:] == (1, 1) else z
        if flat.ndim != 2:
            raise ValueError(
                f"latents must have shape (n, {self.latent_dim}), got {tuple(z.shape)}"
            )
        if flat.shape[1] != self.latent_dim:
            raise ValueError(f"latents have width {flat.shape[1]}, expected {self.latent_dim}")
        return self.main(flat[:, :, None, None])

    @classmethod
    def from_file(cls, path: str | PathLike[str]) -> DCGAN:
        """Load a generator saved with ``torch.save(netG.state_dict(), path)``.

        Also accepts a dict holding the state under ``'netG'`` or ``'state_dict'``, and
        ``DataParallel``'s ``module.`` prefixes. ``nz`` and ``ngf`` are read off the shapes; the
        output must have 3 channels (RGB).

        Parameters
        ----------
        path : str | PathLike
            The weights file.

        Returns
        -------
        DCGAN
            In eval mode.

        Raises
        ------
        ValueError
            Not a torch file, or a tensor is missing or mis-shaped.
        """
        state = _read_state(path)
        first = state.get("main.0.weight")
        if first is None:
            raise ValueError(f"{path}: missing tensor 'main.0.weight'")
        if first.ndim != 4 or first.shape[1] % 8 or first.shape[1] == 0:
            raise ValueError(
                f"{path}: tensor 'main.0.weight' has shape {tuple(first.shape)}, "
                "expected (nz, 8 * ngf, 4, 4)"
            )
        model = cls(nz=int(first.shape[0]), ngf=int(first.shape[1]) // 8, nc=3)
        loaded = {}
        for key, ref in model.state_dict().items():
            if key not in state and key.rsplit(".", 1)[-1] in _OPTIONAL:
                continue
            if key not in state:
                raise ValueError(f"{path}: missing tensor {key!r}")
            found = tuple(state[key].shape)
            if found != tuple(ref.shape):
                raise ValueError(
                    f"{path}: tensor {key!r} has shape {found}, expected {tuple(ref.shape)}"
                )
            loaded[key] = state[key].to(ref.dtype)
        model.load_state_dict(loaded, strict=False)
        return model.eval()


def _read_state(path: str | PathLike[str]) -> dict[str, torch.Tensor]:
    """The tensors of a torch-saved state dict, unwrapped from ``netG`` / ``state_dict``."""
    try:
        payload: Any = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises many types for a file that is not a checkpoint
        text = str(err).strip()
        reason = text.splitlines()[0] if text else type(err).__name__
        raise ValueError(f"{path} is not a torch checkpoint ({reason})") from None
    for wrapper in ("netG", "state_dict"):
        if isinstance(payload, Mapping) and isinstance(payload.get(wrapper), Mapping):
            payload = payload[wrapper]
            break
    if not isinstance(payload, Mapping):
        raise ValueError(f"{path}: expected a state dict, found a {type(payload).__name__}")
    return {
        str(k).removeprefix("module."): v for k, v in payload.items() if isinstance(v, torch.Tensor)
    }
