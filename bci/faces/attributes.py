"""The facial attributes of the procedural face renderer and how latents set them.

Each attribute is one latent dimension pushed through the standard normal CDF, so a latent drawn
from N(0, I) gives attributes spread uniformly over [0, 1]. Attributes that are present or absent
in real faces (beard, glasses) use a smooth step on that value, so they switch on gradually and
the latent space stays smooth.
"""

from __future__ import annotations

import numpy as np
import torch

ATTRIBUTES: tuple[str, ...] = (
    "face_width",
    "face_length",
    "chin",
    "skin_lightness",
    "skin_warmth",
    "hair_lightness",
    "hair_redness",
    "hair_length",
    "hair_volume",
    "fringe",
    "hair_part",
    "eye_spacing",
    "eye_size",
    "eye_height",
    "iris_blueness",
    "brow_thickness",
    "brow_tilt",
    "nose_length",
    "nose_width",
    "mouth_width",
    "smile",
    "lip_redness",
    "yaw",
    "roll",
    "pitch",
    "background_hue",
    "background_lightness",
    "ear_size",
    "beard",
    "glasses",
    "blush",
    "shirt_hue",
)
"""Attribute names, in latent order: latent dimension ``i`` sets ``ATTRIBUTES[i]``."""

N_ATTRIBUTES = len(ATTRIBUTES)


def latents_to_attributes(latents: torch.Tensor | np.ndarray) -> torch.Tensor:
    """Map latents to attribute values in [0, 1] (the standard normal CDF, per dimension).

    Parameters
    ----------
    latents : torch.Tensor | np.ndarray, shape (n, n_attributes)

    Returns
    -------
    torch.Tensor, shape (n, n_attributes), float32
    """
    z = torch.as_tensor(np.asarray(latents) if isinstance(latents, np.ndarray) else latents)
    z = z.float()
    if z.ndim != 2 or z.shape[1] != N_ATTRIBUTES:
        raise ValueError(
            f"latents must have shape (n, {N_ATTRIBUTES}) for the face renderer, "
            f"got {tuple(z.shape)}"
        )
    return 0.5 * (1.0 + torch.erf(z / np.sqrt(2.0)))


def attribute_index(name: str) -> int:
    """Return the latent dimension that sets attribute ``name``."""
    try:
        return ATTRIBUTES.index(name)
    except ValueError:
        raise ValueError(
            f"unknown face attribute {name!r}; known: {', '.join(ATTRIBUTES)}"
        ) from None
