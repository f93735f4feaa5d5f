"""Soft 2-D shape masks on a pixel grid, batched in torch.

Every shape is a signed distance (negative inside) turned into a coverage in [0, 1] by a sigmoid
about one pixel wide, which anti-aliases edges and keeps the image a smooth function of the
shape parameters.
"""

from __future__ import annotations

import torch


def grid(size: int, device: torch.device | str = "cpu") -> tuple[torch.Tensor, torch.Tensor]:
    """Pixel-centre coordinates in [-1, 1], x rightwards and y downwards, each (1, size, size)."""
    t = (torch.arange(size, device=device, dtype=torch.float32) + 0.5) / size * 2.0 - 1.0
    y, x = torch.meshgrid(t, t, indexing="ij")
    return x[None], y[None]


def coverage(distance: torch.Tensor, softness: float) -> torch.Tensor:
    """Coverage of a shape from its signed distance: 1 well inside, 0 well outside."""
    return torch.sigmoid(-distance / softness)


def ellipse(x: torch.Tensor, y: torch.Tensor, cx, cy, a, b) -> torch.Tensor:
    """Approximate signed distance to an axis-aligned ellipse at (cx, cy) with semi-axes a, b."""
    r = torch.sqrt(((x - cx) / a) ** 2 + ((y - cy) / b) ** 2 + 1e-12)
    return (r - 1.0) * torch.minimum(torch.as_tensor(a), torch.as_tensor(b))


def rotate(x: torch.Tensor, y: torch.Tensor, angle, cx, cy) -> tuple[torch.Tensor, torch.Tensor]:
    """Rotate coordinates by ``angle`` radians about (cx, cy)."""
    c, s = torch.cos(angle), torch.sin(angle)
    dx, dy = x - cx, y - cy
    return cx + c * dx + s * dy, cy - s * dx + c * dy


def paint(canvas: torch.Tensor, mask: torch.Tensor, color: torch.Tensor) -> torch.Tensor:
    """Composite ``color`` (n, 3, 1, 1) over ``canvas`` (n, 3, H, W) where ``mask`` (n, H, W) is."""
    m = mask[:, None]
    return canvas * (1.0 - m) + color * m


def hsv_to_rgb(h: torch.Tensor, s: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """Convert hue, saturation, value in [0, 1] (each shape (n,)) to RGB colours (n, 3, 1, 1)."""
    k = torch.stack([(5.0 + h * 6.0) % 6.0, (3.0 + h * 6.0) % 6.0, (1.0 + h * 6.0) % 6.0], dim=1)
    f = v[:, None] - v[:, None] * s[:, None] * torch.clamp(torch.minimum(k, 4.0 - k), 0.0, 1.0)
    return f[:, :, None, None]
