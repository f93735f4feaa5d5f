"""One interface over every generator architecture: latents in, uint8 images out."""

from __future__ import annotations

import numpy as np
import torch

from bci.generators.device import pick_device, pick_dtype


def to_uint8(images: torch.Tensor) -> np.ndarray:
    """Convert ``(n, 3, H, W)`` images in nominal [-1, 1] to ``(n, H, W, 3)`` uint8.

    Uses the seed notebook's mapping ``clip(rint(127.5 * x + 127.5), 0, 255)``.
    """
    x = torch.clamp(torch.round(images.float() * 127.5 + 127.5), 0.0, 255.0)
    return x.to(torch.uint8).permute(0, 2, 3, 1).contiguous().cpu().numpy()


class Generator:
    """A generator module ready to render: device, precision, batching, validation.

    Parameters
    ----------
    module : torch.nn.Module
        Maps ``(n, latent_dim)`` float latents to ``(n, 3, H, W)`` images in nominal [-1, 1].
        Must expose integer attributes ``latent_dim`` and ``image_size``.
    name : str
        Human-readable name (the spec it was loaded from).
    device : str | torch.device | None
        Where to run; ``None`` picks CUDA when present, else the CPU.
    precision : str
        ``"fp32"`` (default), ``"bf16"``, ``"fp16"`` (CUDA only) or ``"auto"`` (see
        :func:`~bci.generators.device.pick_dtype`). Convolutions run channels-last, which
        oneDNN and cuDNN compute fastest in reduced precision.
    batch_size : int
        Largest batch sent through the module at once.

    Attributes
    ----------
    latent_dim : int
        Width of one latent vector.
    image_size : int
        Height and width of the rendered images, in pixels.
    module : torch.nn.Module
        The torch module, in eval mode, on ``device``.
    device : torch.device
        The device the module runs on.
    """

    def __init__(
        self,
        module: torch.nn.Module,
        name: str = "generator",
        device: str | torch.device | None = None,
        precision: str = "fp32",
        batch_size: int = 32,
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.name = name
        self.device = pick_device(device)
        self.dtype = pick_dtype(precision, self.device)
        self.module = module.to(self.device, self.dtype).eval()
        if self.dtype != torch.float32:
            self.module = self.module.to(memory_format=torch.channels_last)
        self.module.requires_grad_(False)
        self.latent_dim = int(module.latent_dim)
        self.image_size = int(module.image_size)
        self.batch_size = int(batch_size)

    def __repr__(self) -> str:
        return (
            f"Generator({self.name!r}, latent_dim={self.latent_dim}, "
            f"image_size={self.image_size}, device={str(self.device)!r}, "
            f"dtype={str(self.dtype).removeprefix('torch.')!r})"
        )

    def sample_latents(self, n: int, seed: int | None = None) -> np.ndarray:
        """Draw ``n`` latents from N(0, I).

        Parameters
        ----------
        n : int
            Number of latents.
        seed : int | None
            Seed for a reproducible draw.

        Returns
        -------
        np.ndarray, shape (n, latent_dim), float32
        """
        rng = np.random.default_rng(seed)
        return rng.standard_normal((int(n), self.latent_dim)).astype(np.float32)

    def check_latents(self, latents: np.ndarray) -> np.ndarray:
        """Validate latents and return them as a C-contiguous ``(n, latent_dim)`` float32 array."""
        z = np.asarray(latents, dtype=np.float32)
        if z.ndim == 1:
            z = z[None, :]
        if z.ndim != 2 or z.shape[1] != self.latent_dim:
            raise ValueError(
                f"latents must have shape (n, {self.latent_dim}) for generator {self.name!r}, "
                f"got {tuple(np.shape(latents))}"
            )
        if not np.all(np.isfinite(z)):
            raise ValueError(f"latents contain NaN or Inf ({int((~np.isfinite(z)).sum())} values)")
        z = np.ascontiguousarray(z)
        # Bus frames arrive as read-only views; torch wants to own writable memory.
        return z if z.flags.writeable else z.copy()

    @torch.inference_mode()
    def forward(self, latents: np.ndarray) -> torch.Tensor:
        """Run the module on validated latents, batch by batch; returns float images on the CPU."""
        z = self.check_latents(latents)
        outs = []
        for start in range(0, len(z), self.batch_size):
            chunk = torch.from_numpy(z[start : start + self.batch_size]).to(self.device, self.dtype)
            outs.append(self.module(chunk).float().cpu())
        if not outs:
            return torch.empty((0, 3, self.image_size, self.image_size))
        return torch.cat(outs)

    def render(self, latents: np.ndarray) -> np.ndarray:
        """Render latents to images.

        Parameters
        ----------
        latents : np.ndarray, shape (n, latent_dim) or (latent_dim,)

        Returns
        -------
        np.ndarray, shape (n, H, W, 3), uint8
        """
        return to_uint8(self.forward(latents))
