"""Procedural faces: named attributes and a batched torch renderer."""

from bci.faces.attributes import ATTRIBUTES, N_ATTRIBUTES, attribute_index, latents_to_attributes
from bci.faces.render import render_attributes, render_latents

__all__ = [
    "ATTRIBUTES",
    "N_ATTRIBUTES",
    "attribute_index",
    "latents_to_attributes",
    "render_attributes",
    "render_latents",
]
