"""A procedural face renderer: attribute values in, RGB face images out.

It draws a head and shoulders from soft shapes (background, shirt, neck, hair, ears, face, cheeks,
beard, eyes, brows, nose, mouth, fringe, glasses), each set by the attributes in
:mod:`bci.faces.attributes`. It is batched, deterministic and smooth in its inputs. The default
generator is trained to reproduce it, and the simulator uses it to know what a face shows.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from bci.faces.attributes import ATTRIBUTES, N_ATTRIBUTES, latents_to_attributes
from bci.faces.shapes import coverage, ellipse, grid, hsv_to_rgb, paint, rotate


def _smoothstep(lo: float, hi: float, x: torch.Tensor) -> torch.Tensor:
    t = torch.clamp((x - lo) / (hi - lo), 0.0, 1.0)
    return t * t * (3.0 - 2.0 * t)


def _rgb(*channels: torch.Tensor) -> torch.Tensor:
    return torch.stack([c.reshape(-1) for c in channels], dim=1)[:, :, None, None]


_ZOOM = 0.8  # <1 enlarges the head in the frame
_ZOOM_SHIFT = 0.1


class _Attrs:
    """Attribute columns by name, each shaped (n, 1, 1) to broadcast over the pixel grid."""

    def __init__(self, values: torch.Tensor) -> None:
        self.values = values

    def __getattr__(self, name: str) -> torch.Tensor:
        return self.values[:, ATTRIBUTES.index(name), None, None]


def render_attributes(attributes: torch.Tensor | np.ndarray, size: int = 64) -> torch.Tensor:
    """Render faces from attribute values.

    Parameters
    ----------
    attributes : torch.Tensor | np.ndarray, shape (n, n_attributes)
        Values in [0, 1], one column per name in :data:`bci.faces.attributes.ATTRIBUTES`.
    size : int
        Height and width of the images in pixels.

    Returns
    -------
    torch.Tensor, shape (n, 3, size, size), float32 in [0, 1]
    """
    v = torch.as_tensor(attributes, dtype=torch.float32)
    if v.ndim != 2 or v.shape[1] != N_ATTRIBUTES:
        raise ValueError(f"attributes must have shape (n, {N_ATTRIBUTES}), got {tuple(v.shape)}")
    v = torch.clamp(v, 0.0, 1.0)
    a = _Attrs(v)
    n = v.shape[0]
    soft = 1.4 / size
    x0, y0 = grid(size, v.device)
    x0, y0 = x0 * _ZOOM, y0 * _ZOOM + _ZOOM_SHIFT

    # Background: a vertical gradient of one hue; shirt on the shoulders.
    bg = hsv_to_rgb(
        v[:, ATTRIBUTES.index("background_hue")],
        torch.full((n,), 0.35),
        0.3 + 0.55 * v[:, ATTRIBUTES.index("background_lightness")],
    )
    canvas = bg * (1.05 - 0.15 * (y0[:, None] + 1.0) / 2.0)
    shirt = hsv_to_rgb(
        v[:, ATTRIBUTES.index("shirt_hue")], torch.full((n,), 0.55), torch.full((n,), 0.5)
    )
    canvas = paint(canvas, coverage(ellipse(x0, y0, 0.0, 1.22, 0.9, 0.5), soft), shirt)

    # Head pose: roll rotates the head about the neck, yaw and pitch move the features.
    x, y = rotate(x0, y0, (a.roll - 0.5) * 0.5, 0.0, 0.55)
    yaw = (a.yaw - 0.5) * 0.18
    pitch = (a.pitch - 0.5) * 0.10

    lightness = 0.28 + 0.67 * a.skin_lightness
    warmth = a.skin_warmth
    skin = _rgb(lightness, lightness * (0.80 - 0.08 * warmth), lightness * (0.68 - 0.16 * warmth))
    hl, hr = 0.06 + 0.8 * a.hair_lightness, a.hair_redness
    hair = _rgb(hl * (1.0 + 0.1 * hr), hl * (0.86 - 0.36 * hr), hl * (0.62 - 0.45 * hr))

    fa = 0.31 + 0.10 * a.face_width - 0.04 * (a.yaw - 0.5).abs()
    fb = 0.40 + 0.10 * a.face_length
    fcy = -0.08

    canvas = paint(
        canvas, coverage(ellipse(x, y, 0.0, 0.55, 0.13 + 0.1 * fa, 0.28), soft), skin * 0.82
    )

    # Hair behind the head: a cap around the skull plus a fall whose length varies.
    ha, hb = fa * (1.12 + 0.3 * a.hair_volume), fb * (1.05 + 0.1 * a.hair_volume)
    cap = ellipse(x, y - 0.03 * a.hair_volume, 0.0, fcy, ha, hb)
    length = a.hair_length
    fall_bottom = fcy + 0.05 + 0.75 * length
    fall = torch.maximum(torch.abs(x) - ha * 0.98, torch.maximum(fcy - y, y - fall_bottom))
    back = torch.minimum(cap, torch.where(length > 0.25, fall, torch.full_like(fall, 1.0)))
    canvas = paint(canvas, coverage(back, soft), hair * 0.85)

    # Ears, hidden by long hair.
    ear_r = 0.05 + 0.04 * a.ear_size
    ear_visible = 1.0 - _smoothstep(0.45, 0.7, length)
    for side in (-1.0, 1.0):
        ear = coverage(
            ellipse(x, y, side * fa * 0.97 + yaw * 0.5, fcy + 0.02, ear_r * 0.7, ear_r), soft
        )
        canvas = paint(canvas, ear * ear_visible, skin * 0.9)

    # Face: an ellipse tapering to the chin, lit from the upper left.
    dy = y - fcy
    taper = 1.0 - (0.18 + 0.3 * a.chin) * torch.clamp(dy / fb, 0.0, 1.0) ** 2
    face = coverage(ellipse(x / taper, y, 0.0, fcy, fa, fb), soft)
    shade = 1.0 - 0.12 * (x - yaw - fa * 0.3) / fa - 0.05 * dy / fb
    canvas = canvas * (1.0 - face[:, None]) + skin * shade[:, None] * face[:, None]

    # Feature positions.
    cx = yaw
    eye_y = fcy - 0.02 + pitch + (a.eye_height - 0.5) * 0.08
    eye_dx = 0.11 + 0.06 * a.eye_spacing
    nose_y = eye_y + 0.13 + 0.06 * a.nose_length
    mouth_y = nose_y + 0.1 + 0.03 * a.face_length

    blush = _rgb(torch.full((n,), 0.85), torch.full((n,), 0.35), torch.full((n,), 0.4))
    for side in (-1.0, 1.0):
        cheek = coverage(
            ellipse(x, y, cx + side * (eye_dx + 0.03), nose_y + 0.03, 0.07, 0.05), soft * 6
        )
        canvas = paint(canvas, cheek * face * 0.45 * a.blush, blush)

    beard_on = _smoothstep(0.65, 0.8, a.beard)
    beard = face * coverage(mouth_y - 0.05 - y, soft * 3) * beard_on * 0.9
    canvas = paint(canvas, beard, hair * 0.8)

    # Eyes: white, iris, pupil; the iris is clipped to the white.
    ew, eh = 0.05 + 0.03 * a.eye_size, 0.028 + 0.018 * a.eye_size
    iris_rgb = _rgb(
        0.36 - 0.12 * a.iris_blueness, 0.22 + 0.22 * a.iris_blueness, 0.1 + 0.6 * a.iris_blueness
    )
    white = torch.tensor([0.95, 0.95, 0.93]).reshape(1, 3, 1, 1)
    black = torch.tensor([0.05, 0.04, 0.04]).reshape(1, 3, 1, 1)
    for side in (-1.0, 1.0):
        ex = cx + side * eye_dx
        sclera = coverage(ellipse(x, y, ex, eye_y, ew, eh), soft)
        canvas = paint(canvas, sclera, white)
        iris = coverage(ellipse(x, y, ex + yaw * 0.3, eye_y, eh * 0.95, eh * 0.95), soft) * sclera
        canvas = paint(canvas, iris, iris_rgb)
        pupil = coverage(ellipse(x, y, ex + yaw * 0.3, eye_y, eh * 0.4, eh * 0.4), soft) * sclera
        canvas = paint(canvas, pupil, black)

        # Brow: a thin ellipse above the eye, tilted inwards or outwards.
        tilt = side * (a.brow_tilt - 0.5) * 0.8
        bx, by = rotate(x, y, tilt, ex, eye_y - eh - 0.045)
        brow = coverage(
            ellipse(bx, by, ex, eye_y - eh - 0.045, ew * 1.15, 0.008 + 0.018 * a.brow_thickness),
            soft,
        )
        canvas = paint(canvas, brow, hair * 0.6)

    # Nose: a shaded ridge and two nostrils.
    nose_w = 0.025 + 0.03 * a.nose_width
    nose_len = 0.07 + 0.06 * a.nose_length
    ridge = coverage(
        ellipse(x, y, cx + 0.015, nose_y - nose_len * 0.4, nose_w * 0.5, nose_len * 0.6), soft * 3
    )
    canvas = paint(canvas, ridge * 0.35, skin * 0.7)
    for side in (-1.0, 1.0):
        nostril = coverage(
            ellipse(x, y, cx + side * nose_w * 0.6, nose_y, nose_w * 0.35, 0.012), soft
        )
        canvas = paint(canvas, nostril * 0.8, skin * 0.45)

    # Mouth: a curved band; corners rise with the smile.
    mw = 0.07 + 0.07 * a.mouth_width
    curve = (a.smile - 0.4) * 0.09
    mx = (x - cx) / mw
    centre = mouth_y - curve * (mx**2) + curve * 0.4
    band = torch.maximum(
        torch.abs(y - centre) - (0.012 + 0.006 * (1 - mx**2).clamp(min=0)), (torch.abs(x - cx) - mw)
    )
    lips = _rgb(
        0.55 + 0.35 * a.lip_redness, 0.28 - 0.06 * a.lip_redness, 0.3 - 0.08 * a.lip_redness
    )
    canvas = paint(canvas, coverage(band, soft), lips * (0.6 + 0.4 * lightness[:, None]))

    # Fringe: hair over the forehead down to a line that slopes with the parting.
    fringe_line = fcy - fb * (0.95 - 0.75 * a.fringe) + (a.hair_part - 0.5) * 0.35 * x
    fringe = coverage(cap, soft) * coverage(y - fringe_line, soft)
    canvas = paint(canvas, fringe, hair)

    # Glasses: two rings and a bridge.
    glasses_on = _smoothstep(0.68, 0.8, a.glasses)
    frame = torch.tensor([0.12, 0.1, 0.1]).reshape(1, 3, 1, 1)
    for side in (-1.0, 1.0):
        ring = ellipse(x, y, cx + side * eye_dx, eye_y, ew * 1.45, eh * 2.2)
        canvas = paint(canvas, coverage(torch.abs(ring) - 0.008, soft) * glasses_on, frame)
    bridge = torch.maximum(
        torch.abs(y - eye_y + 0.01) - 0.007, torch.abs(x - cx) - (eye_dx - ew * 1.4)
    )
    canvas = paint(canvas, coverage(bridge, soft) * glasses_on, frame)

    return torch.clamp(canvas, 0.0, 1.0)


def render_latents(latents: torch.Tensor | np.ndarray, size: int = 64) -> torch.Tensor:
    """Render faces straight from latents (attributes = standard normal CDF of each dimension).

    Returns images of shape (n, 3, size, size) in [0, 1].
    """
    return render_attributes(latents_to_attributes(latents), size=size)


def roll_degrees(attributes: torch.Tensor) -> torch.Tensor:
    """Head roll in degrees for attribute rows (documented pose range: about ±14°)."""
    return (attributes[:, ATTRIBUTES.index("roll")] - 0.5) * 0.5 * 180.0 / math.pi
